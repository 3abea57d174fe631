package org.iommu4j.kernel.vfio;

import java.util.ArrayList;
import java.util.List;

/**
 * The ordered index of a container's mappings by their first iova, the role the kernel's {@code dma_list}
 * rb-tree plays in {@code vfio_iommu_type1.c}: floor, ceiling and successor searches in unsigned order. Keys
 * are primitive (no boxing) and kept in sorted chunks of at most {@value #CAP} with an index of each chunk's
 * first key, so a search is at most two binary searches over contiguous arrays (one when it falls in the chunk
 * the last search found), and a put or remove
 * that fits its chunk allocates nothing. Chunks split when full and merge when two neighbours fit in half of
 * one, so any two neighbours hold more than half a chunk. Not thread-safe: the container's lock guards it.
 *
 * @param <V> what each key maps to
 */
final class IovaTree<V> {
    /** Keys per chunk. */
    static final int CAP = 64;

    /** Per chunk: its keys, sign-flipped so that signed order is the unsigned order of the iovas. */
    private long[][] keys = new long[1][];
    /** Per chunk: the values, in the order of its keys. */
    private Object[][] values = new Object[1][];
    /** Per chunk: how many keys it holds (1 to {@link #CAP}). */
    private int[] sizes = new int[1];
    /** Per chunk: its first (flipped) key. */
    private long[] firsts = new long[1];
    private int chunks;
    private int size;
    /** The chunk {@link #chunkFor} found last; any value is safe, it is checked before use. */
    private int hint;

    /** @return how many keys it holds */
    int size() {
        return size;
    }

    /** @return how many chunks hold them (for tests of the merge rule) */
    int chunkCount() {
        return chunks;
    }

    private static long flip(long key) {
        return key ^ Long.MIN_VALUE;
    }

    /**
     * @return the last chunk whose first key is at most {@code k}, or -1. The chunk found last is tried first
     *     (checked against its neighbour's first key, so a stale hint costs only the check): a map and unmap of
     *     the same or nearby iovas find their chunk without the index search.
     */
    private int chunkFor(long k) {
        int c = hint;
        if (c < chunks && firsts[c] <= k && (c + 1 == chunks || k < firsts[c + 1])) {
            return c;
        }
        if (chunks == 0 || k < firsts[0]) {
            return -1;
        }
        int lo = 0;
        int hi = chunks - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (firsts[mid] <= k) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        hint = hi;
        return hi;
    }

    /** @return the first index of chunk {@code c} whose key is above {@code k} (or at least it, if inclusive) */
    private int indexAbove(int c, long k, boolean inclusive) {
        long[] ks = keys[c];
        int lo = 0;
        int hi = sizes[c] - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (ks[mid] < k || !inclusive && ks[mid] == k) {
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
        return lo;
    }

    @SuppressWarnings("unchecked")
    private V at(int c, int i) {
        return (V) values[c][i];
    }

    /**
     * @param key an iova, unsigned
     * @return the value of the greatest key at most {@code key}, or null
     */
    V floor(long key) {
        long k = flip(key);
        int c = chunkFor(k);
        return c < 0 ? null : at(c, indexAbove(c, k, false) - 1);
    }

    /**
     * @param key an iova, unsigned
     * @return the value of the least key at least {@code key}, or null
     */
    V ceiling(long key) {
        return above(key, true);
    }

    /**
     * @param key an iova, unsigned
     * @return the value of the least key above {@code key}, or null
     */
    V higher(long key) {
        return above(key, false);
    }

    private V above(long key, boolean inclusive) {
        long k = flip(key);
        int c = chunkFor(k);
        if (c < 0) {
            return chunks == 0 ? null : at(0, 0);
        }
        int i = indexAbove(c, k, inclusive);
        if (i < sizes[c]) {
            return at(c, i);
        }
        return c + 1 < chunks ? at(c + 1, 0) : null;
    }

    /**
     * @param key an iova, unsigned
     * @return its value, or null
     */
    V get(long key) {
        long k = flip(key);
        int c = chunkFor(k);
        if (c < 0) {
            return null;
        }
        int i = indexAbove(c, k, true);
        return i < sizes[c] && keys[c][i] == k ? at(c, i) : null;
    }

    /**
     * Maps a key, replacing what it mapped.
     *
     * @param key an iova, unsigned
     * @param value not null
     */
    void put(long key, V value) {
        long k = flip(key);
        if (chunks == 0) {
            insertChunk(0);
        }
        int c = Math.max(0, chunkFor(k));
        int i = indexAbove(c, k, true);
        if (i < sizes[c] && keys[c][i] == k) {
            values[c][i] = value;
            return;
        }
        if (sizes[c] == CAP) {
            if (i == CAP && c == chunks - 1) {
                // appending past the last, full chunk (ascending inserts): a new chunk, so that chunks stay full
                insertChunk(c + 1);
                c++;
                i = 0;
            } else {
                split(c);
                if (i > CAP / 2) {
                    c++;
                    i -= CAP / 2;
                }
            }
        }
        int n = sizes[c];
        long[] ks = keys[c];
        Object[] vs = values[c];
        System.arraycopy(ks, i, ks, i + 1, n - i);
        System.arraycopy(vs, i, vs, i + 1, n - i);
        ks[i] = k;
        vs[i] = value;
        sizes[c] = n + 1;
        if (i == 0) {
            firsts[c] = k;
        }
        size++;
    }

    /**
     * @param key an iova, unsigned
     * @return the value it mapped, or null (then nothing changed)
     */
    V remove(long key) {
        long k = flip(key);
        int c = chunkFor(k);
        if (c < 0) {
            return null;
        }
        int i = indexAbove(c, k, true);
        if (i >= sizes[c] || keys[c][i] != k) {
            return null;
        }
        V old = at(c, i);
        int n = sizes[c] - 1;
        long[] ks = keys[c];
        Object[] vs = values[c];
        System.arraycopy(ks, i + 1, ks, i, n - i);
        System.arraycopy(vs, i + 1, vs, i, n - i);
        vs[n] = null;
        sizes[c] = n;
        size--;
        if (n == 0) {
            removeChunk(c);
            return old;
        }
        firsts[c] = ks[0];
        if (c + 1 < chunks && n + sizes[c + 1] <= CAP / 2) {
            merge(c);
        } else if (c > 0 && n + sizes[c - 1] <= CAP / 2) {
            merge(c - 1);
        }
        return old;
    }

    /** @return every value, in unsigned key order */
    List<V> values() {
        List<V> out = new ArrayList<>(size);
        for (int c = 0; c < chunks; c++) {
            for (int i = 0; i < sizes[c]; i++) {
                out.add(at(c, i));
            }
        }
        return out;
    }

    /** Removes every key. */
    void clear() {
        keys = new long[1][];
        values = new Object[1][];
        sizes = new int[1];
        firsts = new long[1];
        chunks = 0;
        size = 0;
    }

    /** Opens an empty chunk at position {@code c}; its first key is set by the insert that follows. */
    private void insertChunk(int c) {
        if (chunks == keys.length) {
            int grown = chunks * 2;
            keys = java.util.Arrays.copyOf(keys, grown);
            values = java.util.Arrays.copyOf(values, grown);
            sizes = java.util.Arrays.copyOf(sizes, grown);
            firsts = java.util.Arrays.copyOf(firsts, grown);
        }
        int after = chunks - c;
        System.arraycopy(keys, c, keys, c + 1, after);
        System.arraycopy(values, c, values, c + 1, after);
        System.arraycopy(sizes, c, sizes, c + 1, after);
        System.arraycopy(firsts, c, firsts, c + 1, after);
        keys[c] = new long[CAP];
        values[c] = new Object[CAP];
        sizes[c] = 0;
        chunks++;
    }

    private void removeChunk(int c) {
        int after = chunks - c - 1;
        System.arraycopy(keys, c + 1, keys, c, after);
        System.arraycopy(values, c + 1, values, c, after);
        System.arraycopy(sizes, c + 1, sizes, c, after);
        System.arraycopy(firsts, c + 1, firsts, c, after);
        chunks--;
        keys[chunks] = null;
        values[chunks] = null;
    }

    /** Moves the upper half of full chunk {@code c} into a new chunk after it. */
    private void split(int c) {
        insertChunk(c + 1);
        int half = CAP / 2;
        System.arraycopy(keys[c], half, keys[c + 1], 0, CAP - half);
        System.arraycopy(values[c], half, values[c + 1], 0, CAP - half);
        java.util.Arrays.fill(values[c], half, CAP, null);
        sizes[c + 1] = CAP - half;
        sizes[c] = half;
        firsts[c + 1] = keys[c + 1][0];
    }

    /** Moves chunk {@code c + 1} to the end of chunk {@code c}, which has room for it, and drops it. */
    private void merge(int c) {
        int n = sizes[c];
        int m = sizes[c + 1];
        System.arraycopy(keys[c + 1], 0, keys[c], n, m);
        System.arraycopy(values[c + 1], 0, values[c], n, m);
        sizes[c] = n + m;
        removeChunk(c + 1);
    }
}
