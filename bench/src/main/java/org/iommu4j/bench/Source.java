package org.iommu4j.bench;

import org.iommu4j.api.PhysicalMemory;

/**
 * A driver's source buffer, dirtied before each map (8 bytes of a counter at its start) so that no copy sees the
 * same bytes twice. One per benchmark thread.
 */
public final class Source {
    private final PhysicalMemory memory;
    private final long phys;
    private final byte[] stamp = new byte[8];
    private long count;

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

    /** Writes the next counter value into the buffer's first 8 bytes. */
    public void dirty() {
        long c = ++count;
        for (int i = 0; i < 8; i++) {
            stamp[i] = (byte) (c >>> (8 * i));
        }
        memory.write(phys, stamp, 0, 8);
    }
}
