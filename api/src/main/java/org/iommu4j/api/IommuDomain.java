package org.iommu4j.api;

/**
 * A translation context: what bus addresses (iovas) the devices attached to it may reach, and where each
 * lands in physical memory. The kernel's {@code struct iommu_domain} with its ops.
 *
 * <p>The kernel validates arguments before calling {@link #map} and {@link #unmap}: addresses and sizes are
 * multiples of the smallest page size in {@link IommuOps#pageSizeBitmap()}, sizes are positive, and ranges do
 * not wrap. {@link #translate} is the device-DMA hot path: it is called for every page a device touches, from
 * any thread, concurrently with map and unmap, so it must not allocate or take a lock shared by all devices.
 *
 * <h2>What the core calls, and what it keeps itself (since 1.2)</h2>
 * The core calls {@link #attachDevice} and {@link #detachDevice} when a group moves between domains (every
 * device of the group, all or none); {@link #mapPages} once per run of equal pages after splitting a map by
 * {@link IommuOps#pageSizeBitmap()} into the largest pages that fit; {@link #unmapPages} likewise;
 * {@link #iovaToPhys} for the DMA API's unmap and syncs; {@link #flushIotlbAll} after strict unmaps and when a
 * flush queue of a lazy DMA domain is flushed; {@link #translate} for every page a device touches; and
 * {@link #free} once, when the domain's group goes away. It keeps itself, so a driver need not: which group is
 * attached to which domain (and its own blocking domain while user space owns a group), the IOVA space and
 * flush queues of a DMA domain (the DMA API's iommu-dma; {@link #apertureStart()} and {@link #apertureEnd()}
 * bound it), argument checks, and the driver's per-device data ({@link IommuCore#setDevicePrivate}).
 * {@link IommuCore#domainOf} returns this object, not a wrapper. An exception other than
 * {@link IommuException} from a domain is taken as a driver bug: the access faults or the call fails with
 * {@link Errno#EIO}, and the kernel warns naming the module and taints W.
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
     * @param size bytes, a non-zero multiple of the page size (unsigned)
     * @param prot {@link IommuProt} bits
     * @throws IommuException {@link Errno#EEXIST} if any page is already mapped (nothing is changed),
     *     {@link Errno#EOPNOTSUPP} for a domain that does not page, {@link Errno#ENOMEM}
     */
    void map(long iova, long paddr, long size, int prot);

    /**
     * Unmaps whatever is mapped in {@code [iova, iova+size)}.
     *
     * @param iova first bus address, page-aligned
     * @param size bytes, a non-zero multiple of the page size (unsigned)
     * @return the number of bytes that were mapped and are not now
     */
    long unmap(long iova, long size);

    /**
     * Maps {@code count} pages of one size, the kernel's {@code map_pages}: the core splits every map into the
     * largest page sizes of {@link IommuOps#pageSizeBitmap()} that fit ({@code iommu_pgsize}) and calls this
     * once per run of equal pages. A driver with large pages maps each as one leaf
     * ({@link IoPageTable#mapPages}).
     *
     * @param iova first bus address, aligned to {@code pageSize}
     * @param paddr first physical address, aligned to {@code pageSize}
     * @param pageSize one size of the page-size bitmap
     * @param count pages, at least 1
     * @param prot {@link IommuProt} bits
     * @throws IommuException as {@link #map}
     * @since 1.2 (by default {@link #map} of {@code pageSize * count} bytes)
     */
    default void mapPages(long iova, long paddr, long pageSize, long count, int prot) {
        map(iova, paddr, pageSize * count, prot);
    }

    /**
     * Unmaps {@code count} pages of one size, the kernel's {@code unmap_pages}. A large page the range touches
     * goes whole, and the return says so, as the Linux v6.12 VT-d and AMD drivers do.
     *
     * @param iova first bus address
     * @param pageSize one size of the page-size bitmap
     * @param count pages, at least 1
     * @return bytes that were mapped and are not now, possibly more than {@code pageSize * count}
     * @since 1.2 (by default {@link #unmap} of {@code pageSize * count} bytes)
     */
    default long unmapPages(long iova, long pageSize, long count) {
        return unmap(iova, pageSize * count);
    }

    /**
     * Flushes the IOTLB for the whole domain, the kernel's {@code flush_iotlb_all}: after it returns, no
     * device reaches a page that was unmapped before the call. The DMA API's flush queue calls it when it
     * frees the IOVAs of lazily unmapped buffers; a driver whose {@link #translate} reads the page table
     * directly has nothing to flush.
     *
     * @since 1.2 (by default nothing)
     */
    default void flushIotlbAll() {
    }

    /**
     * The first IOVA the domain translates, the kernel's {@code geometry.aperture_start}; the DMA API allocates
     * IOVAs inside the aperture only.
     *
     * @return the aperture's first address
     * @since 1.2 (by default 0)
     */
    default long apertureStart() {
        return 0;
    }

    /**
     * The last IOVA the domain translates, inclusive and unsigned, the kernel's {@code geometry.aperture_end}.
     *
     * @return the aperture's last address
     * @since 1.2 (by default {@code 0xffffffffffffffff}, all of the 64-bit space)
     */
    default long apertureEnd() {
        return -1L;
    }

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
