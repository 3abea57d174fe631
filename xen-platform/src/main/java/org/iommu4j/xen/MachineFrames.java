package org.iommu4j.xen;

import java.util.BitSet;
import java.util.List;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.mem.SparseMemory;

/**
 * Machine memory and who owns each frame. Bookkeeping is per 2 MiB extent (512 frames): an owner and, for the
 * m2p, the owner's extent it backs, so a populated 64 GiB domain costs 8 bytes an extent. An extent whose
 * frames are not all one domain's, page for page in its layout, is <em>split</em>: its frames get per-frame
 * owner and m2p entries in sparse tables. Only {@code XENMEM_exchange} splits extents, so split extents are
 * few. The bytes are in a {@link SparseMemory} of machine size, allocated on first write.
 *
 * <p>Changes take this object's lock; owner lookups on the DMA path take none.
 */
final class MachineFrames {
    static final int FREE = -1;
    private static final int SPLIT = -2;
    private static final int EXTENT_SHIFT = SparseFrameTable.LEAF_SHIFT;
    private static final int EXTENT = 1 << EXTENT_SHIFT;

    private final long frames;
    private final SparseMemory memory;
    private final AtomicIntegerArray extentOwner;
    private final int[] extentBackRef;
    private final BitSet freeExtents = new BitSet();
    private final BitSet splitExtents = new BitSet();
    private final SparseFrameTable frameOwner;
    private final SparseFrameTable frameM2p;
    private final List<XenDomain> domains;

    /**
     * @param bytes machine memory, a positive multiple of 2 MiB
     * @param domains the platform's domains, by id, for the m2p of whole extents
     */
    MachineFrames(long bytes, List<XenDomain> domains) {
        this.frames = bytes >>> PhysicalMemory.PAGE_SHIFT;
        this.memory = new SparseMemory(bytes);
        int extents = (int) (frames >>> EXTENT_SHIFT);
        this.extentOwner = new AtomicIntegerArray(extents);
        this.extentBackRef = new int[extents];
        for (int e = 0; e < extents; e++) {
            extentOwner.set(e, FREE);
        }
        freeExtents.set(0, extents);
        this.frameOwner = new SparseFrameTable(frames);
        this.frameM2p = new SparseFrameTable(frames);
        this.domains = domains;
    }

    long frames() {
        return frames;
    }

    SparseMemory memory() {
        return memory;
    }

    /**
     * @param mfn a machine frame
     * @return its owner's domain id, or {@link #FREE} (also for a frame beyond machine memory)
     */
    int ownerOf(long mfn) {
        if (mfn < 0 || mfn >= frames) {
            return FREE;
        }
        int o = extentOwner.get((int) (mfn >>> EXTENT_SHIFT));
        return o == SPLIT ? (int) frameOwner.get(mfn) - 1 : o;
    }

    /**
     * Checks a run of frames by extent: a whole extent is one owner lookup, a split one a lookup per frame.
     *
     * @param mfn first machine frame, not negative
     * @param count frames, at least 1, with {@code mfn + count} not overflowing
     * @param domid a domain
     * @return the first frame of the run the domain does not own (one beyond machine memory counts), or -1
     */
    long firstNotOwned(long mfn, long count, int domid) {
        long end = mfn + count;
        for (long f = mfn; f < end; ) {
            if (f >= frames) {
                return f;
            }
            long extentEnd = Math.min(end, (f | (EXTENT - 1)) + 1);
            int o = extentOwner.get((int) (f >>> EXTENT_SHIFT));
            if (o == SPLIT) {
                for (; f < extentEnd; f++) {
                    if ((int) frameOwner.get(f) - 1 != domid) {
                        return f;
                    }
                }
            } else if (o != domid) {
                return f;
            }
            f = extentEnd;
        }
        return -1;
    }

    /**
     * @param mfn a machine frame
     * @param domid the domain asking
     * @return the domain's pfn the frame backs, or -1 if the domain does not own it
     */
    long pfnOf(long mfn, int domid) {
        if (mfn < 0 || mfn >= frames) {
            return -1;
        }
        int e = (int) (mfn >>> EXTENT_SHIFT);
        int o = extentOwner.get(e);
        if (o == SPLIT) {
            return (int) frameOwner.get(mfn) - 1 == domid ? frameM2p.get(mfn) : -1;
        }
        return o != domid ? -1 : domains.get(domid).pfnInExtent(extentBackRef[e], (int) (mfn & (EXTENT - 1)));
    }

    /** @return frames no domain owns */
    synchronized long freeFrames() {
        long n = (long) freeExtents.cardinality() << EXTENT_SHIFT;
        for (int e = splitExtents.nextSetBit(0); e >= 0; e = splitExtents.nextSetBit(e + 1)) {
            for (long f = (long) e << EXTENT_SHIFT; f < (long) (e + 1) << EXTENT_SHIFT; f++) {
                if (frameOwner.get(f) == 0) {
                    n++;
                }
            }
        }
        return n;
    }

    /**
     * Gives a domain whole extents, the highest free ones first, as Xen's heap allocator takes the highest zone
     * first.
     *
     * @param domid the domain
     * @param count extents
     * @return the first machine frame of each, in the order taken (highest first)
     * @throws IommuException {@link Errno#ENOMEM} when fewer are free; nothing is taken
     */
    synchronized long[] populate(int domid, String name, int count) {
        if (freeExtents.cardinality() < count) {
            throw new IommuException(Errno.ENOMEM, String.format("xen: cannot populate d%d (%s) with %d MiB: %d MiB"
                    + " of machine memory is free in whole 2 MiB extents: build the platform with more"
                    + " machineMemory", domid, name, (long) count * 2, (long) freeExtents.cardinality() * 2));
        }
        long[] out = new long[count];
        int e = (int) (frames >>> EXTENT_SHIFT);
        for (int i = 0; i < count; i++) {
            e = freeExtents.previousSetBit(e - 1);
            freeExtents.clear(e);
            out[i] = (long) e << EXTENT_SHIFT;
        }
        return out;
    }

    /** Takes back whole extents a domain was given and never split, as when its kernel failed to boot. */
    synchronized void unpopulate(long[] firstMfns) {
        for (long m : firstMfns) {
            int e = (int) (m >>> EXTENT_SHIFT);
            extentOwner.set(e, FREE);
            extentBackRef[e] = 0;
            freeExtents.set(e);
        }
    }

    /** Records that a domain's extent {@code pfnExtent} is backed by the machine extent at {@code firstMfn}. */
    synchronized void bind(int domid, long firstMfn, int pfnExtent) {
        int e = (int) (firstMfn >>> EXTENT_SHIFT);
        extentBackRef[e] = pfnExtent;
        extentOwner.set(e, domid);
    }

    /**
     * Finds 2^order free machine frames, aligned to their size and wholly below {@code limit}, the highest
     * such run first, looking in split extents before splitting a whole free one.
     *
     * @return the run's first frame, or -1
     */
    synchronized long findRun(int order, long limit) {
        int count = 1 << order;
        for (int e = splitExtents.previousSetBit(Integer.MAX_VALUE); e >= 0; e = splitExtents.previousSetBit(e - 1)) {
            long base = (long) e << EXTENT_SHIFT;
            for (long at = base + EXTENT - count; at >= base; at -= count) {
                if (at + count <= limit && freeRun(at, count)) {
                    return at;
                }
            }
        }
        int below = (int) (Math.min(frames, limit) >>> EXTENT_SHIFT);
        int e = freeExtents.previousSetBit(below - 1);
        if (e < 0) {
            return -1;
        }
        split(e);
        return ((long) e << EXTENT_SHIFT) + EXTENT - count;
    }

    private boolean freeRun(long at, int count) {
        for (long f = at; f < at + count; f++) {
            if (frameOwner.get(f) != 0) {
                return false;
            }
        }
        return true;
    }

    /** Gives every frame of an extent its own owner and m2p entry. */
    private void split(int e) {
        int o = extentOwner.get(e);
        if (o == SPLIT) {
            return;
        }
        long base = (long) e << EXTENT_SHIFT;
        for (int i = 0; i < EXTENT; i++) {
            if (o != FREE) {
                frameOwner.set(base + i, o + 1);
                frameM2p.set(base + i, domains.get(o).pfnInExtent(extentBackRef[e], i));
            }
        }
        freeExtents.clear(e);
        splitExtents.set(e);
        extentOwner.set(e, SPLIT);
    }

    /** Gives one frame to a domain, as the frame behind its {@code pfn}; the frame must be free. */
    synchronized void claim(long mfn, int domid, long pfn) {
        split((int) (mfn >>> EXTENT_SHIFT));
        frameM2p.set(mfn, pfn);
        frameOwner.set(mfn, domid + 1);
    }

    /** Takes a frame back from its owner and scrubs it, as Xen scrubs freed pages. */
    synchronized void release(long mfn) {
        split((int) (mfn >>> EXTENT_SHIFT));
        frameOwner.set(mfn, 0);
        frameM2p.set(mfn, 0);
        memory.fill(mfn << PhysicalMemory.PAGE_SHIFT, PhysicalMemory.PAGE_SIZE, (byte) 0);
    }

    /** @return bytes of bookkeeping kept: the extent tables, the sparse frame tables, the storage's chunk table */
    synchronized long bytes() {
        long extents = extentBackRef.length;
        return 4 * extents + 4 * extents + 2 * (extents + 7) / 8 + frameOwner.bytes() + frameM2p.bytes()
                + memory.indexBytes();
    }
}
