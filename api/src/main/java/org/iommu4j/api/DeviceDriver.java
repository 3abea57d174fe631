package org.iommu4j.api;

/**
 * A driver on a bus, the kernel's {@code struct device_driver}: binding a device to it by name runs
 * {@link #probe}, which may refuse. A backend registers one when it must decide which devices it takes, as
 * xen-pciback's stub does with its slot list.
 */
public interface DeviceDriver {

    /** @return the driver's name, as in {@code /sys/bus/pci/drivers/<name>} */
    String name();

    /** @return the bus it drives */
    BusType bus();

    /**
     * The kernel's {@code driver_managed_dma}: whether this driver manages its devices' DMA itself, as VFIO
     * does, instead of using the kernel's DMA API. Only such a driver may bind to a device whose iommu group
     * user space owns; any other is refused with {@link Errno#EBUSY} before its probe runs.
     *
     * @return false unless the driver overrides it (since API 1.1)
     */
    default boolean driverManagedDma() {
        return false;
    }

    /**
     * A device is being bound. Return normally to take it.
     *
     * @param device the device
     * @throws IommuException to refuse, usually {@link Errno#ENODEV} ("not mine") or {@link Errno#EINVAL}; the
     *     device then stays unbound
     */
    void probe(Device device);

    /**
     * The device is being unbound (or removed). Release whatever {@link #probe} set up.
     *
     * @param device a device this driver took
     */
    default void remove(Device device) {
    }
}
