package org.iommu4j.api;

/**
 * VFIO's numbers, as in {@code include/uapi/linux/vfio.h}, plus the one iommu4j adds for the seed thread's
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
