package org.iommu4j.xen;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import org.iommu4j.api.IoPageTable;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.PhysicalMemory;

/**
 * The translations of one context of the hypervisor's IOMMU: bus frame to machine frame with protection bits,
 * and for bus frames below the size of machine memory (where xen-swiotlb maps, bus frame = machine frame) a
 * reference count per frame. Those frames sit in a three-level table of primitive arrays, as
 * {@link SparseFrameTable} keeps them: a lookup is three loads; a leaf covers 512 frames (2 MiB) and keeps its
 * entries and, once a frame in it is mapped twice, its extra references. Bus frames above machine memory
 * (VFIO's iovas may be anywhere) go to an {@link IoPageTable} and are counted once.
 *
 * <p>An entry is the machine address OR'ed with a present bit and the {@link IommuProt} bits shifted by one, as
 * in {@link IoPageTable}. Writers serialise on the context that owns the table (one lock per context, so no
 * lock is shared between devices or domains); {@link #lookup} takes none and sees each entry whole, before or
 * after a concurrent write. A leaf is unlinked only by an unmap whose range covers all of it, once it is
 * empty, so that mapping and unmapping one frame in a loop allocates nothing after the first map.
 */
final class ContextTable {
    /** No entry. */
    static final long ABSENT = -1;

    private static final int LEAF_SHIFT = 9;
    private static final int LEAF = 1 << LEAF_SHIFT;
    private static final int MID_SHIFT = 2 * LEAF_SHIFT;
    private static final long PRESENT = 1L;
    private static final int PROT_SHIFT = 1;
    private static final long ACCESS = (long) (IommuProt.READ | IommuProt.WRITE) << PROT_SHIFT;
    private static final VarHandle MIDS = MethodHandles.arrayElementVarHandle(Leaf[][].class);
    private static final VarHandle LEAVES = MethodHandles.arrayElementVarHandle(Leaf[].class);
    private static final VarHandle ENTRIES = MethodHandles.arrayElementVarHandle(long[].class);

    /** 512 frames: their entries (0 for none) and, once needed, their references beyond the first. */
    private static final class Leaf {
        final long[] entries = new long[LEAF];
        long[] extra;
        int live;
    }

    private final long frames;
    private final Leaf[][] top;
    private final IoPageTable high = new IoPageTable();
    private int mids;
    private int leaves;
    private int extras;
    private long lowMapped;

    /** @param frames machine frames: bus frames below this are counted, those above are not */
    ContextTable(long frames) {
        this.frames = frames;
        this.top = new Leaf[(int) ((frames + (1L << MID_SHIFT) - 1) >>> MID_SHIFT)][];
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
        return (pte & ~PhysicalMemory.PAGE_OFFSET_MASK) | (busAddress & PhysicalMemory.PAGE_OFFSET_MASK);
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
        return (pte & PRESENT) == 0 ? ABSENT : pte >>> PhysicalMemory.PAGE_SHIFT;
    }

    private long entry(long bfn) {
        Leaf[] mid = (Leaf[]) MIDS.getAcquire(top, (int) (bfn >>> MID_SHIFT));
        if (mid == null) {
            return 0;
        }
        Leaf leaf = (Leaf) LEAVES.getAcquire(mid, (int) (bfn >>> LEAF_SHIFT) & (LEAF - 1));
        return leaf == null ? 0 : (long) ENTRIES.getAcquire(leaf.entries, (int) bfn & (LEAF - 1));
    }

    /** A counted bus frame's leaf, made if missing; caller holds the owner's lock. */
    private Leaf leafFor(long bfn) {
        int t = (int) (bfn >>> MID_SHIFT);
        Leaf[] mid = top[t];
        if (mid == null) {
            mid = new Leaf[LEAF];
            mids++;
            MIDS.setRelease(top, t, mid);
        }
        int m = (int) (bfn >>> LEAF_SHIFT) & (LEAF - 1);
        Leaf leaf = mid[m];
        if (leaf == null) {
            leaf = new Leaf();
            leaves++;
            LEAVES.setRelease(mid, m, leaf);
        }
        return leaf;
    }

    /**
     * Maps an unmapped bus frame, or adds a reference to a counted one already mapped to the same machine frame
     * (its protection stays); the caller checked which. Caller holds the owner's lock.
     */
    void map(long bfn, long mfn, int prot) {
        if (bfn >= frames) {
            high.map(bfn << PhysicalMemory.PAGE_SHIFT, mfn << PhysicalMemory.PAGE_SHIFT, PhysicalMemory.PAGE_SIZE,
                    prot);
            return;
        }
        Leaf leaf = leafFor(bfn);
        int i = (int) bfn & (LEAF - 1);
        if (leaf.entries[i] != 0) {
            if (leaf.extra == null) {
                leaf.extra = new long[LEAF];
                extras++;
            }
            leaf.extra[i]++;
            return;
        }
        ENTRIES.setRelease(leaf.entries, i, (mfn << PhysicalMemory.PAGE_SHIFT)
                | (long) (prot & IommuProt.ALL) << PROT_SHIFT | PRESENT);
        leaf.live++;
        lowMapped++;
    }

    /**
     * Drops one reference to each mapped frame of {@code [bfn, end)}, unmapping those with none left. Caller
     * holds the owner's lock.
     *
     * @param end first bus frame after the range, at most 2<sup>52</sup>
     * @return frames unmapped
     */
    long unmap(long bfn, long end) {
        long n = 0;
        long lowEnd = Math.min(end, frames);
        for (long f = bfn; f < lowEnd; ) {
            Leaf[] mid = top[(int) (f >>> MID_SHIFT)];
            if (mid == null) {
                f = (f | ((1L << MID_SHIFT) - 1)) + 1;
                continue;
            }
            int m = (int) (f >>> LEAF_SHIFT) & (LEAF - 1);
            Leaf leaf = mid[m];
            long leafStart = f & ~(long) (LEAF - 1);
            long leafEnd = Math.min(leafStart + LEAF, lowEnd);
            if (leaf != null) {
                for (int i = (int) (f - leafStart), to = (int) (leafEnd - leafStart); i < to; i++) {
                    if (leaf.entries[i] == 0) {
                        continue;
                    }
                    if (leaf.extra != null && leaf.extra[i] > 0) {
                        leaf.extra[i]--;
                        continue;
                    }
                    ENTRIES.setRelease(leaf.entries, i, 0L);
                    leaf.live--;
                    lowMapped--;
                    n++;
                }
                if (leaf.live == 0 && f == leafStart && leafEnd == leafStart + LEAF) {
                    // The range covered the whole leaf and it is empty: a lookup still holding it finds nothing.
                    LEAVES.setRelease(mid, m, null);
                    leaves--;
                    if (leaf.extra != null) {
                        extras--;
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

    /** @return bytes kept: the arrays' payload, 8 bytes a reference or entry, and 8 a frame mapped above */
    long bytes() {
        return 8L * top.length + 8L * LEAF * mids + 8L * LEAF * (leaves + extras) + 8L * high.mappedPages();
    }

    /** @return frames mapped */
    long mappedFrames() {
        return lowMapped + high.mappedPages();
    }
}
