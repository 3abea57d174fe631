package org.iommu4j.kernel.iommu.dma;

import java.util.ArrayDeque;
import java.util.Map;
import java.util.TreeMap;

/**
 * An IOVA space, the kernel's {@code struct iova_domain} ({@code drivers/iommu/iova.c}, Linux v6.12): a tree of
 * allocated page-frame ranges searched top down below a limit, and in front of it per-CPU range caches
 * ({@code iova_rcache}) of recently freed ranges of 1 to 32 pages, one per power-of-two size.
 *
 * <p>Each CPU has a loaded and a previous magazine of {@value #MAG_SIZE} frame numbers behind its own spin lock
 * (the kernel's {@code cpu_rcache->lock}); full
 * magazines go to a depot shared by the CPUs (its own lock, taken only when a CPU's two magazines are both full or
 * both empty). A cached range stays allocated in the tree, as in the kernel, so {@link #allocFast} from a
 * magazine and {@link #freeFast} into one touch neither the tree nor its lock and allocate nothing. Empty
 * magazines are kept for reuse, as the kernel's magazine slab cache keeps freed ones, so moving magazines to
 * and from the depot allocates nothing either once the caches have grown. The tree is
 * used when the caches miss; its nodes are the only allocation, as the kernel's {@code alloc_iova_mem}.
 *
 * <p>One difference in the tree search: the kernel continues below its last allocation (the cached node,
 * {@code cached32_node} for 32-bit limits) and goes back to the top only when that fails, a next-fit search;
 * the model searches down from the limit every time (first fit from the top), so it fills a hole above its last
 * allocation sooner. Both hand out the highest free, size-aligned range they find. Not modelled:
 * {@code max32_alloc_size} (a shortcut for a full 32-bit space), the depot's delayed trimming
 * ({@code IOVA_DEPOT_DELAY}), CPU hot-unplug.
 */
public final class IovaDomain {
    /** Frame numbers per magazine, {@code IOVA_MAG_SIZE}: 127 makes the kernel's magazine 1 KiB. */
    public static final int MAG_SIZE = 127;
    /** Range caches: sizes 2^0 to 2^5 pages, {@code IOVA_RANGE_CACHE_MAX_SIZE}. */
    public static final int RANGE_CACHE_MAX_SIZE = 6;

    private final long startPfn;
    /** Allocated ranges, first frame to last frame; guarded by itself (the kernel's iova_rbtree_lock). */
    private final TreeMap<Long, Long> tree = new TreeMap<>();
    private final Rcache[] rcaches = new Rcache[RANGE_CACHE_MAX_SIZE];

    /**
     * @param startPfn the lowest frame that may be handed out, at least 1 (0 means failure, as in the kernel)
     * @param cpus CPUs, one cache set each
     */
    public IovaDomain(long startPfn, int cpus) {
        this.startPfn = Math.max(1, startPfn);
        for (int i = 0; i < rcaches.length; i++) {
            rcaches[i] = new Rcache(cpus);
        }
    }

    private static final class Magazine {
        final long[] pfns = new long[MAG_SIZE];
        int size;
    }

    private static final class CpuRcache extends SpinLock {
        Magazine loaded = new Magazine();
        Magazine prev = new Magazine();
    }

    private static final class Rcache {
        final CpuRcache[] cpus;
        /** Full magazines; guarded by itself. */
        final ArrayDeque<Magazine> depot = new ArrayDeque<>();
        /** Empty magazines kept for reuse, as the kernel's {@code iova_magazine_cache} slab keeps freed ones. */
        final ArrayDeque<Magazine> spare = new ArrayDeque<>();

        Rcache(int n) {
            cpus = new CpuRcache[n];
            for (int i = 0; i < n; i++) {
                cpus[i] = new CpuRcache();
            }
        }
    }

    /**
     * The kernel's {@code alloc_iova_fast}: a range of {@code pages} (rounded up to a power of two when it is
     * cacheable) ending at or below {@code limitPfn}, from the calling CPU's cache if it has one, else from the
     * tree, size-aligned.
     *
     * @param cpu the calling CPU
     * @param pages frames wanted, at least 1
     * @param limitPfn the highest frame the range may include
     * @param flushRcache whether to empty every cache and retry once when the tree has no room
     * @return the first frame, or 0 when nothing fits
     */
    public long allocFast(int cpu, long pages, long limitPfn, boolean flushRcache) {
        long size = pages < (1L << (RANGE_CACHE_MAX_SIZE - 1)) ? roundUpPowerOfTwo(pages) : pages;
        long pfn = rcacheGet(cpu, size, limitPfn + 1);
        if (pfn != 0) {
            return pfn;
        }
        pfn = alloc(size, limitPfn, true);
        if (pfn == 0 && flushRcache) {
            flushCaches();
            pfn = alloc(size, limitPfn, true);
        }
        return pfn;
    }

    /**
     * The kernel's {@code free_iova_fast}: into the calling CPU's cache, else back to the tree.
     *
     * @param cpu the calling CPU
     * @param pfn a range's first frame
     * @param pages the size asked of {@link #allocFast}
     */
    public void freeFast(int cpu, long pfn, long pages) {
        long size = pages < (1L << (RANGE_CACHE_MAX_SIZE - 1)) ? roundUpPowerOfTwo(pages) : pages;
        if (!rcacheInsert(cpu, pfn, size)) {
            free(pfn);
        }
    }

    /**
     * The kernel's {@code alloc_iova} top-down search ({@code __alloc_and_insert_iova_range}).
     *
     * @param size frames
     * @param limitPfn the highest frame allowed
     * @param sizeAligned whether to align the start to the size rounded up to a power of two
     * @return the first frame, or 0
     */
    public long alloc(long size, long limitPfn, boolean sizeAligned) {
        long alignMask = sizeAligned ? -(roundUpPowerOfTwo(size)) : -1L;
        synchronized (tree) {
            long high = limitPfn + 1; // exclusive
            Map.Entry<Long, Long> below = tree.lowerEntry(high);
            while (true) {
                if (below != null && below.getValue() + 1 > high) {
                    high = below.getKey(); // a range reaches over high: the gap above it is empty
                    below = tree.lowerEntry(high);
                    continue;
                }
                long low = below == null ? startPfn : Math.max(startPfn, below.getValue() + 1);
                if (high - low >= size) {
                    long candidate = (high - size) & alignMask;
                    if (candidate >= low) {
                        tree.put(candidate, candidate + size - 1);
                        return candidate;
                    }
                }
                if (below == null) {
                    return 0;
                }
                high = below.getKey();
                below = tree.lowerEntry(high);
            }
        }
    }

    /**
     * The kernel's {@code free_iova}: takes a range out of the tree.
     *
     * @param pfn its first frame; an unknown frame is ignored, as the kernel's {@code find_iova} miss
     */
    public void free(long pfn) {
        synchronized (tree) {
            tree.remove(pfn);
        }
    }

    /** @return ranges allocated in the tree, cached ones included */
    public int allocatedRanges() {
        synchronized (tree) {
            return tree.size();
        }
    }

    /**
     * @param pfn a frame
     * @return whether it lies in a range the tree holds (allocated, or cached for reuse)
     */
    public boolean isAllocated(long pfn) {
        synchronized (tree) {
            Map.Entry<Long, Long> e = tree.floorEntry(pfn);
            return e != null && e.getValue() >= pfn;
        }
    }

    /** Empties every CPU's magazines and the depots back into the tree ({@code free_cpu_cached_iovas}). */
    public void flushCaches() {
        for (Rcache rcache : rcaches) {
            for (CpuRcache c : rcache.cpus) {
                c.lock();
                try {
                    drain(c.loaded);
                    drain(c.prev);
                } finally {
                    c.unlock();
                }
            }
            synchronized (rcache.depot) {
                for (Magazine m : rcache.depot) {
                    drain(m);
                }
                rcache.depot.clear();
            }
        }
    }

    private void drain(Magazine m) {
        for (int i = 0; i < m.size; i++) {
            free(m.pfns[i]);
        }
        m.size = 0;
    }

    private long rcacheGet(int cpu, long size, long limitPfn) {
        int log = 63 - Long.numberOfLeadingZeros(size);
        if (log >= RANGE_CACHE_MAX_SIZE || Long.bitCount(size) != 1) {
            return 0;
        }
        Rcache rcache = rcaches[log];
        CpuRcache c = rcache.cpus[cpu];
        c.lock();
        try {
            if (c.loaded.size == 0) {
                if (c.prev.size != 0) {
                    Magazine t = c.prev;
                    c.prev = c.loaded;
                    c.loaded = t;
                } else {
                    synchronized (rcache.depot) {
                        Magazine full = rcache.depot.poll();
                        if (full == null) {
                            return 0;
                        }
                        rcache.spare.push(c.loaded); // the kernel frees the empty one to its slab
                        c.loaded = full;
                    }
                }
            }
            return pop(c.loaded, limitPfn - size);
        } finally {
            c.unlock();
        }
    }

    /** The kernel's {@code iova_magazine_pop}: the newest frame at or below the limit, or 0. */
    private static long pop(Magazine m, long limitPfn) {
        int i = m.size - 1;
        while (m.pfns[i] > limitPfn) {
            if (i == 0) {
                return 0;
            }
            i--;
        }
        long pfn = m.pfns[i];
        m.pfns[i] = m.pfns[--m.size];
        return pfn;
    }

    private boolean rcacheInsert(int cpu, long pfn, long size) {
        int log = 63 - Long.numberOfLeadingZeros(size);
        if (log >= RANGE_CACHE_MAX_SIZE || Long.bitCount(size) != 1) {
            return false;
        }
        Rcache rcache = rcaches[log];
        CpuRcache c = rcache.cpus[cpu];
        c.lock();
        try {
            if (c.loaded.size == MAG_SIZE) {
                if (c.prev.size < MAG_SIZE) {
                    Magazine t = c.prev;
                    c.prev = c.loaded;
                    c.loaded = t;
                } else {
                    synchronized (rcache.depot) {
                        rcache.depot.push(c.loaded);
                        Magazine empty = rcache.spare.poll();
                        c.loaded = empty != null ? empty : new Magazine(); // iova_magazine_alloc, from the slab
                    }
                }
            }
            c.loaded.pfns[c.loaded.size++] = pfn;
            return true;
        } finally {
            c.unlock();
        }
    }

    private static long roundUpPowerOfTwo(long n) {
        return n <= 1 ? 1 : Long.highestOneBit(n - 1) << 1;
    }
}
