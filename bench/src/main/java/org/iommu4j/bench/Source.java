package org.iommu4j.bench;

import org.iommu4j.api.PhysicalMemory;

/**
 * A driver's source buffer, dirtied before each map (8 bytes of a counter at its start) so that no copy sees the
 * same bytes twice. One per benchmark thread.
 */
public final class Source {
    /** Bytes kept free around what a thread writes on every operation, so no other object shares its cache line. */
    private static final int PAD = 64;
    private final PhysicalMemory memory;
    private final long phys;
    /** The stamp's 8 bytes at {@link #PAD}, a cache line free on each side. */
    private final byte[] stamp = new byte[PAD + 8 + PAD];
    /** The counter at index 8 of 17 longs, a cache line free on each side. */
    private final long[] count = new long[17];

    /**
     * @param memory the memory the buffer is in
     * @param phys its physical address
     */
    public Source(PhysicalMemory memory, long phys) {
        this.memory = memory;
        this.phys = phys;
    }

    /** @return the buffer's physical address */
    public long phys() {
        return phys;
    }

    /**
     * Writes the next counter value into the buffer's first 8 bytes. The counter and the stamp sit in padded
     * arrays: a garbage collection can move any object next to them, and a line written on every operation beside
     * a line every thread reads (the DMA API's ops binding, for one) would slow the other thread, not the model.
     */
    public void dirty() {
        long c = ++count[8];
        for (int i = 0; i < 8; i++) {
            stamp[PAD + i] = (byte) (c >>> (8 * i));
        }
        memory.write(phys, stamp, PAD, 8);
    }
}
