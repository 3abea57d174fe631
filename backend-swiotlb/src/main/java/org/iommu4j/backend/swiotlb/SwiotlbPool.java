package org.iommu4j.backend.swiotlb;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
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

    private final SwiotlbMem mem;
    private final PhysicalMemory memory;
    private final long start;
    private final int nslabs;
    private final int nareas;
    private final int areaSlabs;
    private final boolean transientPool;
    /** The page order the pool's memory was allocated with, or -1 for a contiguous (boot-time) run. */
    private final int order;
    private final Area[] areas;
    private final long[] origAddr;
    private final int[] allocSize;
    private final int[] list;
    private final int[] padSlots;
    private final int[] mapSize;
    private final boolean[] head;
    /** Per slot: part of a VFIO bounce window, which has no original (its origAddr is meaningless). */
    private final boolean[] window;
    private final AtomicLong used = new AtomicLong();
    private final AtomicLong hiwater = new AtomicLong();
    private final LongAdder toDevice = new LongAdder();
    private final LongAdder fromDevice = new LongAdder();

    /** An area: a lock, a search index and a count of used slots. */
    private static final class Area {
        int used;
        int index;
        int hiwater;
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
        this.list = new int[nslabs];
        this.head = new boolean[nslabs];
        this.window = new boolean[nslabs];
        for (int i = 0; i < nslabs; i++) {
            list[i] = Math.min(IO_TLB_SEGSIZE - (i & (IO_TLB_SEGSIZE - 1)), nslabs - i);
            origAddr[i] = INVALID;
        }
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
        return new BounceStats(nslabs, used.get(), hiwater.get(), toDevice.sum(), fromDevice.sum());
    }

    @Override
    public List<BounceAreaStats> areaStats() {
        List<BounceAreaStats> out = new ArrayList<>(nareas);
        for (int i = 0; i < nareas; i++) {
            Area a = areas[i];
            synchronized (a) {
                out.add(new BounceAreaStats(i, areaSlabs, a.used, a.hiwater));
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
            synchronized (a) {
                a.hiwater = 0;
            }
        }
    }

    long bytesToDevice() {
        return toDevice.sum();
    }

    long bytesFromDevice() {
        return fromDevice.sum();
    }

    long usedSlots() {
        return used.get();
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

    /**
     * The non-dynamic {@code swiotlb_find_slots}: the calling CPU's area first, then the others.
     *
     * @return the first slot, or -1
     */
    int findSlots(Device device, long orig, boolean forWindow, long allocBytes, long allocAlignMask, int cpu) {
        int first = cpu & (nareas - 1);
        int a = first;
        do {
            int index = searchArea(device, a, orig, forWindow, allocBytes, allocAlignMask);
            if (index >= 0) {
                return index;
            }
            a = a + 1 == nareas ? 0 : a + 1;
        } while (a != first);
        return -1;
    }

    /**
     * The kernel's {@code swiotlb_search_pool_area} (v6.12): finds and reserves {@code allocBytes} in one area.
     *
     * @param orig the original's physical address when {@code forWindow} is false (0 included)
     * @param forWindow whether the slots are a VFIO bounce window, which has no original: its slots must then
     *     start on the alignment asked for, where a mapping's must also match its original's low bits
     * @param allocBytes bytes to reserve, padding included: 1 to {@link #SEGMENT_BYTES}
     * @param allocAlignMask the alignment the first slot must have
     * @return the first reserved slot, or -1
     */
    int searchArea(Device device, int areaIndex, long orig, boolean forWindow, long allocBytes,
            long allocAlignMask) {
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
        // the low bits the slot must have: a window's only its alignment; a mapping's, its original's. The
        // kernel skips the original's check when orig_addr is 0, its "no original" (swiotlb_alloc); here "no
        // original" is forWindow, so an original at physical address 0 is matched like any other
        int slotBase = areaIndex * areaSlabs;
        synchronized (area) {
            if (nslots > areaSlabs - area.used) {
                return -1;
            }
            int index = area.index;
            for (int checked = 0; checked < areaSlabs; ) {
                int slot = slotBase + index;
                long tlbAddr = tblDmaAddr + ((long) slot << IO_TLB_SHIFT);
                if ((tlbAddr & allocAlignMask) != 0 || (tlbAddr & iotlbAlignMask) != (orig & iotlbAlignMask)) {
                    index = wrap(index + 1);
                    checked++;
                    continue;
                }
                if (!spansBoundary(slot, nslots, AddressRange.unitsFor(tblDmaAddr, IO_TLB_SIZE), maxSlots)
                        && list[slot] >= nslots) {
                    for (int i = slot; i < slot + nslots; i++) {
                        list[i] = 0;
                        allocSize[i] = (int) (allocBytes - (offset + ((long) (i - slot) << IO_TLB_SHIFT)));
                        window[i] = forWindow;
                    }
                    int count = 0;
                    for (int i = slot - 1; i >= 0 && (i & (IO_TLB_SEGSIZE - 1)) != IO_TLB_SEGSIZE - 1 && list[i] != 0;
                            i--) {
                        list[i] = ++count;
                    }
                    area.index = wrap(index + nslots);
                    area.used += nslots;
                    if (area.used > area.hiwater) {
                        area.hiwater = area.used;
                    }
                    long now = used.addAndGet(nslots);
                    if (now > hiwater.get()) {
                        hiwater.accumulateAndGet(now, Math::max);
                    }
                    mem.countUsed(nslots);
                    return slot;
                }
                index = wrap(index + stride);
                checked += stride;
            }
            return -1;
        }
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
     * Records the original of slots {@link #searchArea} reserved and marks the mapping's first slot, as
     * {@code swiotlb_tbl_map_single} does after the search.
     *
     * @param index the first reserved slot (padding slots included)
     * @param pad padding slots before the mapping's first slot
     * @param allocBytes bytes reserved
     * @return the mapping's first slot
     */
    int record(int index, int pad, long orig, long allocBytes, long mappingSize) {
        int first = index + pad;
        synchronized (areaOf(index)) {
            padSlots[first] = pad;
            int n = nrSlots(allocBytes) - pad;
            for (int i = 0; i < n; i++) {
                origAddr[first + i] = orig + ((long) i << IO_TLB_SHIFT);
            }
            mapSize[first] = (int) mappingSize;
            head[first] = true;
        }
        return first;
    }

    private Area areaOf(int index) {
        return areas[index / areaSlabs];
    }

    @Override
    public void unmap(Device device, long tlbAddr, long mappingSize, DmaDirection direction) {
        mem.unmapIn(this, device, tlbAddr, mappingSize, direction);
    }

    /**
     * The pool's part of {@code swiotlb_tbl_unmap_single}: claims the mapping, copies back where the direction
     * asks (with the size the caller gives: the kernel does not check it against the size mapped, and a larger
     * one is cut at the allocation with the bounce warning), then releases the slots.
     *
     * @throws IommuException EINVAL, with nothing changed, for an address that is not the start of a live
     *     DMA API mapping
     */
    void unmapHere(Device device, long tlbAddr, long mappingSize, DmaDirection direction) {
        int index = slotOf(device, tlbAddr, "unmap");
        int offset = alignOffset(device, 0, tlbAddr);
        claim(index, device, tlbAddr, offset, "unmap", false);
        try {
            if (direction.fromDevice()) {
                bounce(device, tlbAddr, mappingSize, false);
            }
        } finally {
            release(index, offset);
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
     * Takes the live mapping that starts at {@code tlbAddr} out of reach of any other unmap, under its area's
     * lock: its slots stay reserved (and readable by {@link #bounce}) until {@link #release}.
     *
     * @param forWindow whether the caller releases a VFIO bounce window (else it unmaps a DMA API mapping)
     * @throws IommuException EINVAL, with nothing changed, for an address that is not the start of a live
     *     mapping of the kind the caller releases
     */
    private void claim(int index, Device device, long tlbAddr, int offset, String what, boolean forWindow) {
        if (index < 0) {
            throw notLive(what, tlbAddr);
        }
        synchronized (areaOf(index)) {
            if (origAddr[index] == INVALID || !head[index] || ((tlbAddr - start) & (IO_TLB_SIZE - 1)) != offset
                    || (!window[index] && alignOffset(device, 0, origAddr[index]) != offset)) {
                throw notLive(what, tlbAddr);
            }
            if (window[index] != forWindow) {
                throw new IommuException(Errno.EINVAL, String.format("swiotlb: %s of 0x%x, which is %s; nothing"
                        + " was changed", what, tlbAddr, window[index] ? "a VFIO bounce window, not a DMA API"
                        + " mapping" : "a DMA API mapping, not a VFIO bounce window"));
            }
            head[index] = false;
        }
    }

    private static IommuException notLive(String what, long tlbAddr) {
        return new IommuException(Errno.EINVAL, String.format("swiotlb: %s of 0x%x, which is not the start of a"
                + " live bounce mapping; nothing was changed", what, tlbAddr));
    }

    /** Gives back the slots of a mapping that was never handed out (its first copy failed). */
    void abandon(int first, int offset) {
        synchronized (areaOf(first)) {
            head[first] = false;
        }
        release(first, offset);
    }

    /**
     * The kernel's {@code swiotlb_release_slots}: give a {@linkplain #claim claimed} mapping's slots back,
     * padding slots included, merging with free neighbours.
     *
     * @param first the mapping's first slot
     * @param offset the original's offset kept inside that slot
     */
    private void release(int first, int offset) {
        int nslots;
        Area area = areaOf(first);
        synchronized (area) {
            int index = first - padSlots[first];
            nslots = nrSlots((long) allocSize[index] + offset);
            int count = index + nslots < ((index / IO_TLB_SEGSIZE) + 1) * IO_TLB_SEGSIZE && index + nslots < nslabs
                    ? list[index + nslots] : 0;
            for (int i = index + nslots - 1; i >= index; i--) {
                list[i] = ++count;
                origAddr[i] = INVALID;
                allocSize[i] = 0;
                padSlots[i] = 0;
                window[i] = false;
            }
            mapSize[first] = 0;
            for (int i = index - 1; i >= 0 && (i & (IO_TLB_SEGSIZE - 1)) != IO_TLB_SEGSIZE - 1 && list[i] != 0; i--) {
                list[i] = ++count;
            }
            area.used -= nslots;
        }
        used.addAndGet(-nslots);
        mem.countUsed(-nslots);
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
     * The kernel's {@code swiotlb_bounce} (v6.12): copies between the original and its bounce slot. A free
     * slot has no original and nothing is copied. The offset into the slot is taken relative to the original's
     * kept offset and may be negative (a partial sync of a later slot's first bytes); the kernel cannot tell that
     * from a sync before the mapping's first byte, which it copies the same way (v6.9 dropped the "Access before
     * mapping start" and first "Buffer overflow" checks of v6.0-v6.8). A size past the allocation is cut there
     * with a {@code WARN_ONCE}.
     */
    void bounce(Device device, long tlbAddr, long size, boolean toDeviceCopy) {
        int index = (int) ((tlbAddr - start) >>> IO_TLB_SHIFT);
        long orig;
        long remaining;
        boolean inWindow;
        synchronized (areaOf(index)) {
            orig = origAddr[index];
            remaining = allocSize[index];
            inWindow = window[index];
        }
        if (orig == INVALID) {
            return;
        }
        if (inWindow) {
            // a window has no original to copy to or from: its owner, the SWIOTLB-IOMMU, syncs it
            throw new IommuException(Errno.EINVAL, String.format("swiotlb: sync of 0x%x, which is in a VFIO bounce"
                    + " window, not a DMA API mapping; the window is synced through its VFIO container", tlbAddr));
        }
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
            toDevice.add(size);
        } else {
            memory.copy(tlbAddr, orig, size);
            fromDevice.add(size);
        }
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

    /** Marks reserved slots as a window (they have no original) and returns its address. */
    long recordWindow(int index, long size) {
        synchronized (areaOf(index)) {
            int n = nrSlots(size);
            for (int i = 0; i < n; i++) {
                origAddr[index + i] = 0;
            }
            mapSize[index] = (int) size;
            head[index] = true;
        }
        return slotAddr(index);
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
        if (index >= 0) {
            synchronized (areaOf(index)) {
                if (head[index] && window[index] && mapSize[index] != size) {
                    throw new IommuException(Errno.EINVAL, String.format("swiotlb: release of 0x%x with size %d,"
                            + " but %d bytes were mapped there; nothing was unmapped", windowAddr, size,
                            mapSize[index]));
                }
            }
        }
        claim(index, device, windowAddr, 0, "release", true);
        release(index, 0);
    }

    /**
     * Counts bytes a VFIO bounce window copied.
     *
     * @param bytes bytes copied
     * @param towardsDevice direction of the copy
     */
    void countBounced(long bytes, boolean towardsDevice) {
        (towardsDevice ? toDevice : fromDevice).add(bytes);
    }
}
