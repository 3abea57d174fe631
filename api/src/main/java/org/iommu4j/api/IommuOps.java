package org.iommu4j.api;

import java.util.Optional;

/**
 * An IOMMU driver, the kernel's {@code struct iommu_ops}: registered for a bus with
 * {@link IommuCore#registerOps}, after which the core asks it about every device on that bus, present and
 * hot-added. The core owns the common logic (groups, their ids, default domains, attach bookkeeping, address
 * alignment checks, and since 1.2 the DMA API of DMA domains, splitting maps into page sizes, and PCI grouping
 * through {@link IommuCore#pciDeviceGroup}); an implementation answers only what differs for its hardware.
 * {@code examples/vtd-backend} is a translating driver written this way.
 *
 * <p>Calls come from the kernel, possibly from several threads, never for the same device at once.
 */
public interface IommuOps {

    /**
     * The kernel's {@code probe_device}: whether this IOMMU translates for {@code device}. Return false for a
     * device it does not handle; the device then keeps no group from this driver and DMA goes untranslated.
     *
     * @param device a device on a bus this driver is registered for
     * @return true to manage the device
     */
    boolean probeDevice(Device device);

    /**
     * The kernel's {@code release_device}: the device is leaving (hot-remove, or the driver is unregistered).
     * The core has already detached it from its domain and removed it from its group.
     *
     * @param device a device for which {@link #probeDevice} returned true
     */
    default void releaseDevice(Device device) {
    }

    /**
     * The kernel's {@code device_group}: the group for a newly probed device. The default gives every device a
     * group of its own; a driver whose hardware cannot tell some devices apart returns their existing group.
     *
     * @param device the probed device
     * @param groups the core's group allocator
     * @return the group the device joins
     */
    default IommuGroup deviceGroup(Device device, IommuCore groups) {
        return groups.allocateGroup(null, true);
    }

    /**
     * The kernel's {@code def_domain_type}: the domain a new group starts in.
     *
     * @param device the first device of the group
     * @return {@link DomainType#IDENTITY} for pass-through, {@link DomainType#DMA} for translation
     */
    default DomainType defaultDomainType(Device device) {
        return DomainType.DMA;
    }

    /**
     * Allocates a domain, the kernel's {@code domain_alloc_paging} and friends.
     *
     * @param type the kind of domain wanted
     * @return a new, empty domain
     * @throws IommuException with {@link Errno#EOPNOTSUPP} for a type the hardware cannot provide, or
     *     {@link Errno#ENOMEM}
     */
    IommuDomain allocateDomain(DomainType type);

    /**
     * The kernel's {@code capable}.
     *
     * @param device a managed device
     * @param capability what is asked
     * @return whether the IOMMU provides it for this device
     */
    default boolean capable(Device device, IommuCapability capability) {
        return false;
    }

    /**
     * Why {@link #capable} answers false for a device, naming what would change that; the kernel adds it to the
     * message of a refusal that follows, such as VFIO's for a device without
     * {@link IommuCapability#CACHE_COHERENCY}.
     *
     * @param device a managed device
     * @param capability a capability {@link #capable} denied
     * @return the reason, or empty (the default; since API 1.1)
     */
    default Optional<String> missingCapabilityReason(Device device, IommuCapability capability) {
        return Optional.empty();
    }

    /**
     * The page sizes this IOMMU maps, one bit per size (bit 12 for 4 KiB). The core refuses a map whose iova,
     * physical address or size is not a multiple of the smallest.
     *
     * @return the bitmap; the default is 4 KiB only
     */
    default long pageSizeBitmap() {
        return PhysicalMemory.PAGE_SIZE;
    }
}
