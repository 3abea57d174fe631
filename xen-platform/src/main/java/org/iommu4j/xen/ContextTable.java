package org.iommu4j.xen;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.LongAdder;
import org.iommu4j.api.IoPageTable;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.PhysicalMemory;

/**
 * The translations of one context of the hypervisor's IOMMU: bus frame to machine frame with protection bits,
 * and for bus frames below the size of machine memory (where xen-swiotlb maps, bus frame = machine frame) a
 * reference count per frame. Those frames sit in a three-level table of primitive arrays, as
 * {@link SparseFrameTable} keeps them: a lookup is three loads; a leaf covers 512 frames (2 MiB) and stays
 * until the context goes, as the per-frame reference table it replaces did. Bus frames above machine memory
 * (VFIO's iovas may be anywhere) go to an {@link IoPageTable} and are counted once.
 *
 * <p>An entry of a counted frame is one {@code long}: the machine address (machine memory is at most 1 TiB, so
 * bits 12 to 39), a present bit, the {@link IommuProt} bits shifted by one, and the references in bits 40 to
 * 63. Mapping and unmapping compare-and-set the whole entry, so the count and the translation change together
 * and no lock is taken: two devices' contexts share nothing, and one context's callers do not serialise.
 * {@link #lookup} sees each entry whole, before or after a concurrent change.
 */
final class ContextTable {
    /** No entry. */
    static final long ABSENT = -1;
    /** {@link #map}: the frame was mapped by this call. */
    static final int MAPPED = 0;
    /** {@link #map}: the frame was mapped already to the same machine frame and gained a reference. */
    static final int SHARED = 1;
    /** {@link #map}: the frame is mapped to another machine frame, or is not counted and mapped at all. */
    static final int TAKEN = 2;
    /** {@link #map}: the frame has {@link #MAX_REFS} references already. */
    static final int FULL = 3;
    /** References a counted frame can have. */
    static final long MAX_REFS = (1L << 24) - 1;

    private static final int LEAF_SHIFT = 9;
    private static final int LEAF = 1 << LEAF_SHIFT;
    private static final int MID_SHIFT = 2 * LEAF_SHIFT;
    private static final long PRESENT = 1L;
    private static final int PROT_SHIFT = 1;
    private static final long ACCESS = (long) (IommuProt.READ | IommuProt.WRITE) << PROT_SHIFT;
    private static final int REF_SHIFT = 40;
    private static final long REF = 1L << REF_SHIFT;
    private static final long ADDRESS = (REF - 1) & ~PhysicalMemory.PAGE_OFFSET_MASK;
    private static final VarHandle MIDS = MethodHandles.arrayElementVarHandle(long[][][].class);
    private static final VarHandle LEAVES = MethodHandles.arrayElementVarHandle(long[][].class);
    private static final VarHandle ENTRIES = MethodHandles.arrayElementVarHandle(long[].class);

    private final long frames;
    private final long[][][] top;
    private final IoPageTable high = new IoPageTable();
    private final LongAdder tables = new LongAdder();

    /** @param frames machine frames, at most 2<sup>28</sup>: bus frames below this are counted */
    ContextTable(long frames) {
        if (frames > 1L << (REF_SHIFT - PhysicalMemory.PAGE_SHIFT)) {
            throw new IllegalArgumentException("machine memory of 0x" + Long.toHexString(frames) + " frames is more"
                    + " than a context entry addresses");
        }
        this.frames = frames;
        this.top = new long[(int) ((frames + (1L << MID_SHIFT) - 1) >>> MID_SHIFT)][][];
    }

    /** @return whether a bus frame keeps a reference count (it is below the size of machine memory) */
    boolean counted(long bfn) {
        return bfn < frames;
    }

    /**
     * @param busAddress a bus address
     * @param access {@link IommuProt#READ}, {@link IommuProt#WRITE}, or 0
     * @return the machine address plus the offset in the page, or {@link IommuDomain#FAULT_NOT_MAPPED} or
     *     {@link IommuDomain#FAULT_PERMISSION}
     */
    long lookup(long busAddress, int access) {
        long bfn = busAddress >>> PhysicalMemory.PAGE_SHIFT;
        if (bfn >= frames) {
            return high.lookup(busAddress, access);
        }
        long pte = entry(bfn);
        if ((pte & PRESENT) == 0) {
            return IommuDomain.FAULT_NOT_MAPPED;
        }
        if (((long) access << PROT_SHIFT & ACCESS & ~pte) != 0) {
            return IommuDomain.FAULT_PERMISSION;
        }
        return (pte & ADDRESS) | (busAddress & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /**
     * @param bfn a bus frame
     * @return the machine frame it maps, or {@link #ABSENT}
     */
    long target(long bfn) {
        if (bfn >= frames) {
            long maddr = high.lookup(bfn << PhysicalMemory.PAGE_SHIFT, 0);
            return maddr < 0 ? ABSENT : maddr >>> PhysicalMemory.PAGE_SHIFT;
        }
        long pte = entry(bfn);
        return (pte & PRESENT) == 0 ? ABSENT : (pte & ADDRESS) >>> PhysicalMemory.PAGE_SHIFT;
    }

    /**
     * @param bfn a counted bus frame
     * @return its references, 0 when it is not mapped
     */
    long references(long bfn) {
        return entry(bfn) >>> REF_SHIFT;
    }

    private long entry(long bfn) {
        long[][] mid = (long[][]) MIDS.getAcquire(top, (int) (bfn >>> MID_SHIFT));
        if (mid == null) {
            return 0;
        }
        long[] leaf = (long[]) LEAVES.getAcquire(mid, (int) (bfn >>> LEAF_SHIFT) & (LEAF - 1));
        return leaf == null ? 0 : (long) ENTRIES.getAcquire(leaf, (int) bfn & (LEAF - 1));
    }

    /** A counted bus frame's leaf, made (and raced for) if missing. */
    private long[] leafFor(long bfn) {
        int t = (int) (bfn >>> MID_SHIFT);
        long[][] mid = (long[][]) MIDS.getAcquire(top, t);
        if (mid == null) {
            long[][] made = new long[LEAF][];
            mid = (long[][]) MIDS.compareAndExchangeRelease(top, t, null, made);
            if (mid == null) {
                mid = made;
                tables.increment();
            }
        }
        int m = (int) (bfn >>> LEAF_SHIFT) & (LEAF - 1);
        long[] leaf = (long[]) LEAVES.getAcquire(mid, m);
        if (leaf == null) {
            long[] made = new long[LEAF];
            leaf = (long[]) LEAVES.compareAndExchangeRelease(mid, m, null, made);
            if (leaf == null) {
                leaf = made;
                tables.increment();
            }
        }
        return leaf;
    }

    /**
     * Maps a bus frame to a machine frame, or adds a reference to a counted one already mapped to the same
     * machine frame (its protection stays).
     *
     * @return {@link #MAPPED}, {@link #SHARED}, {@link #TAKEN} or {@link #FULL}; only the first two changed anything
     */
    int map(long bfn, long mfn, int prot) {
        if (bfn >= frames) {
            if (high.lookup(bfn << PhysicalMemory.PAGE_SHIFT, 0) != IommuDomain.FAULT_NOT_MAPPED) {
                return TAKEN;
            }
            try {
                high.map(bfn << PhysicalMemory.PAGE_SHIFT, mfn << PhysicalMemory.PAGE_SHIFT,
                        PhysicalMemory.PAGE_SIZE, prot);
                return MAPPED;
            } catch (IommuException e) {
                return TAKEN; // another caller mapped it since the look
            }
        }
        long[] leaf = leafFor(bfn);
        int i = (int) bfn & (LEAF - 1);
        long fresh = REF | (mfn << PhysicalMemory.PAGE_SHIFT) | (long) (prot & IommuProt.ALL) << PROT_SHIFT | PRESENT;
        for (long e = (long) ENTRIES.getAcquire(leaf, i);;) {
            long next;
            if (e == 0) {
                next = fresh;
            } else if ((e & ADDRESS) != mfn << PhysicalMemory.PAGE_SHIFT) {
                return TAKEN;
            } else if (e >>> REF_SHIFT == MAX_REFS) {
                return FULL;
            } else {
                next = e + REF;
            }
            long seen = (long) ENTRIES.compareAndExchange(leaf, i, e, next);
            if (seen == e) {
                return e == 0 ? MAPPED : SHARED;
            }
            e = seen;
        }
    }

    /**
     * Drops one reference to each mapped frame of {@code [bfn, end)}, unmapping those with none left.
     *
     * @param end first bus frame after the range, at most 2<sup>52</sup>
     * @return frames unmapped
     */
    long unmap(long bfn, long end) {
        if (end == bfn + 1 && bfn < frames) {
            return unmapOne(bfn);
        }
        long n = 0;
        long lowEnd = Math.min(end, frames);
        for (long f = bfn; f < lowEnd; ) {
            long[][] mid = (long[][]) MIDS.getAcquire(top, (int) (f >>> MID_SHIFT));
            if (mid == null) {
                f = (f | ((1L << MID_SHIFT) - 1)) + 1;
                continue;
            }
            long leafStart = f & ~(long) (LEAF - 1);
            long leafEnd = Math.min(leafStart + LEAF, lowEnd);
            long[] leaf = (long[]) LEAVES.getAcquire(mid, (int) (f >>> LEAF_SHIFT) & (LEAF - 1));
            if (leaf != null) {
                for (int i = (int) (f - leafStart), to = (int) (leafEnd - leafStart); i < to; i++) {
                    for (long e = (long) ENTRIES.getAcquire(leaf, i); e != 0;) {
                        long next = e >>> REF_SHIFT == 1 ? 0 : e - REF;
                        long seen = (long) ENTRIES.compareAndExchange(leaf, i, e, next);
                        if (seen == e) {
                            n += next == 0 ? 1 : 0;
                            break;
                        }
                        e = seen;
                    }
                }
            }
            f = leafEnd;
        }
        if (end > frames) {
            long from = Math.max(bfn, frames);
            n += high.unmap(from << PhysicalMemory.PAGE_SHIFT, (end - from) << PhysicalMemory.PAGE_SHIFT)
                    >>> PhysicalMemory.PAGE_SHIFT;
        }
        return n;
    }

    /** {@link #unmap} of one counted frame. */
    private long unmapOne(long bfn) {
        long[][] mid = (long[][]) MIDS.getAcquire(top, (int) (bfn >>> MID_SHIFT));
        long[] leaf = mid == null ? null : (long[]) LEAVES.getAcquire(mid, (int) (bfn >>> LEAF_SHIFT) & (LEAF - 1));
        if (leaf == null) {
            return 0;
        }
        int i = (int) bfn & (LEAF - 1);
        for (long e = (long) ENTRIES.getAcquire(leaf, i); e != 0;) {
            long next = e >>> REF_SHIFT == 1 ? 0 : e - REF;
            long seen = (long) ENTRIES.compareAndExchange(leaf, i, e, next);
            if (seen == e) {
                return next == 0 ? 1 : 0;
            }
            e = seen;
        }
        return 0;
    }

    /** @return bytes kept: 8 a slot of the tables of counted frames, and 8 a frame mapped above them */
    long bytes() {
        return 8L * top.length + 8L * LEAF * tables.sum() + 8L * high.mappedPages();
    }
}
