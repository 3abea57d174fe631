package org.iommu4j.xen;

/**
 * A table of one {@code long} per frame, 0 until set, stored in three levels: leaves of 512 entries (4 KiB,
 * one 2 MiB extent of frames) and middle tables of 512 leaves, each allocated when an entry under it is first
 * set to a value other than 0. So a table over a terabyte of frames costs a few hundred bytes until used, and
 * {@link #bytes()} says exactly what it keeps.
 *
 * <p>Writers serialise on the table; readers take no lock and may see an entry as it was before a concurrent
 * write, as a hardware walker may.
 */
final class SparseFrameTable {
    static final int LEAF_SHIFT = 9;
    private static final int LEAF = 1 << LEAF_SHIFT;
    private static final int MID_SHIFT = 2 * LEAF_SHIFT;

    private final long frames;
    private final long[][][] top;
    private int mids;
    private int leaves;

    /** @param frames how many frames the table covers */
    SparseFrameTable(long frames) {
        this.frames = frames;
        this.top = new long[(int) ((frames + (1L << MID_SHIFT) - 1) >>> MID_SHIFT)][][];
    }

    /**
     * @param frame a frame below the table's size
     * @return its entry, 0 if never set
     */
    long get(long frame) {
        long[][] mid = top[(int) (frame >>> MID_SHIFT)];
        if (mid == null) {
            return 0;
        }
        long[] leaf = mid[(int) (frame >>> LEAF_SHIFT) & (LEAF - 1)];
        return leaf == null ? 0 : leaf[(int) frame & (LEAF - 1)];
    }

    /**
     * @param frame a frame below the table's size
     * @param value its new entry; setting 0 where nothing was allocated allocates nothing
     */
    synchronized void set(long frame, long value) {
        if (frame < 0 || frame >= frames) {
            throw new IndexOutOfBoundsException("frame 0x" + Long.toHexString(frame) + " is beyond the table's 0x"
                    + Long.toHexString(frames));
        }
        int t = (int) (frame >>> MID_SHIFT);
        long[][] mid = top[t];
        if (mid == null) {
            if (value == 0) {
                return;
            }
            mid = new long[LEAF][];
            mids++;
            top[t] = mid;
        }
        int m = (int) (frame >>> LEAF_SHIFT) & (LEAF - 1);
        long[] leaf = mid[m];
        if (leaf == null) {
            if (value == 0) {
                return;
            }
            leaf = new long[LEAF];
            leaves++;
            mid[m] = leaf;
        }
        leaf[(int) frame & (LEAF - 1)] = value;
    }

    /** @return bytes the table keeps: its arrays' payload, 8 bytes a reference or entry, headers not counted */
    synchronized long bytes() {
        return 8L * top.length + 8L * LEAF * mids + 8L * LEAF * leaves;
    }
}
