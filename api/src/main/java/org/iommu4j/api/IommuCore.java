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
    /**
     * The kernel's {@code pci_device_group} ({@code drivers/iommu/iommu.c}, Linux v6.12), ready for a driver's
     * {@link IommuOps#deviceGroup} to return: a PCI device joins the group of any device it cannot be told
     * apart from, else a new isolating group. It walks the device's DMA aliases ({@link Device#dmaAliases()}:
     * a conventional PCI bridge or a PCIe-to-PCI bridge makes every device below it share one), then up the
     * bridges to the first whose path to the root has ACS ({@link PciAcs#REQUIRED}), then the functions of
     * its slot that ACS does not isolate. A platform device gets a group of its own.
     *
     * @param device the device being probed
     * @return the group it joins
     * @since 1.2 (by default EOPNOTSUPP; the kernel's core implements it)
     */
    default IommuGroup pciDeviceGroup(Device device) {
        throw new IommuException(Errno.EOPNOTSUPP, "this iommu core offers no pci_device_group");
    }

    /**
     * The domain a device is attached to now, as the driver allocated it: the object its
     * {@link IommuOps#allocateDomain} returned, not a wrapper ({@code iommu_get_domain_for_dev}).
     *
     * @param device a device in a group
     * @return the driver's domain, or empty when nothing translates for the device (no group, identity, a fake
     *     group) or it sits in the core's own blocking domain
     * @since 1.2 (empty by default)
     */
    default Optional<IommuDomain> domainOf(Device device) {
        return Optional.empty();
    }

    /**
     * Stores the driver's private data for a device, the kernel's {@code dev_iommu_priv_set}. The core keeps it
     * until the device is released ({@link IommuOps#releaseDevice} is called first) and never looks inside.
     *
     * @param device a device the driver probed
     * @param data the driver's data, or null to clear it
     * @since 1.2 (by default EOPNOTSUPP; the kernel's core implements it)
     */
    default void setDevicePrivate(Device device, Object data) {
        throw new IommuException(Errno.EOPNOTSUPP, "this iommu core keeps no per-device data");
    }

    /**
     * The driver's private data for a device, the kernel's {@code dev_iommu_priv_get}.
     *
     * @param device a device
     * @return what {@link #setDevicePrivate} stored, if anything
     * @since 1.2 (empty by default)
     */
    default Optional<Object> devicePrivate(Device device) {
        return Optional.empty();
    }
}
