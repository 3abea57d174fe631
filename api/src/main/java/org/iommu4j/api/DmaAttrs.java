package org.iommu4j.api;

/**
 * Attributes of a DMA-API call, the kernel's {@code unsigned long attrs} of {@code dma_map_single_attrs} and
 * friends ({@code include/linux/dma-mapping.h}, Linux v6.12), with the kernel's bit values. Two are modelled:
 * {@link #SKIP_CPU_SYNC} and {@link #NO_WARN}; any other bit is refused by {@link #of(long)}, so a caller cannot
 * believe an attribute took effect when the model ignores it.
 *
 * @param bits the kernel's {@code DMA_ATTR_*} bits
 * @since 1.2
 */
public record DmaAttrs(long bits) {
    /** {@code DMA_ATTR_SKIP_CPU_SYNC}: the map or unmap does not sync the CPU's and the device's views. */
    public static final long SKIP_CPU_SYNC_BIT = 1L << 5;
    /** {@code DMA_ATTR_NO_WARN}: a mapping failure is not logged (the caller has a fallback). */
    public static final long NO_WARN_BIT = 1L << 8;
    private static final long KNOWN = SKIP_CPU_SYNC_BIT | NO_WARN_BIT;

    /** No attributes: what the calls without {@code attrs} pass. */
    public static final DmaAttrs NONE = new DmaAttrs(0);
    /**
     * {@code DMA_ATTR_SKIP_CPU_SYNC}: the driver syncs itself (it reuses a buffer across many maps). In Linux v6.12
     * swiotlb still copies the whole buffer into its slot on map ({@code swiotlb_tbl_map_single} always bounces,
     * so a partial device write cannot expose stale slot data) but does not copy back on unmap.
     */
    public static final DmaAttrs SKIP_CPU_SYNC = new DmaAttrs(SKIP_CPU_SYNC_BIT);
    /** {@code DMA_ATTR_NO_WARN}: no "swiotlb buffer is full" line when the pool has no room. */
    public static final DmaAttrs NO_WARN = new DmaAttrs(NO_WARN_BIT);

    /**
     * @param bits see the record description
     * @throws IommuException EINVAL naming the bits this model does not implement
     */
    public DmaAttrs {
        if ((bits & ~KNOWN) != 0) {
            throw new IommuException(Errno.EINVAL, String.format("DMA attributes 0x%x are invalid: this model"
                    + " implements DMA_ATTR_SKIP_CPU_SYNC (0x%x) and DMA_ATTR_NO_WARN (0x%x) only", bits,
                    SKIP_CPU_SYNC_BIT, NO_WARN_BIT));
        }
    }

    /**
     * @param bits the kernel's {@code DMA_ATTR_*} bits
     * @return the attributes, one of the constants when it is one
     * @throws IommuException EINVAL for a bit this model does not implement
     */
    public static DmaAttrs of(long bits) {
        if (bits == 0) {
            return NONE;
        }
        if (bits == SKIP_CPU_SYNC_BIT) {
            return SKIP_CPU_SYNC;
        }
        if (bits == NO_WARN_BIT) {
            return NO_WARN;
        }
        return new DmaAttrs(bits);
    }

    /**
     * @param other more attributes
     * @return both sets
     */
    public DmaAttrs with(DmaAttrs other) {
        return of(bits | other.bits);
    }

    /** @return whether {@code DMA_ATTR_SKIP_CPU_SYNC} is set */
    public boolean skipCpuSync() {
        return (bits & SKIP_CPU_SYNC_BIT) != 0;
    }

    /** @return whether {@code DMA_ATTR_NO_WARN} is set */
    public boolean noWarn() {
        return (bits & NO_WARN_BIT) != 0;
    }

    /** @return the kernel's names, {@code DMA_ATTR_SKIP_CPU_SYNC|DMA_ATTR_NO_WARN}, or {@code 0} */
    @Override
    public String toString() {
        if (bits == 0) {
            return "0";
        }
        String s = skipCpuSync() ? "DMA_ATTR_SKIP_CPU_SYNC" : "";
        if (noWarn()) {
            s = s.isEmpty() ? "DMA_ATTR_NO_WARN" : s + "|DMA_ATTR_NO_WARN";
        }
        return s;
    }
}
