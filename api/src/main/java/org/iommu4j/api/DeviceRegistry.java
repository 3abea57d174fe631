package org.iommu4j.api;

import java.util.List;
import java.util.Optional;

/**
 * The host's buses as a backend sees them: the devices present, their driver binding, and notification of
 * hot-add and hot-remove (the kernel's bus notifiers).
 */
public interface DeviceRegistry {

    /**
     * @param bus a bus
     * @return the devices present on it now, in address order
     */
    List<Device> devices(BusType bus);

    /**
     * @param name a device's name ({@code 0000:06:0d.0} or a platform name)
     * @return the present device with that name
     */
    Optional<Device> find(String name);

    /**
     * @param address a PCI address
     * @return the present PCI device at that address
     */
    Optional<Device> find(PciAddress address);

    /**
     * @param device a device
     * @return the name of the driver bound to it ({@code vfio-pci}, {@code pciback}, ...), if any
     */
    Optional<String> driverOf(Device device);

    /**
     * Binds a driver to a device, as writing its name to {@code /sys/bus/pci/drivers/<driver>/bind} does.
     *
     * @param device a present device
     * @param driver the driver's name
     * @throws IommuException {@link Errno#EBUSY} if another driver is bound, {@link Errno#ENODEV} if the
     *     device is gone
     */
    void bindDriver(Device device, String driver);

    /**
     * Unbinds whatever driver is bound; nothing happens if none is.
     *
     * @param device a device
     */
    void unbindDriver(Device device);

    /**
     * Subscribes to bus events. The listener is called for later events only.
     *
     * @param listener the listener
     */
    void addListener(BusListener listener);

    /**
     * Unsubscribes.
     *
     * @param listener a listener given to {@link #addListener}
     */
    void removeListener(BusListener listener);
}
