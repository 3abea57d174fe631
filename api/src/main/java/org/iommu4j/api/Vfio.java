package org.iommu4j.api;

/**
 * VFIO's numbers, as in {@code include/uapi/linux/vfio.h} of Linux v6.12, plus the one iommu4j adds for the seed thread's
 * SWIOTLB-IOMMU driver.
 */
public final class Vfio {
    /** The VFIO API version {@code VFIO_GET_API_VERSION} answers. */
    public static final int API_VERSION = 0;
    /** {@code VFIO_TYPE1_IOMMU}: a translating IOMMU managed through the iommu core. */
    public static final int TYPE1_IOMMU = 1;
    /** {@code VFIO_TYPE1v2_IOMMU}: type 1 with the v2 unmap rules (no splitting a mapping). */
    public static final int TYPE1v2_IOMMU = 3;
    /** {@code VFIO_NOIOMMU_IOMMU}: no translation, no isolation; iova = physical address. */
    public static final int NOIOMMU_IOMMU = 8;
    /**
     * iommu4j's own type for a SWIOTLB-IOMMU driver: no isolation, DMA through bounce buffers where the
     * buffer is not directly reachable. The kernel's numbers run to the low teens; 0x5100 stays clear of them.
     */
    public static final int SWIOTLB_IOMMU = 0x5100;
    /** Passed as the iova of a map request when the iommu type chooses the device address itself. */
    public static final long ANY_IOVA = -1L;

    /** {@code VFIO_UNMAP_ALL}: the extension that says {@link #DMA_UNMAP_FLAG_ALL} works (since 1.2). */
    public static final int UNMAP_ALL = 9;
    /**
     * {@code VFIO_UPDATE_VADDR}: the extension that says {@link #DMA_MAP_FLAG_VADDR} and
     * {@link #DMA_UNMAP_FLAG_VADDR} work; type 1 answers it only once the container's type is set (since 1.2).
     */
    public static final int UPDATE_VADDR = 10;
    /** {@code VFIO_DMA_MAP_FLAG_VADDR}: a map request that re-points an invalidated mapping's vaddr (since 1.2). */
    public static final int DMA_MAP_FLAG_VADDR = 1 << 2;
    /** {@code VFIO_DMA_UNMAP_FLAG_ALL}: unmap every mapping; iova and size must be 0 (since 1.2). */
    public static final int DMA_UNMAP_FLAG_ALL = 1 << 1;
    /**
     * {@code VFIO_DMA_UNMAP_FLAG_VADDR}: invalidate the vaddr of the mappings in range instead of unmapping
     * them; the device keeps its access (since 1.2).
     */
    public static final int DMA_UNMAP_FLAG_VADDR = 1 << 2;
    /** The {@code VFIO_IOMMU_GET_INFO} ioctl, {@code _IO(VFIO_TYPE, VFIO_BASE + 12)} (since 1.2). */
    public static final int IOMMU_GET_INFO = 0x3b70;
    /** The {@code VFIO_IOMMU_MAP_DMA} ioctl, {@code _IO(VFIO_TYPE, VFIO_BASE + 13)} (since 1.2). */
    public static final int IOMMU_MAP_DMA = 0x3b71;
    /** The {@code VFIO_IOMMU_UNMAP_DMA} ioctl, {@code _IO(VFIO_TYPE, VFIO_BASE + 14)} (since 1.2). */
    public static final int IOMMU_UNMAP_DMA = 0x3b72;

    /**
     * Names one of the container ioctls above, for messages.
     *
     * @param request {@link #IOMMU_GET_INFO}, {@link #IOMMU_MAP_DMA} or {@link #IOMMU_UNMAP_DMA}
     * @return for example {@code VFIO_IOMMU_MAP_DMA}, or the number in hex (since 1.2)
     */
    public static String ioctlName(int request) {
        switch (request) {
            case IOMMU_GET_INFO: return "VFIO_IOMMU_GET_INFO";
            case IOMMU_MAP_DMA: return "VFIO_IOMMU_MAP_DMA";
            case IOMMU_UNMAP_DMA: return "VFIO_IOMMU_UNMAP_DMA";
            default: return "ioctl 0x" + Integer.toHexString(request);
        }
    }

    private Vfio() {
    }

    /**
     * Names an iommu type, for messages.
     *
     * @param type a type number
     * @return for example {@code VFIO_NOIOMMU_IOMMU(8)}, or {@code unknown(42)}
     */
    public static String typeName(int type) {
        String name;
        switch (type) {
            case TYPE1_IOMMU: name = "VFIO_TYPE1_IOMMU"; break;
            case TYPE1v2_IOMMU: name = "VFIO_TYPE1v2_IOMMU"; break;
            case NOIOMMU_IOMMU: name = "VFIO_NOIOMMU_IOMMU"; break;
            case SWIOTLB_IOMMU: name = "VFIO_SWIOTLB_IOMMU"; break;
            default: name = "unknown"; break;
        }
        return name + "(" + type + ")";
    }
}
