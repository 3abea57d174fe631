package org.iommu4j.api;

/**
 * The counters of one area of a {@link BounceBufferPool}: the kernel's {@code struct io_tlb_area}, which has its
 * own lock and its own count of used slots. A leak check can see which area a mapping that was never unmapped
 * still holds.
 *
 * @param index the area's number, 0 upward; a CPU searches area {@code cpu & (areas - 1)} first
 * @param totalSlots slots in the area ({@code area_nslabs})
 * @param usedSlots slots held by live mappings now ({@code io_tlb_area.used})
 * @param highWaterSlots the most slots the area ever held at once (not in the kernel's debugfs, which keeps
 *     one high-water mark per pool; {@link BounceStats#highWaterSlots()} is that one)
 * @since 1.2
 */
public record BounceAreaStats(int index, long totalSlots, long usedSlots, long highWaterSlots) {
}
