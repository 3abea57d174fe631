package org.iommu4j.api;

/**
 * A bus notifier: told of devices arriving and leaving and of driver binding. Called on the thread that made
 * the change; every method does nothing by default.
 */
public interface BusListener {

    /**
     * A device was added to a bus (hot-add); the iommu core has already probed it.
     *
     * @param device the new device
     */
    default void deviceAdded(Device device) {
    }

    /**
     * A device is being removed; it is still in its group while listeners run, and gone after.
     *
     * @param device the leaving device
     */
    default void deviceRemoved(Device device) {
    }

    /**
     * A driver was bound to a device.
     *
     * @param device the device
     * @param driver the driver's name
     */
    default void driverBound(Device device, String driver) {
    }

    /**
     * A driver was unbound from a device.
     *
     * @param device the device
     * @param driver the driver's name
     */
    default void driverUnbound(Device device, String driver) {
    }
}
