package org.iommu4j.api;

import java.util.Optional;

/**
 * The kernel's iommu core as a backend sees it: registering {@link IommuOps} for a bus
 * ({@code bus_set_iommu}), allocating groups, and asking which group a device is in.
 */
public interface IommuCore {

    /**
     * Registers an IOMMU driver for a bus and probes every device already on it; later devices are probed as
     * they arrive.
     *
     * @param bus the bus
     * @param ops the driver
     * @throws IommuException {@link Errno#EBUSY} if another driver is registered for the bus
     */
    void registerOps(BusType bus, IommuOps ops);

    /**
     * Unregisters a driver: its devices leave their groups and their domains, and are released.
     *
     * @param bus the bus
     * @param ops the driver given to {@link #registerOps}
     */
    void unregisterOps(BusType bus, IommuOps ops);

    /**
     * Asks the driver registered for the device's bus to probe the device again, as after its list of devices
     * to manage changed: a device it now claims gets a group; one it no longer claims leaves its group.
     *
     * @param device a present device
     * @throws IommuException {@link Errno#EBUSY} if the device must keep its group because a user holds it
     */
    void reprobe(Device device);

    /**
     * Allocates an empty group with the next free id. It appears in sysfs once a device joins it, and
     * disappears when its last device leaves.
     *
     * @param name the group's {@code name} attribute, or null for none
     * @param isolated whether the group's devices are confined to what is mapped for them; see
     *     {@link IommuGroup#isolated()}
     * @return the group
     */
    IommuGroup allocateGroup(String name, boolean isolated);

    /**
     * @param device a device
     * @return the group it is in, if any
     */
    Optional<IommuGroup> groupOf(Device device);

    /**
     * Who drives a bus's IOMMU, so that a backend refused by {@link #registerOps} can say what to change.
     *
     * @param bus a bus
     * @return the name of the module whose ops are registered for it, if any (since API 1.1; empty by default)
     */
    default Optional<String> opsOwner(BusType bus) {
        return Optional.empty();
    }
}
