package org.iommu4j.backend.swiotlb;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.BounceStats;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PhysicalMemory;

/**
 * The software IO TLB: {@code nslabs} slots of {@value #IO_TLB_SIZE} bytes in one physically contiguous run,
 * grouped in segments of {@value #IO_TLB_SEGSIZE} slots that no mapping crosses, and split into areas that
 * each have their own lock; a CPU searches its own area first and then walks the others. The search and the
 * per-slot bookkeeping follow the kernel's: each slot keeps the original address it shadows, how much of
 * the allocation remains from it, and how many free slots follow it inside its segment; the first slot of a
 * mapping also keeps the mapping size, which an unmap must repeat. Slots reserved as a VFIO bounce window
 * ({@link #allocateWindow}) are marked as such: the DMA API cannot unmap or sync them, and a window release
 * cannot free a DMA API mapping.
 *
 * <p>Map, unmap and sync allocate nothing and read or change slots only under their area's lock; bytes are
 * copied outside the lock. An unmap claims its mapping under the lock before it copies back, so of two
 * unmaps of one address exactly one succeeds.
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
    private static final long INVALID = -1;
    private static final long PAGE_MASK_LOW = PhysicalMemory.PAGE_SIZE - 1;

    private final KernelServices kernel;
    private final PhysicalMemory memory;
    private final long start;
    private final int nslabs;
    private final int nareas;
    private final int areaSlabs;
    private final Area[] areas;
    private final long[] origAddr;
    private final int[] allocSize;
    private final int[] list;
    private final int[] mapSize;
    private final boolean[] head;
    /** Per slot: part of a VFIO bounce window, which has no original (its origAddr is meaningless). */
    private final boolean[] window;
    private final AtomicLong used = new AtomicLong();
    private final AtomicLong hiwater = new AtomicLong();
    private final LongAdder toDevice = new LongAdder();
    private final LongAdder fromDevice = new LongAdder();
    private final Ratelimit fullWarnings;
    /** dev_warn_once's flag: one per call site in the kernel, so one per pool here, whichever the device. */
    private final AtomicBoolean invalidSizesWarned = new AtomicBoolean();

    /** An area: a lock, a search index and a count of used slots. */
    private static final class Area {
        int used;
        int index;
    }

    /**
     * Lays a pool over memory that is already allocated.
     *
     * @param kernel the host's services (memory, CPU number, log)
     * @param start first physical address, aligned to a page
     * @param nslabs slots, a positive multiple of {@value #IO_TLB_SEGSIZE} times {@code nareas}
     * @param nareas areas, a power of two
     */
    SwiotlbPool(KernelServices kernel, long start, int nslabs, int nareas) {
        if (nslabs <= 0 || nareas <= 0 || Integer.bitCount(nareas) != 1
                || nslabs % (IO_TLB_SEGSIZE * nareas) != 0) {
            throw new IllegalArgumentException("pool of " + nslabs + " slots in " + nareas + " areas is invalid");
        }
        this.kernel = kernel;
        this.memory = kernel.memory();
        this.start = start;
        this.nslabs = nslabs;
        this.nareas = nareas;
        this.areaSlabs = nslabs / nareas;
        this.areas = new Area[nareas];
        for (int i = 0; i < nareas; i++) {
            areas[i] = new Area();
        }
        this.origAddr = new long[nslabs];
        this.allocSize = new int[nslabs];
        this.mapSize = new int[nslabs];
        // the host's clock; the kernel's __func__ for the full warning is the function that prints it
        this.fullWarnings = new Ratelimit(Ratelimit.DEFAULT_INTERVAL_NANOS, Ratelimit.DEFAULT_BURST,
                kernel::uptimeNanos, kernel.log(), "swiotlb_tbl_map_single");
        this.list = new int[nslabs];
        this.head = new boolean[nslabs];
        this.window = new boolean[nslabs];
        for (int i = 0; i < nslabs; i++) {
            list[i] = IO_TLB_SEGSIZE - (i & (IO_TLB_SEGSIZE - 1));
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
        return phys >= start && phys < end();
    }

    @Override
    public long maxMappingSize(Device device) {
        long minAlign = device.minAlignMask();
        long rounded = minAlign == 0 ? 0 : (minAlign + IO_TLB_SIZE - 1) / IO_TLB_SIZE * IO_TLB_SIZE;
        return (long) IO_TLB_SIZE * IO_TLB_SEGSIZE - rounded;
    }

    @Override
    public BounceStats stats() {
        return new BounceStats(nslabs, used.get(), hiwater.get(), toDevice.sum(), fromDevice.sum());
    }

    private static int nrSlots(long bytes) {
        return (int) ((bytes + IO_TLB_SIZE - 1) >>> IO_TLB_SHIFT);
    }

    private static int alignOffset(Device device, long addr) {
        return (int) (addr & device.minAlignMask() & (IO_TLB_SIZE - 1));
    }

    @Override
    public long map(Device device, long origPhys, long mappingSize, long allocSizeBytes, long allocAlignMask,
            DmaDirection direction) {
        if (mappingSize > allocSizeBytes || mappingSize <= 0) {
            String message = String.format("Invalid sizes (mapping: %d bytes, alloc: %d bytes)", mappingSize,
                    allocSizeBytes);
            // dev_warn_once: the first such call logs, whichever device makes it; every call is refused
            if (invalidSizesWarned.compareAndSet(false, true)) {
                kernel.log().log(LogLevel.WARNING, device, message);
            }
            throw new DmaMappingException(Errno.EINVAL, message);
        }
        int offset = alignOffset(device, origPhys);
        int index = findSlots(device, origPhys, false, mappingSize, allocSizeBytes + offset, allocAlignMask);
        if (index < 0) {
            throw full(device, allocSizeBytes);
        }
        long tlb = slotAddr(index) + offset;
        try {
            bounce(device, tlb, mappingSize, true);
        } catch (Throwable t) {
            // the copy failed (an original outside memory): the caller gets no mapping, so no slot stays taken
            abandon(index, offset);
            throw t;
        }
        return tlb;
    }

    private DmaMappingException full(Device device, long size) {
        String message = String.format("swiotlb buffer is full (sz: %d bytes), total %d (slots), used %d (slots)",
                size, nslabs, used.get());
        // rate-limited as dev_warn_ratelimited is: a burst of 10 lines per 5 seconds
        if (fullWarnings.allow()) {
            kernel.log().log(LogLevel.WARNING, device, message);
        }
        if (nrSlots(size) > IO_TLB_SEGSIZE) {
            message += String.format("; a mapping spans at most %d slots (%d bytes for %s), see dma_max_mapping_size",
                    IO_TLB_SEGSIZE, maxMappingSize(device), device.name());
        }
        return new DmaMappingException(Errno.ENOMEM, message);
    }

    private long slotAddr(int index) {
        return start + ((long) index << IO_TLB_SHIFT);
    }

    /**
     * The kernel's {@code swiotlb_pool_find_slots}: the calling CPU's area first, then the others.
     *
     * @param orig the original's physical address (any, 0 included) when {@code forWindow} is false
     * @param forWindow whether the slots are a VFIO bounce window, which has no original: its slots must then
     *     start on the alignment asked for, where a mapping's must match its original's low bits
     */
    private int findSlots(Device device, long orig, boolean forWindow, long mappingSize, long allocBytes,
            long allocAlignMask) {
        int first = kernel.currentCpu() & (nareas - 1);
        int a = first;
        do {
            int index = findInArea(device, a, orig, forWindow, mappingSize, allocBytes, allocAlignMask);
            if (index >= 0) {
                return index;
            }
            a = a + 1 == nareas ? 0 : a + 1;
        } while (a != first);
        return -1;
    }

    private int findInArea(Device device, int areaIndex, long orig, boolean forWindow, long mappingSize,
            long allocBytes, long allocAlignMask) {
        Area area = areas[areaIndex];
        long boundaryMask = device.segmentBoundaryMask();
        long tblDmaAddr = start & boundaryMask;
        long maxSlots = (boundaryMask >>> IO_TLB_SHIFT) + 1;
        long alignMask = device.minAlignMask() | allocAlignMask;
        int nslots = nrSlots(allocBytes);
        int offset = forWindow ? 0 : alignOffset(device, orig);
        // the low bits the slot must have: a window's start on the alignment asked for; a mapping's, its
        // original's. The kernel skips this check when orig_addr is 0, its "no original" (swiotlb_alloc);
        // here "no original" is forWindow, so an original at physical address 0 is matched like any other
        long wanted = forWindow ? 0 : orig;
        if (allocBytes >= PhysicalMemory.PAGE_SIZE) {
            alignMask |= PAGE_MASK_LOW;
        }
        alignMask &= ~((long) IO_TLB_SIZE - 1);
        int stride = (int) ((alignMask >>> IO_TLB_SHIFT) + 1);
        int slotBase = areaIndex * areaSlabs;
        synchronized (area) {
            if (nslots > areaSlabs - area.used) {
                return -1;
            }
            int index = area.index;
            for (int checked = 0; checked < areaSlabs; ) {
                int slot = slotBase + index;
                if (((tblDmaAddr + ((long) slot << IO_TLB_SHIFT)) & alignMask) != (wanted & alignMask)) {
                    index = wrap(index + 1);
                    checked++;
                    continue;
                }
                if (!spansBoundary(slot, nslots, tblDmaAddr >>> IO_TLB_SHIFT, maxSlots) && list[slot] >= nslots) {
                    for (int i = slot; i < slot + nslots; i++) {
                        list[i] = 0;
                        allocSize[i] = (int) (allocBytes - (offset + ((long) (i - slot) << IO_TLB_SHIFT)));
                        origAddr[i] = wanted + ((long) (i - slot) << IO_TLB_SHIFT);
                        window[i] = forWindow;
                    }
                    mapSize[slot] = (int) mappingSize;
                    head[slot] = true;
                    int count = 0;
                    for (int i = slot - 1; i >= 0 && (i & (IO_TLB_SEGSIZE - 1)) != IO_TLB_SEGSIZE - 1 && list[i] != 0;
                            i--) {
                        list[i] = ++count;
                    }
                    area.index = wrap(index + nslots);
                    area.used += nslots;
                    long now = used.addAndGet(nslots);
                    hiwater.accumulateAndGet(now, Math::max);
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

    @Override
    public void unmap(Device device, long tlbAddr, long mappingSize, DmaDirection direction) {
        int index = slotOf(device, tlbAddr, "unmap");
        int offset = alignOffset(device, tlbAddr);
        claim(index, device, tlbAddr, offset, "unmap", false, mappingSize);
        try {
            if (direction.fromDevice()) {
                bounce(device, tlbAddr, mappingSize, false);
            }
        } finally {
            release(index, offset);
        }
    }

    private Area areaOf(int index) {
        return areas[index / areaSlabs];
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
        return (int) ((tlbAddr - alignOffset(device, tlbAddr) - start) >>> IO_TLB_SHIFT);
    }

    /**
     * Takes the live mapping that starts at {@code tlbAddr} out of reach of any other unmap, under its area's
     * lock: its slots stay reserved (and readable by {@link #bounce}) until {@link #release}.
     *
     * @param forWindow whether the caller releases a VFIO bounce window (else it unmaps a DMA API mapping)
     * @param mappingSize the size the caller says it mapped, which must be the size that was mapped
     * @throws IommuException EINVAL, with nothing changed, for an address that is not the start of a live
     *     mapping of the kind the caller releases, or a mapping size other than the one mapped
     */
    private void claim(int index, Device device, long tlbAddr, int offset, String what, boolean forWindow,
            long mappingSize) {
        synchronized (areaOf(index)) {
            if (origAddr[index] == INVALID || !head[index] || ((tlbAddr - start) & (IO_TLB_SIZE - 1)) != offset
                    || (!window[index] && alignOffset(device, origAddr[index]) != offset)) {
                throw new IommuException(Errno.EINVAL, String.format("swiotlb: %s of 0x%x, which is not the start"
                        + " of a live bounce mapping; nothing was changed", what, tlbAddr));
            }
            if (window[index] != forWindow) {
                throw new IommuException(Errno.EINVAL, String.format("swiotlb: %s of 0x%x, which is %s; nothing"
                        + " was changed", what, tlbAddr, window[index] ? "a VFIO bounce window, not a DMA API"
                        + " mapping" : "a DMA API mapping, not a VFIO bounce window"));
            }
            if (mappingSize != mapSize[index]) {
                throw new IommuException(Errno.EINVAL, String.format("swiotlb: %s of 0x%x with size %d, but %d"
                        + " bytes were mapped there; nothing was unmapped", what, tlbAddr, mappingSize,
                        mapSize[index]));
            }
            head[index] = false;
        }
    }

    /** Gives back the slots of a mapping that was never handed out (its first copy failed). */
    private void abandon(int index, int offset) {
        synchronized (areaOf(index)) {
            head[index] = false;
        }
        release(index, offset);
    }

    /**
     * The kernel's {@code swiotlb_release_slots}: give a {@linkplain #claim claimed} mapping's slots back,
     * merging with free neighbours.
     */
    private void release(int index, int offset) {
        int nslots;
        Area area = areaOf(index);
        synchronized (area) {
            nslots = nrSlots((long) allocSize[index] + offset);
            int count = index + nslots < ((index / IO_TLB_SEGSIZE) + 1) * IO_TLB_SEGSIZE ? list[index + nslots] : 0;
            for (int i = index + nslots - 1; i >= index; i--) {
                list[i] = ++count;
                origAddr[i] = INVALID;
                allocSize[i] = 0;
                window[i] = false;
            }
            mapSize[index] = 0;
            for (int i = index - 1; i >= 0 && (i & (IO_TLB_SEGSIZE - 1)) != IO_TLB_SEGSIZE - 1 && list[i] != 0; i--) {
                list[i] = ++count;
            }
            area.used -= nslots;
        }
        used.addAndGet(-nslots);
    }

    @Override
    public void syncForCpu(Device device, long tlbAddr, long size, DmaDirection direction) {
        if (direction.fromDevice()) {
            bounce(device, tlbAddr, size, false);
        }
    }

    @Override
    public void syncForDevice(Device device, long tlbAddr, long size, DmaDirection direction) {
        if (direction.toDevice()) {
            bounce(device, tlbAddr, size, true);
        }
    }

    /**
     * The kernel's {@code swiotlb_bounce}: copies between the original and its bounce slot, with the kernel's
     * bounds checks.
     */
    private void bounce(Device device, long tlbAddr, long size, boolean toDeviceCopy) {
        if (!contains(tlbAddr)) {
            throw new IommuException(Errno.EINVAL, String.format("swiotlb: sync of 0x%x, which is not in the bounce"
                    + " pool", tlbAddr));
        }
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
            throw new IommuException(Errno.EINVAL, String.format("swiotlb: sync of 0x%x, which is not mapped",
                    tlbAddr));
        }
        if (inWindow) {
            // a window has no original to copy to or from: its owner, the SWIOTLB-IOMMU, syncs it
            throw new IommuException(Errno.EINVAL, String.format("swiotlb: sync of 0x%x, which is in a VFIO bounce"
                    + " window, not a DMA API mapping; the window is synced through its VFIO container", tlbAddr));
        }
        int tlbOffset = (int) (tlbAddr & (IO_TLB_SIZE - 1));
        int origOffset = alignOffset(device, orig);
        if (tlbOffset < origOffset) {
            String message = String.format("Access before mapping start detected. orig offset %d, requested offset"
                    + " %d.", origOffset, tlbOffset);
            kernel.log().log(LogLevel.WARNING, device, message);
            throw new IommuException(Errno.EINVAL, message);
        }
        tlbOffset -= origOffset;
        if (tlbOffset > remaining) {
            String message = String.format("Buffer overflow detected. Allocation size: %d. Mapping size: %d+%d.",
                    remaining, size, tlbOffset);
            kernel.log().log(LogLevel.WARNING, device, message);
            throw new IommuException(Errno.EINVAL, message);
        }
        orig += tlbOffset;
        remaining -= tlbOffset;
        if (size > remaining) {
            kernel.log().log(LogLevel.WARNING, device, String.format(
                    "Buffer overflow detected. Allocation size: %d. Mapping size: %d.", remaining, size));
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
        int index = findSlots(device, 0, true, size, size, PAGE_MASK_LOW);
        if (index < 0) {
            throw full(device, size);
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
        claim(index, device, windowAddr, 0, "release", true, size);
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
