package org.iommu4j.kernel.vfio;

import java.util.List;

/**
 * The answer of {@code VFIO_IOMMU_GET_INFO} for a type 1 container ({@code vfio_iommu_type1_get_info},
 * {@code drivers/vfio/vfio_iommu_type1.c}, Linux v6.12), with its capability chain as typed fields: the
 * {@code VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE} ranges, the {@code VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION} page
 * sizes and bitmap limit, and {@code VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL}.
 *
 * @param flags {@link #FLAG_PGSIZES} and {@link #FLAG_CAPS}
 * @param iovaPgsizes the page sizes the container maps with (the AND of its domains' bitmaps, at least 4 KiB);
 *     its lowest bit is the alignment of every map and unmap
 * @param iovaRanges where a map may go: the whole 64-bit space minus every attached group's reserved regions
 *     (the x86 MSI window, RMRRs)
 * @param migrationPgsizeBitmap the migration capability's page size: the smallest one only
 * @param maxDirtyBitmapSize the migration capability's largest dirty bitmap, in bytes
 * @param dmaAvail how many more mappings the container takes before {@code ENOSPC}
 */
public record VfioIommuInfo(int flags, long iovaPgsizes, List<VfioIovaRange> iovaRanges,
        long migrationPgsizeBitmap, long maxDirtyBitmapSize, int dmaAvail) {
    /** {@code VFIO_IOMMU_INFO_PGSIZES}: {@link #iovaPgsizes} is valid. */
    public static final int FLAG_PGSIZES = 1;
    /** {@code VFIO_IOMMU_INFO_CAPS}: a capability chain follows. */
    public static final int FLAG_CAPS = 1 << 1;
    /** {@code DIRTY_BITMAP_SIZE_MAX}: the bitmap of {@code INT_MAX} pages, rounded up to 64 bits, in bytes. */
    public static final long DIRTY_BITMAP_SIZE_MAX = 1L << 28;

    /**
     * Copies the ranges.
     *
     * @param flags see the record description
     * @param iovaPgsizes see the record description
     * @param iovaRanges see the record description
     * @param migrationPgsizeBitmap see the record description
     * @param maxDirtyBitmapSize see the record description
     * @param dmaAvail see the record description
     */
    public VfioIommuInfo {
        iovaRanges = List.copyOf(iovaRanges);
    }
}
