package org.iommu4j.api;

import java.util.List;

/**
 * A software IO TLB: a pool of fixed-size slots in low physical memory through which data is bounced for
 * devices that cannot reach the original buffer. The swiotlb backend exports one through
 * {@link SymbolTable}; other backends (Xen's) bounce through it instead of keeping their own.
 *
 * <p>Addresses here are physical: {@link #map} returns the physical address of the bounce slot
 * ({@code tlb_addr}); a caller whose devices see different bus addresses converts it.
 */
public interface BounceBufferPool {

    /**
     * Reserves slots for {@code allocSize} bytes and copies {@code mappingSize} bytes of the original into
     * them (for every direction, so the device never sees stale pool data), the kernel's
     * {@code swiotlb_tbl_map_single}.
     *
     * @param device the device (its minimum alignment mask and segment boundary are honoured)
     * @param origPhys the original buffer
     * @param mappingSize bytes to bounce
     * @param allocSize bytes to reserve, at least {@code mappingSize}
     * @param allocAlignMask extra alignment for the slot address, 0 for none
     * @param direction the mapping's direction
     * @return the physical address of the bounce copy of {@code origPhys}
     * @throws DmaMappingException {@link Errno#ENOMEM} when the pool is full (state unchanged),
     *     {@link Errno#EINVAL} for sizes beyond a segment or a mapping size above the allocation size
     */
    long map(Device device, long origPhys, long mappingSize, long allocSize, long allocAlignMask,
            DmaDirection direction);

    /**
     * Copies back where the direction requires, then releases the slots.
     *
     * @param device the device given to {@link #map}
     * @param tlbAddr the address {@link #map} returned
     * @param mappingSize the mapping size given to {@link #map}
     * @param direction the direction given to {@link #map}
     * @throws IommuException {@link Errno#EINVAL} if {@code tlbAddr} is not the start of a live mapping
     *     (nothing is freed)
     */
    void unmap(Device device, long tlbAddr, long mappingSize, DmaDirection direction);

    /**
     * Copies bounce to original for FROM_DEVICE and BIDIRECTIONAL.
     *
     * @param device the device
     * @param tlbAddr an address inside a live mapping
     * @param size bytes from there
     * @param direction the mapping's direction
     */
    void syncForCpu(Device device, long tlbAddr, long size, DmaDirection direction);

    /**
     * Copies original to bounce for TO_DEVICE and BIDIRECTIONAL.
     *
     * @param device the device
     * @param tlbAddr an address inside a live mapping
     * @param size bytes from there
     * @param direction the mapping's direction
     */
    void syncForDevice(Device device, long tlbAddr, long size, DmaDirection direction);

    /**
     * @param phys a physical address
     * @return whether it lies inside the pool ({@code is_swiotlb_buffer})
     */
    boolean contains(long phys);

    /** @return the pool's first physical address */
    long start();

    /** @return the physical address just past the pool */
    long end();

    /**
     * @param device a device
     * @return the largest mapping the pool can bounce for it, in bytes
     */
    long maxMappingSize(Device device);

    /** @return a snapshot of the pool's counters */
    BounceStats stats();

    /**
     * The pool's areas and what each holds now, the per-area figures behind debugfs {@code io_tlb_used}.
     *
     * @return one entry per area, by index
     * @since 1.2 (by default one area holding the whole pool, from {@link #stats()}, for pools without areas)
     */
    default List<BounceAreaStats> areaStats() {
        BounceStats s = stats();
        return List.of(new BounceAreaStats(0, s.totalSlots(), s.usedSlots(), s.highWaterSlots()));
    }

    /**
     * Sets the high-water mark to 0, as writing 0 to debugfs {@code io_tlb_used_hiwater} does (the kernel
     * accepts only 0 there); the next mapping raises it to the slots then in use. A test can so measure one
     * phase of a workload.
     *
     * @throws IommuException {@link Errno#EOPNOTSUPP} for a pool that cannot reset it
     * @since 1.2 (by default refused with EOPNOTSUPP)
     */
    default void resetHighWater() {
        throw new IommuException(Errno.EOPNOTSUPP, "this bounce pool cannot reset its high-water mark");
    }
}
