package org.iommu4j.backend.swiotlb;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.BounceAreaStats;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.BounceStats;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.PhysicalMemory;

/**
 * One software IO TLB pool, the kernel's {@code struct io_tlb_pool} ({@code kernel/dma/swiotlb.c}, Linux v6.12):
 * {@code nslabs} slots of {@value #IO_TLB_SIZE} bytes in one physically contiguous run, grouped in segments of
 * {@value #IO_TLB_SEGSIZE} slots that no mapping crosses, and split into areas that each have their own lock.
 * The search and the per-slot bookkeeping follow v6.12's {@code swiotlb_search_pool_area}: each slot keeps the
 * original address it shadows, how much of the allocation remains from it, how many free slots follow it inside
 * its segment (capped at the pool's end, for a transient pool smaller than a segment), and the first slot of a
 * mapping how many padding slots precede it. Since v6.9 a mapping of a page or more whose device has no
 * {@code min_align_mask} and whose caller asks no alignment is page-aligned in the pool.
 *
 * <p>The swiotlb module's {@link SwiotlbMem} owns its pools: the default pool made at load (this object is
 * also what the module exports as {@link BounceBufferPool}, for xen-swiotlb, which maps in the default pool
 * alone, as the kernel's xen-swiotlb does: its remapped pool cannot grow), the pools added while the
 * module runs, and transient pools made for one mapping. Slots reserved as a VFIO bounce window
 * ({@link #allocateWindow}) are marked as such: the DMA API cannot unmap or sync them, and a window release
 * cannot free a DMA API mapping (the SWIOTLB-IOMMU is the seed thread's invention, not in any kernel).
 *
 * <p>Map, unmap and sync allocate nothing and read or change slots only under their area's lock; bytes are
 * copied outside the lock. An unmap claims its mapping under the lock before it copies back, so of two
 * unmaps of one address exactly one succeeds; an address that is not the start of a live mapping is refused
 * with nothing changed (the kernel cannot tell and corrupts its free list; the model refuses).
 */
public final class SwiotlbPool implements BounceBufferPool {
    /** log2 of the slot size. */
    public static final int IO_TLB_SHIFT = 11;
    /** Bytes per slot. */
    public static final int IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
    /** Slots per segment: the most one mapping can span. */
    public static final int IO_TLB_SEGSIZE = 128;
    /** The kernel's default pool: 64 MiB. */
    public static final long IO_TLB_DEFAULT_NSLABS = (64L << 20) >>> IO_TLB_SHIFT;
    /** The kernel's IO_TLB_MIN_SLABS: 1 MiB, the least a pool (default or added) may have. */
    public static final int IO_TLB_MIN_SLABS = (1 << 20) >>> IO_TLB_SHIFT;
    /** The largest allocation one mapping may take, padding included: one segment, 256 KiB. */
    static final long SEGMENT_BYTES = (long) IO_TLB_SIZE * IO_TLB_SEGSIZE;
    private static final long INVALID = -1;
    private static final long PAGE_MASK_LOW = PhysicalMemory.PAGE_SIZE - 1;
    private static final VarHandle LOCK;
    private static final VarHandle STATE = MethodHandles.arrayElementVarHandle(byte[].class);
    /** A slot that starts no mapping. */
    private static final byte NO_HEAD = 0;
    /** The first slot of a mapping whose first copy is under way: not yet live, not yet unmappable. */
    private static final byte MAKING = 1;
    /** The first slot of a live mapping or window. */
    private static final byte LIVE = 2;

    static {
        try {
            LOCK = MethodHandles.lookup().findVarHandle(AreaFields.class, "lock", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final SwiotlbMem mem;
    private final PhysicalMemory memory;
    private final long start;
    private final int nslabs;
    private final int nareas;
    private final int areaSlabs;
    /** log2 of {@link #areaSlabs} when it is a power of two (the kernel's defaults), else -1: divide. */
    private final int areaShift;
    private final boolean transientPool;
    /** The page order the pool's memory was allocated with, or -1 for a contiguous (boot-time) run. */
    private final int order;
    private final Area[] areas;
    private final long[] origAddr;
    private final int[] allocSize;
    /**
     * One bit per slot, set while it is allocated. The kernel keeps, per slot, the count of free slots that
     * follow it in its segment ({@code slots[i].list}) and walks back over the segment to keep the counts right
     * on every allocation and release; {@code list[i] >= n} is exactly "slots {@code i..i+n-1} are free and in
     * one segment and in the pool", which this answers with a mask test, so the search picks the same slot.
     */
    private final long[] usedBits;
    private final int[] padSlots;
    private final int[] mapSize;
    /**
     * Per slot: {@link #NO_HEAD}, or the state of the mapping it starts. A map publishes LIVE with a release store
     * after its first copy, without the lock; readers under the lock read it with acquire.
     */
    private final byte[] head;
    /** Per slot: part of a VFIO bounce window, which has no original (its origAddr is meaningless). */
    private final boolean[] window;
    /** The pool's high-water mark of slots used, updated when an area reaches a new high of its own. */
    private final AtomicLong hiwater = new AtomicLong();

    /**
     * Padding before an area's fields: areas are allocated one after another (after the array that holds them,
     * which every map reads) and would share cache lines. The int fills the 4 bytes after a compressed object
     * header, where HotSpot would otherwise put the area's lock ahead of the longs: a layout dump found it there,
     * on the cache line of the array of areas, so one CPU's lock made every other CPU's search miss.
     */
    @SuppressWarnings("unused")
    private abstract static class AreaPadding {
        int p;
        long p00, p01, p02, p03, p04, p05, p06, p07, p08, p09, p0a, p0b, p0c, p0d, p0e, p0f;
    }

    /**
     * An area's state, the kernel's {@code struct io_tlb_area}: its spin lock, search index and used count, and
     * the counters the model keeps per area (summed when read) so that no map writes a pool-wide field.
     */
    private abstract static class AreaFields extends AreaPadding {
        /** 0 free, 1 held: the kernel's {@code area->lock}, a spin lock. */
        int lock;
        int used;
        int index;
        int hiwater;
        /** Bytes bounced towards the device and back by copies whose slots are here. */
        long toDevice;
        long fromDevice;
    }

    /** An area, padded on both sides. */
    @SuppressWarnings("unused")
    private static final class Area extends AreaFields {
        long p10, p11, p12, p13, p14, p15, p16, p17, p18, p19, p1a, p1b, p1c, p1d, p1e, p1f;

        void lock() {
            int spins = 0;
            while (!LOCK.compareAndSet(this, 0, 1)) {
                if (++spins < 64) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield();
                }
            }
        }

        void unlock() {
            LOCK.setRelease(this, 0);
        }
    }

    /**
     * Lays a pool over memory that is already allocated, as {@code swiotlb_init_io_tlb_pool} does.
     *
     * @param mem the allocator the pool belongs to (its counters, warnings and lifetime)
     * @param kernel the host's services
     * @param start first physical address, aligned to a page
     * @param nslabs slots: a multiple of {@value #IO_TLB_SEGSIZE} times {@code nareas}, or any positive count
     *     with one area (a transient pool)
     * @param nareas areas, a power of two
     * @param transientPool whether the pool serves one mapping and goes with it
     * @param order the page order of its memory, or -1 for a contiguous run
     */
    SwiotlbPool(SwiotlbMem mem, KernelServices kernel, long start, int nslabs, int nareas, boolean transientPool,
            int order) {
        if (nslabs <= 0 || nareas <= 0 || Integer.bitCount(nareas) != 1 || nslabs % nareas != 0
                || (nareas > 1 && (nslabs / nareas) % IO_TLB_SEGSIZE != 0)) {
            throw new IllegalArgumentException("pool of " + nslabs + " slots in " + nareas + " areas is invalid");
        }
        this.mem = mem;
        this.memory = kernel.memory();
        this.start = start;
        this.nslabs = nslabs;
        this.nareas = nareas;
        this.areaSlabs = nslabs / nareas;
        this.areaShift = Integer.bitCount(areaSlabs) == 1 ? Integer.numberOfTrailingZeros(areaSlabs) : -1;
        this.transientPool = transientPool;
        this.order = order;
        this.areas = new Area[nareas];
        for (int i = 0; i < nareas; i++) {
            areas[i] = new Area();
        }
        this.origAddr = new long[nslabs];
        this.allocSize = new int[nslabs];
        this.mapSize = new int[nslabs];
        this.padSlots = new int[nslabs];
        this.usedBits = new long[(nslabs + 63) >>> 6];
        this.head = new byte[nslabs];
        this.window = new boolean[nslabs];
        Arrays.fill(origAddr, INVALID);
    }

    /** @return slots in the pool */
    public int nslabs() {
        return nslabs;
    }

    /** @return areas, each with its own lock */
    public int nareas() {
        return nareas;
    }

    /** @return whether the pool was made for one mapping and goes at its unmap */
    public boolean isTransient() {
        return transientPool;
    }

    int order() {
        return order;
    }

    @Override
    public long start() {
        return start;
    }

    @Override
    public long end() {
        return start + ((long) nslabs << IO_TLB_SHIFT);
    }

    @Override
    public boolean contains(long phys) {
        return Long.compareUnsigned(phys - start, (long) nslabs << IO_TLB_SHIFT) < 0;
    }

    @Override
    public long maxMappingSize(Device device) {
        return maxMappingSizeFor(device);
    }

    /** The kernel's {@code swiotlb_max_mapping_size}: a segment, less the device's minimum alignment. */
    static long maxMappingSizeFor(Device device) {
        long minAlign = device.minAlignMask();
        long rounded = minAlign == 0 ? 0 : AddressRange.unitsFor(minAlign, IO_TLB_SIZE) << IO_TLB_SHIFT;
        return Long.compareUnsigned(rounded, SEGMENT_BYTES) >= 0 ? 0 : SEGMENT_BYTES - rounded;
    }

    /** @return this pool's counters (the module's debugfs figures, over all its pools, are {@link SwiotlbMem}'s) */
    @Override
    public BounceStats stats() {
        return new BounceStats(nslabs, usedSlots(), hiwater.get(), bytesToDevice(), bytesFromDevice());
    }

    @Override
    public List<BounceAreaStats> areaStats() {
        List<BounceAreaStats> out = new ArrayList<>(nareas);
        for (int i = 0; i < nareas; i++) {
            Area a = areas[i];
            a.lock();
            try {
                out.add(new BounceAreaStats(i, areaSlabs, a.used, a.hiwater));
            } finally {
                a.unlock();
            }
        }
        return out;
    }

    /** As writing 0 to debugfs {@code io_tlb_used_hiwater}: every pool's marks and the allocator's go to 0. */
    @Override
    public void resetHighWater() {
        mem.resetHighWater();
    }

    /** Sets this pool's and its areas' high-water marks to 0. */
    void clearHighWater() {
        hiwater.set(0);
        for (Area a : areas) {
            a.lock();
            a.hiwater = 0;
            a.unlock();
        }
    }

    long bytesToDevice() {
        long n = 0;
        for (Area a : areas) {
            a.lock();
            n += a.toDevice;
            a.unlock();
        }
        return n;
    }

    long bytesFromDevice() {
        long n = 0;
        for (Area a : areas) {
            a.lock();
            n += a.fromDevice;
            a.unlock();
        }
        return n;
    }

    /** @return slots held now, the areas' counts summed (each read under its lock) */
    long usedSlots() {
        long held = 0;
        for (Area a : areas) {
            a.lock();
            held += a.used;
            a.unlock();
        }
        return held;
    }

    /**
     * @return slots held and maps still copying in, over the areas, each area read under its lock: a search
     *     that holds an area's lock either saw {@link SwiotlbMem#isClosed} or is counted here
     */
    long[] heldAndMaking() {
        long held = 0;
        long making = 0;
        for (int i = 0; i < nareas; i++) {
            Area a = areas[i];
            a.lock();
            held += a.used;
            for (int slot = i * areaSlabs, end = slot + areaSlabs; a.used > 0 && slot < end; slot++) {
                if ((byte) STATE.getAcquire(head, slot) == MAKING) {
                    making++;
                }
            }
            a.unlock();
        }
        return new long[] {held, making};
    }

    /** The slots used now, each area's count read without its lock (for high-water marks, which may lag). */
    long usedSlotsRacy() {
        long n = 0;
        for (Area a : areas) {
            n += a.used;
        }
        return n;
    }

    /** An area reached a new high of its own: the pool's mark and the allocator's follow the sum. */
    private void noteHigh() {
        long now = usedSlotsRacy();
        if (now > hiwater.get()) {
            hiwater.accumulateAndGet(now, Math::max);
        }
        mem.noteHigh();
    }

    /**
     * The api's {@code swiotlb_tbl_map_single} in this pool alone: the default pool, for xen-swiotlb, never
     * grows (in the kernel a remapped pool sets no {@code can_grow}).
     */
    @Override
    public long map(Device device, long origPhys, long mappingSize, long allocSize, long allocAlignMask,
            DmaDirection direction) {
        return mem.mapSingle(device, origPhys, mappingSize, allocSize, allocAlignMask, false, this);
    }

    private static int nrSlots(long bytes) {
        return (int) AddressRange.unitsFor(bytes, IO_TLB_SIZE);
    }

    /** The kernel's {@code swiotlb_align_offset(dev, align_mask, addr)}. */
    static int alignOffset(Device device, long alignMask, long addr) {
        return (int) (addr & device.minAlignMask() & (alignMask | (IO_TLB_SIZE - 1)));
    }

    long slotAddr(int index) {
        return start + ((long) index << IO_TLB_SHIFT);
    }

    /** What {@link #searchArea} returns when the allocator was closed for unload: nothing was reserved. */
    static final int CLOSED = -2;

    /**
     * The non-dynamic {@code swiotlb_find_slots}: the calling CPU's area first, then the others.
     *
     * @return the first reserved slot, -1 when no area has room, or {@link #CLOSED}
     */
    int findSlots(Device device, long orig, boolean forWindow, long allocBytes, long allocAlignMask, int cpu,
            int pad, long mappingSize) {
        int first = cpu & (nareas - 1);
        int a = first;
        do {
            int index = searchArea(device, a, orig, forWindow, allocBytes, allocAlignMask, pad, mappingSize);
            if (index != -1) {
                return index;
            }
            a = a + 1 == nareas ? 0 : a + 1;
        } while (a != first);
        return -1;
    }

    /**
     * The kernel's {@code swiotlb_search_pool_area} (v6.12): finds and reserves {@code allocBytes} in one area,
     * and records what {@code swiotlb_tbl_map_single} records after the search (the original of each slot and
     * the padding before the mapping's first one), all under the area's lock, taken once.
     *
     * @param orig the original's physical address when {@code forWindow} is false (0 included)
     * @param forWindow whether the slots are a VFIO bounce window, which has no original: its slots must then
     *     start on the alignment asked for, where a mapping's must also match its original's low bits
     * @param allocBytes bytes to reserve, padding included: 1 to {@link #SEGMENT_BYTES}
     * @param allocAlignMask the alignment the first slot must have
     * @param pad padding slots before the mapping's first slot (0 for a window)
     * @param mappingSize the bytes mapped (a window's size)
     * @return the first reserved slot (padding included), -1, or {@link #CLOSED}
     */
    int searchArea(Device device, int areaIndex, long orig, boolean forWindow, long allocBytes,
            long allocAlignMask, int pad, long mappingSize) {
        Area area = areas[areaIndex];
        long boundaryMask = device.segmentBoundaryMask();
        long tblDmaAddr = start & boundaryMask;
        long maxSlots = (boundaryMask >>> IO_TLB_SHIFT) + 1;
        long iotlbAlignMask = forWindow ? 0 : device.minAlignMask();
        int nslots = nrSlots(allocBytes);
        int offset = forWindow ? 0 : alignOffset(device, 0, orig);
        // Historically, and again since v6.9, an allocation of a page or more is page-aligned when nobody asks
        // for another alignment
        if (allocAlignMask == 0 && iotlbAlignMask == 0 && allocBytes >= PhysicalMemory.PAGE_SIZE) {
            allocAlignMask = PAGE_MASK_LOW;
        }
        allocAlignMask |= IO_TLB_SIZE - 1;
        iotlbAlignMask &= ~allocAlignMask;
        long strideMask = Long.compareUnsigned(allocAlignMask, iotlbAlignMask) >= 0 ? allocAlignMask
                : iotlbAlignMask;
        long strideLong = (strideMask >>> IO_TLB_SHIFT) + 1;
        int stride = strideLong > areaSlabs ? areaSlabs : (int) strideLong;
        long boundaryShift = AddressRange.unitsFor(tblDmaAddr, IO_TLB_SIZE);
        // the low bits the slot must have: a window's only its alignment; a mapping's, its original's. The
        // kernel skips the original's check when orig_addr is 0, its "no original" (swiotlb_alloc); here "no
        // original" is forWindow, so an original at physical address 0 is matched like any other
        int slotBase = areaIndex * areaSlabs;
        int slot = -1;
        boolean newHigh = false;
        area.lock();
        try {
            if (mem.isClosed()) {
                return CLOSED;
            }
            if (nslots > areaSlabs - area.used) {
                return -1;
            }
            int index = area.index;
            for (int checked = 0; checked < areaSlabs; ) {
                int candidate = slotBase + index;
                long tlbAddr = tblDmaAddr + ((long) candidate << IO_TLB_SHIFT);
                if ((tlbAddr & allocAlignMask) != 0 || (tlbAddr & iotlbAlignMask) != (orig & iotlbAlignMask)) {
                    index = wrap(index + 1);
                    checked++;
                    continue;
                }
                if (!spansBoundary(candidate, nslots, boundaryShift, maxSlots) && runFree(candidate, nslots)) {
                    slot = candidate;
                    area.index = wrap(index + nslots);
                    break;
                }
                index = wrap(index + stride);
                checked += stride;
            }
            if (slot < 0) {
                return -1;
            }
            markUsed(slot, nslots);
            for (int i = slot; i < slot + nslots; i++) {
                allocSize[i] = (int) (allocBytes - (offset + ((long) (i - slot) << IO_TLB_SHIFT)));
                window[i] = forWindow;
            }
            int first = slot + pad;
            padSlots[first] = pad;
            if (forWindow) {
                for (int i = slot; i < slot + nslots; i++) {
                    origAddr[i] = 0;
                }
                head[first] = LIVE;
            } else {
                for (int i = 0, n = nslots - pad; i < n; i++) {
                    origAddr[first + i] = orig + ((long) i << IO_TLB_SHIFT);
                }
                head[first] = MAKING;
                // the first copy's bytes, counted now (and taken back if it fails): see fill
                area.toDevice += firstCopy(mappingSize, allocSize[first]);
            }
            mapSize[first] = (int) mappingSize;
            area.used += nslots;
            if (area.used > area.hiwater) {
                area.hiwater = area.used;
                newHigh = true;
            }
        } finally {
            area.unlock();
        }
        if (newHigh) {
            noteHigh();
        }
        return slot;
    }

    private int wrap(int index) {
        return index >= areaSlabs ? 0 : index;
    }

    /** The kernel's {@code iommu_is_span_boundary}: would the slots cross the device's segment boundary? */
    private static boolean spansBoundary(long index, long nr, long shift, long boundarySize) {
        long s = (shift + index) & (boundarySize - 1);
        return s + nr > boundarySize;
    }

    /**
     * The kernel's {@code slots[slot].list >= n}: slots {@code slot..slot+n-1} are free, inside one segment and
     * inside the pool.
     */
    private boolean runFree(int slot, int n) {
        if ((slot & (IO_TLB_SEGSIZE - 1)) + n > IO_TLB_SEGSIZE || slot + n > nslabs) {
            return false;
        }
        int last = slot + n - 1;
        int w = slot >>> 6;
        int lastWord = last >>> 6;
        long firstMask = -1L << slot;
        long lastMask = -1L >>> (63 - (last & 63));
        if (w == lastWord) {
            return (usedBits[w] & firstMask & lastMask) == 0;
        }
        if ((usedBits[w] & firstMask) != 0 || (usedBits[lastWord] & lastMask) != 0) {
            return false;
        }
        for (int i = w + 1; i < lastWord; i++) {
            if (usedBits[i] != 0) {
                return false;
            }
        }
        return true;
    }

    private void markUsed(int slot, int n) {
        setBits(slot, n, true);
    }

    private void markFree(int slot, int n) {
        setBits(slot, n, false);
    }

    private void setBits(int slot, int n, boolean used) {
        int last = slot + n - 1;
        for (int w = slot >>> 6, lastWord = last >>> 6; w <= lastWord; w++) {
            long mask = -1L;
            if (w == slot >>> 6) {
                mask &= -1L << slot;
            }
            if (w == lastWord) {
                mask &= -1L >>> (63 - (last & 63));
            }
            usedBits[w] = used ? usedBits[w] | mask : usedBits[w] & ~mask;
        }
    }

    /**
     * The kernel's free-slot count {@code slots[index].list}, from the bitmap: free slots from {@code index} to
     * the next used one, the segment's end or the pool's end (0 for a used slot).
     *
     * @param index a slot
     * @return its count
     */
    int freeRun(int index) {
        Area area = areaOf(index);
        area.lock();
        try {
            int n = 0;
            int limit = Math.min(IO_TLB_SEGSIZE - (index & (IO_TLB_SEGSIZE - 1)), nslabs - index);
            while (n < limit && (usedBits[(index + n) >>> 6] & (1L << (index + n))) == 0) {
                n++;
            }
            return n;
        } finally {
            area.unlock();
        }
    }

    private Area areaOf(int index) {
        return areas[areaShift >= 0 ? index >>> areaShift : index / areaSlabs];
    }

    /**
     * Makes a fresh mapping's first copy, the original into its slots (its slots were reserved and recorded by
     * {@link #searchArea} on this thread, so they are read without the lock), then counts the map as made.
     *
     * @param first the mapping's first slot
     * @param tlb the bounce address
     */
    void fill(Device device, int first, long tlb, long mappingSize) {
        copy(device, tlb, origAddr[first], allocSize[first], mappingSize, true);
        STATE.setRelease(head, first, LIVE);
    }

    /** The bytes a fresh mapping's first copy makes: the mapping, cut at the slot's allocation as the copy cuts it. */
    private static long firstCopy(long mappingSize, long remaining) {
        return Long.compareUnsigned(mappingSize, remaining) > 0 ? remaining : mappingSize;
    }

    @Override
    public void unmap(Device device, long tlbAddr, long mappingSize, DmaDirection direction) {
        mem.unmapIn(this, device, tlbAddr, mappingSize, direction);
    }

    /**
     * The pool's part of {@code swiotlb_tbl_unmap_single}: claims the mapping, copies back where the direction
     * asks (with the size the caller gives: the kernel does not check it against the size mapped, and a larger
     * one is cut at the allocation with the bounce warning), then releases the slots. Without a copy back the
     * claim and the release are one visit under the area's lock.
     *
     * @throws IommuException EINVAL, with nothing changed, for an address that is not the start of a live
     *     DMA API mapping
     */
    void unmapHere(Device device, long tlbAddr, long mappingSize, DmaDirection direction) {
        int index = slotOf(device, tlbAddr, "unmap");
        int offset = alignOffset(device, 0, tlbAddr);
        if (index < 0) {
            throw notLive("unmap", tlbAddr);
        }
        Area area = areaOf(index);
        if (!direction.fromDevice()) {
            area.lock();
            try {
                claim(index, device, tlbAddr, offset, "unmap", false);
                release(area, index, offset);
            } finally {
                area.unlock();
            }
            return;
        }
        area.lock();
        try {
            claim(index, device, tlbAddr, offset, "unmap", false);
        } finally {
            area.unlock();
        }
        long copied = 0;
        try {
            // the claim keeps the slots ours until the release: their record is read without the lock
            copied = copy(device, tlbAddr, origAddr[index], allocSize[index], mappingSize, false);
        } finally {
            area.lock();
            area.fromDevice += copied;
            release(area, index, offset);
            area.unlock();
        }
    }

    /**
     * The slot that would be the first of a mapping at {@code tlbAddr}, the kernel's index computation in
     * {@code swiotlb_release_slots}; whether a mapping lives there is {@link #claim}'s to check.
     *
     * @throws IommuException EINVAL for an address outside the pool
     */
    private int slotOf(Device device, long tlbAddr, String what) {
        if (!contains(tlbAddr)) {
            throw new IommuException(Errno.EINVAL, String.format("swiotlb: %s of 0x%x, which is not in the bounce"
                    + " pool 0x%x-0x%x", what, tlbAddr, start, end() - 1));
        }
        long first = tlbAddr - alignOffset(device, 0, tlbAddr);
        if (Long.compareUnsigned(first, start) < 0) {
            return -1;
        }
        return (int) ((first - start) >>> IO_TLB_SHIFT);
    }

    /**
     * Takes the live mapping that starts at {@code tlbAddr} out of reach of any other unmap; the caller holds
     * the area's lock. Its slots stay reserved (and readable by {@link #bounce}) until {@link #release}.
     *
     * @param forWindow whether the caller releases a VFIO bounce window (else it unmaps a DMA API mapping)
     * @throws IommuException EINVAL, with nothing changed, for an address that is not the start of a live
     *     mapping of the kind the caller releases
     */
    private void claim(int index, Device device, long tlbAddr, int offset, String what, boolean forWindow) {
        if (origAddr[index] == INVALID || (byte) STATE.getAcquire(head, index) != LIVE
                || ((tlbAddr - start) & (IO_TLB_SIZE - 1)) != offset
                || (!window[index] && alignOffset(device, 0, origAddr[index]) != offset)) {
            throw notLive(what, tlbAddr);
        }
        if (window[index] != forWindow) {
            throw new IommuException(Errno.EINVAL, String.format("swiotlb: %s of 0x%x, which is %s; nothing"
                    + " was changed", what, tlbAddr, window[index] ? "a VFIO bounce window, not a DMA API"
                    + " mapping" : "a DMA API mapping, not a VFIO bounce window"));
        }
        head[index] = NO_HEAD;
    }

    private static IommuException notLive(String what, long tlbAddr) {
        return new IommuException(Errno.EINVAL, String.format("swiotlb: %s of 0x%x, which is not the start of a"
                + " live bounce mapping; nothing was changed", what, tlbAddr));
    }

    /** Gives back the slots of a mapping that was never handed out (its first copy failed). */
    void abandon(int first, int offset) {
        Area area = areaOf(first);
        area.lock();
        try {
            head[first] = NO_HEAD;
            area.toDevice -= firstCopy(mapSize[first], allocSize[first]);
            release(area, first, offset);
        } finally {
            area.unlock();
        }
    }

    /**
     * The kernel's {@code swiotlb_release_slots}: give a {@linkplain #claim claimed} mapping's slots back,
     * padding slots included; the caller holds the area's lock.
     *
     * @param first the mapping's first slot
     * @param offset the original's offset kept inside that slot
     */
    private void release(Area area, int first, int offset) {
        int index = first - padSlots[first];
        int nslots = nrSlots((long) allocSize[index] + offset);
        markFree(index, nslots);
        for (int i = index; i < index + nslots; i++) {
            origAddr[i] = INVALID;
            allocSize[i] = 0;
            padSlots[i] = 0;
            window[i] = false;
        }
        mapSize[first] = 0;
        area.used -= nslots;
    }

    @Override
    public void syncForCpu(Device device, long tlbAddr, long size, DmaDirection direction) {
        if (direction.fromDevice()) {
            requireInPool(tlbAddr);
            bounce(device, tlbAddr, size, false);
        }
    }

    @Override
    public void syncForDevice(Device device, long tlbAddr, long size, DmaDirection direction) {
        if (direction.toDevice()) {
            requireInPool(tlbAddr);
            bounce(device, tlbAddr, size, true);
        }
    }

    private void requireInPool(long tlbAddr) {
        if (!contains(tlbAddr)) {
            throw new IommuException(Errno.EINVAL, String.format("swiotlb: sync of 0x%x, which is not in the bounce"
                    + " pool 0x%x-0x%x", tlbAddr, start, end() - 1));
        }
    }

    /**
     * The kernel's {@code swiotlb_bounce} (v6.12) for a sync: reads the slot's record under its area's lock, then
     * copies between the original and its bounce slot. A free slot has no original and nothing is copied.
     */
    void bounce(Device device, long tlbAddr, long size, boolean toDeviceCopy) {
        int index = (int) ((tlbAddr - start) >>> IO_TLB_SHIFT);
        long orig;
        long remaining;
        boolean inWindow;
        Area area = areaOf(index);
        area.lock();
        orig = origAddr[index];
        remaining = allocSize[index];
        inWindow = window[index];
        area.unlock();
        if (orig == INVALID) {
            return;
        }
        if (inWindow) {
            // a window has no original to copy to or from: its owner, the SWIOTLB-IOMMU, syncs it
            throw new IommuException(Errno.EINVAL, String.format("swiotlb: sync of 0x%x, which is in a VFIO bounce"
                    + " window, not a DMA API mapping; the window is synced through its VFIO container", tlbAddr));
        }
        long copied = copy(device, tlbAddr, orig, remaining, size, toDeviceCopy);
        count(area, copied, toDeviceCopy);
    }

    private static void count(Area area, long bytes, boolean towardsDevice) {
        area.lock();
        if (towardsDevice) {
            area.toDevice += bytes;
        } else {
            area.fromDevice += bytes;
        }
        area.unlock();
    }

    /**
     * The copy of {@code swiotlb_bounce}: the offset into the slot is taken relative to the original's kept offset
     * and may be negative (a partial sync of a later slot's first bytes); the kernel cannot tell that from a sync
     * before the mapping's first byte, which it copies the same way (v6.9 dropped the "Access before mapping
     * start" and first "Buffer overflow" checks of v6.0-v6.8). A size past the allocation is cut there with a
     * {@code WARN_ONCE}.
     *
     * @param orig the slot's original
     * @param remaining the slot's {@code alloc_size}
     * @return bytes copied
     */
    private long copy(Device device, long tlbAddr, long orig, long remaining, long size, boolean toDeviceCopy) {
        long tlbOffset = (tlbAddr & (IO_TLB_SIZE - 1)) - alignOffset(device, 0, orig);
        orig += tlbOffset;
        remaining -= tlbOffset;
        if (Long.compareUnsigned(size, remaining) > 0) {
            mem.warnOnce(device, "swiotlb_bounce", String.format(
                    "Buffer overflow detected. Allocation size: %d. Mapping size: %s.", remaining,
                    Long.toUnsignedString(size)));
            size = remaining;
        }
        if (toDeviceCopy) {
            memory.copy(orig, tlbAddr, size);
        } else {
            memory.copy(tlbAddr, orig, size);
        }
        return size;
    }

    /**
     * Reserves slots for a VFIO bounce window whose original is not one physical run: no original address
     * constrains the slots, the window starts on a page boundary, and the caller copies.
     *
     * @param device the device that will use the window
     * @param size bytes, at most {@link #maxMappingSize(Device)}
     * @return the window's physical address
     */
    long allocateWindow(Device device, long size) {
        return mem.allocateWindow(this, device, size);
    }

    /**
     * Returns a window {@link #allocateWindow} reserved.
     *
     * @param device the device
     * @param windowAddr the window's address
     * @param size the window's size, as it was allocated
     * @throws IommuException EINVAL, with nothing released, for an address that is not a live window's start
     *     or a size other than the window's: the SWIOTLB-IOMMU's bookkeeping and the pool's disagree
     */
    void releaseWindow(Device device, long windowAddr, long size) {
        int index = slotOf(device, windowAddr, "release");
        if (index < 0) {
            throw notLive("release", windowAddr);
        }
        Area area = areaOf(index);
        area.lock();
        try {
            if (head[index] == LIVE && window[index] && mapSize[index] != size) {
                throw new IommuException(Errno.EINVAL, String.format("swiotlb: release of 0x%x with size %d,"
                        + " but %d bytes were mapped there; nothing was unmapped", windowAddr, size,
                        mapSize[index]));
            }
            claim(index, device, windowAddr, 0, "release", true);
            release(area, index, 0);
        } finally {
            area.unlock();
        }
    }

    /**
     * Counts bytes a VFIO bounce window copied (in the pool's first area: a window's copies are not the DMA
     * API's hot path).
     *
     * @param bytes bytes copied
     * @param towardsDevice direction of the copy
     */
    void countBounced(long bytes, boolean towardsDevice) {
        count(areas[0], bytes, towardsDevice);
    }
}
