package org.iommu4j.api;

/**
 * A translation context: what bus addresses (iovas) the devices attached to it may reach, and where each
 * lands in physical memory. The kernel's {@code struct iommu_domain} with its ops.
 *
 * <p>The kernel validates arguments before calling {@link #map} and {@link #unmap}: addresses and sizes are
 * multiples of the smallest page size in {@link IommuOps#pageSizeBitmap()}, sizes are positive, and ranges do
 * not wrap. {@link #translate} is the device-DMA hot path: it is called for every page a device touches, from
 * any thread, concurrently with map and unmap, so it must not allocate or take a lock shared by all devices.
 */
public interface IommuDomain {

    /** Returned by {@link #translate} when nothing is mapped at the iova. */
    long FAULT_NOT_MAPPED = -1;
    /** Returned by {@link #translate} when a mapping exists but does not grant the access. */
    long FAULT_PERMISSION = -2;

    /** @return what kind of domain this is */
    DomainType type();

    /**
     * Attaches a device: from now on its DMA goes through this domain. The core calls this for every device
     * of a group when the group moves to the domain, after detaching it from its previous one.
     *
     * @param device the device
     * @throws IommuException to refuse (the core then leaves the group where it was)
     */
    void attachDevice(Device device);

    /**
     * Detaches a device that {@link #attachDevice} accepted.
     *
     * @param device the device
     */
    void detachDevice(Device device);

    /**
     * Maps {@code [iova, iova+size)} to {@code [paddr, paddr+size)} with the given protection.
     *
     * @param iova first bus address, page-aligned
     * @param paddr first physical address, page-aligned
     * @param size bytes, a positive multiple of the page size
     * @param prot {@link IommuProt} bits
     * @throws IommuException {@link Errno#EEXIST} if any page is already mapped (nothing is changed),
     *     {@link Errno#EOPNOTSUPP} for a domain that does not page, {@link Errno#ENOMEM}
     */
    void map(long iova, long paddr, long size, int prot);

    /**
     * Unmaps whatever is mapped in {@code [iova, iova+size)}.
     *
     * @param iova first bus address, page-aligned
     * @param size bytes, a positive multiple of the page size
     * @return the number of bytes that were mapped and are not now
     */
    long unmap(long iova, long size);

    /**
     * Translates one bus address for a device access.
     *
     * @param iova the bus address
     * @param access the access the device makes: {@link IommuProt#READ}, {@link IommuProt#WRITE}, or 0 to ask
     *     only where the address lands
     * @return the physical address, or {@link #FAULT_NOT_MAPPED} or {@link #FAULT_PERMISSION}
     */
    long translate(long iova, int access);

    /**
     * The kernel's {@code iova_to_phys}.
     *
     * @param iova a bus address
     * @return the physical address it maps to, or {@link #FAULT_NOT_MAPPED}
     */
    default long iovaToPhys(long iova) {
        long phys = translate(iova, 0);
        return phys < 0 ? FAULT_NOT_MAPPED : phys;
    }

    /** Frees the domain. The core calls it once, when no device is attached any more. */
    default void free() {
    }
}
