package org.iommu4j.kernel.proc;

/**
 * A process's pin count per frame ({@code page->_refcount}'s pin bias for the frames it pinned): open
 * addressing with linear probing over primitive frame addresses and deletion by backward shift, so pinning and
 * unpinning allocate nothing until the table must grow. A frame with no pins has no entry. Not thread-safe: the
 * process's monitor guards it.
 */
final class PinCounts {
    private static final int MIN_CAPACITY = 16;

    private long[] frames = new long[MIN_CAPACITY];
    /** 0 marks an empty slot. */
    private int[] counts = new int[MIN_CAPACITY];
    private int size;

    private static int slot(long frame, int mask) {
        return (int) ((frame >>> 12) * 0x9E37_79B9_7F4A_7C15L >>> 32) & mask;
    }

    private int find(long frame) {
        int mask = frames.length - 1;
        int i = slot(frame, mask);
        while (counts[i] != 0 && frames[i] != frame) {
            i = (i + 1) & mask;
        }
        return i;
    }

    /**
     * @param frame a page-aligned physical address
     * @return its pins, 0 when it has none
     */
    int get(long frame) {
        return counts[find(frame)];
    }

    /** @param frame a frame that gains a pin */
    void increment(long frame) {
        int i = find(frame);
        if (counts[i] != 0) {
            counts[i]++;
            return;
        }
        if (2 * (size + 1) > frames.length) {
            grow();
            i = find(frame);
        }
        frames[i] = frame;
        counts[i] = 1;
        size++;
    }

    /**
     * @param frame a frame with at least one pin
     * @return whether that was its last pin
     */
    boolean decrement(long frame) {
        int i = find(frame);
        if (counts[i] == 0) {
            throw new IllegalStateException("frame 0x" + Long.toHexString(frame) + " has no pins");
        }
        if (counts[i] > 1) {
            counts[i]--;
            return false;
        }
        int mask = frames.length - 1;
        int hole = i;
        for (int j = (i + 1) & mask; counts[j] != 0; j = (j + 1) & mask) {
            int home = slot(frames[j], mask);
            if (((j - home) & mask) >= ((j - hole) & mask)) {
                frames[hole] = frames[j];
                counts[hole] = counts[j];
                hole = j;
            }
        }
        counts[hole] = 0;
        size--;
        return true;
    }

    private void grow() {
        long[] oldFrames = frames;
        int[] oldCounts = counts;
        frames = new long[oldFrames.length * 2];
        counts = new int[oldFrames.length * 2];
        for (int i = 0; i < oldFrames.length; i++) {
            if (oldCounts[i] != 0) {
                int j = find(oldFrames[i]);
                frames[j] = oldFrames[i];
                counts[j] = oldCounts[i];
            }
        }
    }
}
