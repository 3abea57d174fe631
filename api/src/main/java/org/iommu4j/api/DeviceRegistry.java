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
     * Binds a driver to a device, as writing the device's name to {@code /sys/bus/pci/drivers/<driver>/bind}
     * does: the driver's {@link DeviceDriver#probe} runs and may refuse.
     *
     * @param device a present device
     * @param driver the name of a registered driver
     * @throws IommuException {@link Errno#EBUSY} if another driver is bound, {@link Errno#ENODEV} if the
     *     device is gone or no driver has that name, or the driver's own refusal
     */
    void bindDriver(Device device, String driver);

    /**
     * Unbinds whatever driver is bound; nothing happens if none is.
     *
     * @param device a device
     */
    void unbindDriver(Device device);

    /**
     * Registers a driver; devices are bound to it only when asked, never automatically.
     *
     * @param driver the driver
     * @throws IommuException {@link Errno#EEXIST} if a driver of that name is registered for the bus
     */
    void registerDriver(DeviceDriver driver);

    /**
     * Unbinds the driver from every device it has and unregisters it.
     *
     * @param driver a registered driver
     */
    void unregisterDriver(DeviceDriver driver);

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
