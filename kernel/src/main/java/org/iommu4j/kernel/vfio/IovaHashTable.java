package org.iommu4j.kernel.vfio;

import java.util.Arrays;
import org.iommu4j.api.PinnedPages;

/**
 * The type 1 driver's own record of the live mappings, by first iova: the pinned pages and protection of each,
 * for the reserved-region check and the replay into a domain that arrives later. Open addressing with linear
 * probing over primitive keys (no boxing, no node per entry) and deletion by backward shift (no tombstones), so
 * a put and a remove allocate nothing until the table must grow. Not thread-safe: the container's lock guards
 * it.
 */
final class IovaHashTable {
    private static final int MIN_CAPACITY = 16;

    private long[] keys = new long[MIN_CAPACITY];
    /** Null marks an empty slot. */
    private PinnedPages[] pages = new PinnedPages[MIN_CAPACITY];
    private int[] prots = new int[MIN_CAPACITY];
    private int size;

    /** @return how many mappings it holds */
    int size() {
        return size;
    }

    private static int slot(long iova, int mask) {
        return (int) ((iova >>> 12) * 0x9E37_79B9_7F4A_7C15L >>> 32) & mask;
    }

    /**
     * Records a mapping, replacing one at the same iova.
     *
     * @param iova its first iova
     * @param pinned its pages
     * @param prot its protection
     */
    void put(long iova, PinnedPages pinned, int prot) {
        if (2 * (size + 1) > keys.length) {
            resize(keys.length * 2);
        }
        int mask = keys.length - 1;
        int i = slot(iova, mask);
        while (pages[i] != null && keys[i] != iova) {
            i = (i + 1) & mask;
        }
        if (pages[i] == null) {
            size++;
        }
        keys[i] = iova;
        pages[i] = pinned;
        prots[i] = prot;
    }

    /**
     * @param iova a first iova
     * @return whether a mapping started there and is now forgotten
     */
    boolean remove(long iova) {
        int mask = keys.length - 1;
        int i = slot(iova, mask);
        while (pages[i] != null && keys[i] != iova) {
            i = (i + 1) & mask;
        }
        if (pages[i] == null) {
            return false;
        }
        // backward shift: move later entries of the probe run into the hole when their home allows it
        int hole = i;
        for (int j = (i + 1) & mask; pages[j] != null; j = (j + 1) & mask) {
            int home = slot(keys[j], mask);
            if (((j - home) & mask) >= ((j - hole) & mask)) {
                keys[hole] = keys[j];
                pages[hole] = pages[j];
                prots[hole] = prots[j];
                hole = j;
            }
        }
        pages[hole] = null;
        size--;
        return true;
    }

    /** Forgets every mapping. */
    void clear() {
        keys = new long[MIN_CAPACITY];
        pages = new PinnedPages[MIN_CAPACITY];
        prots = new int[MIN_CAPACITY];
        size = 0;
    }

    /** @return the first iovas, in unsigned order */
    long[] sortedIovas() {
        long[] out = new long[size];
        int n = 0;
        for (int i = 0; i < keys.length; i++) {
            if (pages[i] != null) {
                out[n++] = keys[i] ^ Long.MIN_VALUE;
            }
        }
        Arrays.sort(out);
        for (int i = 0; i < n; i++) {
            out[i] ^= Long.MIN_VALUE;
        }
        return out;
    }

    /**
     * @param iova a first iova that is recorded
     * @return its pages, or null
     */
    PinnedPages pages(long iova) {
        int i = find(iova);
        return i < 0 ? null : pages[i];
    }

    /**
     * @param iova a first iova that is recorded
     * @return its protection, or 0
     */
    int prot(long iova) {
        int i = find(iova);
        return i < 0 ? 0 : prots[i];
    }

    private int find(long iova) {
        int mask = keys.length - 1;
        for (int i = slot(iova, mask); pages[i] != null; i = (i + 1) & mask) {
            if (keys[i] == iova) {
                return i;
            }
        }
        return -1;
    }

    private void resize(int capacity) {
        long[] oldKeys = keys;
        PinnedPages[] oldPages = pages;
        int[] oldProts = prots;
        keys = new long[capacity];
        pages = new PinnedPages[capacity];
        prots = new int[capacity];
        size = 0;
        for (int i = 0; i < oldKeys.length; i++) {
            if (oldPages[i] != null) {
                put(oldKeys[i], oldPages[i], oldProts[i]);
            }
        }
    }
}
