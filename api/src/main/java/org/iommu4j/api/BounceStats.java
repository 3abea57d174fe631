package org.iommu4j.api;

/**
 * Counters of a {@link BounceBufferPool}, what the kernel shows in debugfs.
 *
 * @param totalSlots slots in the pool ({@code io_tlb_nslabs})
 * @param usedSlots slots held by live mappings ({@code io_tlb_used})
 * @param highWaterSlots the most slots ever held at once ({@code io_tlb_used_hiwater})
 * @param bytesToDevice bytes copied from original buffers into the pool
 * @param bytesFromDevice bytes copied from the pool back to original buffers
 */
public record BounceStats(long totalSlots, long usedSlots, long highWaterSlots, long bytesToDevice,
        long bytesFromDevice) {
}
