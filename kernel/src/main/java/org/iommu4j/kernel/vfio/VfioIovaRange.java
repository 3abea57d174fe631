package org.iommu4j.kernel.vfio;

/**
 * One valid IOVA range of a type 1 container, as {@code struct vfio_iova_range} of the
 * {@code VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE} capability gives it (Linux v6.12): both ends inclusive and
 * unsigned, so that the range can reach {@code 0xffffffffffffffff}.
 *
 * @param start the first valid address
 * @param end the last valid address
 */
public record VfioIovaRange(long start, long end) {

    /** @return {@code [0x<start>-0x<end>]} */
    @Override
    public String toString() {
        return String.format("[0x%x-0x%x]", start, end);
    }
}
