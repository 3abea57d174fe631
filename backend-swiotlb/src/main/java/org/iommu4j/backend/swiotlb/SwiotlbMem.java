package org.iommu4j.backend.swiotlb;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;

/**
 * The software IO TLB allocator, the kernel's {@code struct io_tlb_mem} ({@code kernel/dma/swiotlb.c}, Linux
 * v6.12): the default pool made at load, the pools added while the module runs, the transient pools of single
 * mappings, and the counters debugfs shows ({@code io_tlb_nslabs}, {@code io_tlb_used},
 * {@code io_tlb_used_hiwater}, {@code io_tlb_transient_nslabs}).
 *
 * <p><b>Dynamic pools</b> ({@code CONFIG_SWIOTLB_DYNAMIC}, v6.6+, on in most distributions' v6.12 kernels and
 * on here unless the module's {@code dynamic=0}): when no pool has room, {@code swiotlb_find_slots} schedules the
 * {@code swiotlb_dyn_alloc} worker and allocates a transient pool of exactly the mapping's slots, below the
 * device's DMA limit, which the mapping's unmap frees. The worker adds a pool of the default size (at most
 * {@code SLABS_PER_PAGE << MAX_PAGE_ORDER} = 2048 slots, halving down to {@value SwiotlbPool#IO_TLB_MIN_SLABS}
 * when memory is short, below the pool limit) at the head of the pool list, which the search walks area by
 * area. The kernel runs the worker later on a workqueue; the model runs it synchronously on the mapping's
 * thread, just before the map that scheduled it returns, so that what a test sees is deterministic. Pools are
 * found by address. {@code swiotlb=} and the module's {@code nslabs} bound the default pool only.
 *
 * <p><b>Lifetime</b>: {@link #close} (at unload) refuses with EBUSY, changing nothing, while a slot is held or a
 * map is under way; once closed, a map fails as the kernel's does without a pool, so no slot of a freed pool is
 * ever handed out. The closed flag is read again under the area lock a map reserves its slots with, and
 * {@code close} visits every area under its lock: so a map either fails or holds slots the teardown counts. No map
 * writes a field every CPU shares: the used counts, the "being made" counts and the bytes bounced are kept per
 * area and summed when read (the kernel keeps one global atomic, {@code total_used}, per map; see
 * {@link #noteHigh} for what that changes in the high-water mark).
 */
final class SwiotlbMem {
    /** The largest order a dynamic pool's memory has: {@code MAX_PAGE_ORDER}. */
    static final int MAX_POOL_SLABS = (PhysicalMemory.PAGE_SIZE / SwiotlbPool.IO_TLB_SIZE) << PageAllocator.MAX_ORDER;
    private static final String SOURCE = "kernel/dma/swiotlb.c ";
    private static final SwiotlbPool[] NONE = new SwiotlbPool[0];

    private final KernelServices kernel;
    private final CpuCache cpus;
    private final boolean canGrow;
    /** Pools end at or below this address (the PageAllocator's limit: exclusive). */
    private final long physLimit;
    private final int defaultNslabs;
    private final int defaultNareas;
    private final SwiotlbPool defpool;
    /** The kernel's {@code mem->pools}, newest first: the default pool is last. Copy-on-write. */
    private volatile SwiotlbPool[] pools;
    /** Transient pools (the kernel keeps them per device; by address they are found the same way). */
    private volatile SwiotlbPool[] transients = NONE;
    private final Object poolsLock = new Object();
    private volatile long nslabs;
    private final AtomicLong usedHiwater = new AtomicLong();
    private final AtomicLong transientNslabs = new AtomicLong();
    private volatile boolean closed;
    private final AtomicBoolean growPending = new AtomicBoolean();
    private final AtomicBoolean invalidSizesWarned = new AtomicBoolean();
    private final Ratelimit fullWarnings;
    private final Ratelimit noPoolWarnings;
    private final Ratelimit growWarnings;

    /**
     * @param kernel the host's services
     * @param start the default pool's memory, {@code nslabs} slots, allocated as one contiguous run
     * @param nslabs the default pool's slots
     * @param nareas its areas
     * @param canGrow whether pools are added when all are full ({@code CONFIG_SWIOTLB_DYNAMIC})
     * @param physLimit pools end at or below this address
     */
    SwiotlbMem(KernelServices kernel, long start, int nslabs, int nareas, boolean canGrow, long physLimit) {
        this.kernel = kernel;
        this.cpus = new CpuCache(kernel);
        this.canGrow = canGrow;
        this.physLimit = physLimit;
        this.defaultNslabs = nslabs;
        this.defaultNareas = nareas;
        kernel.memory().fill(start, (long) nslabs << SwiotlbPool.IO_TLB_SHIFT, (byte) 0);
        this.defpool = new SwiotlbPool(this, kernel, start, nslabs, nareas, false, -1);
        this.pools = new SwiotlbPool[] {defpool};
        this.nslabs = nslabs;
        this.fullWarnings = new Ratelimit(Ratelimit.DEFAULT_INTERVAL_NANOS, Ratelimit.DEFAULT_BURST,
                kernel::uptimeNanos, kernel.log(), "swiotlb_tbl_map_single");
        this.noPoolWarnings = new Ratelimit(Ratelimit.DEFAULT_INTERVAL_NANOS, Ratelimit.DEFAULT_BURST,
                kernel::uptimeNanos, kernel.log(), "swiotlb_tbl_map_single");
        this.growWarnings = new Ratelimit(Ratelimit.DEFAULT_INTERVAL_NANOS, Ratelimit.DEFAULT_BURST,
                kernel::uptimeNanos, kernel.log(), "swiotlb_dyn_alloc");
    }

    /** @return the pool made at load */
    SwiotlbPool defaultPool() {
        return defpool;
    }

    /** @return every pool but the transient ones, newest first (the default pool last) */
    List<SwiotlbPool> pools() {
        return List.of(pools);
    }

    /** @return the transient pools, one per live mapping that needed one */
    List<SwiotlbPool> transientPools() {
        return List.of(transients);
    }

    /** @return debugfs {@code io_tlb_nslabs}: slots in every pool but the transient ones */
    long nslabs() {
        return nslabs;
    }

    /** @return debugfs {@code io_tlb_used}: slots held, in every pool (the pools' areas' counts summed) */
    long used() {
        long n = 0;
        for (SwiotlbPool p : allPools()) {
            n += p.usedSlots();
        }
        return n;
    }

    /** @return debugfs {@code io_tlb_used_hiwater} */
    long highWater() {
        return usedHiwater.get();
    }

    /** @return debugfs {@code io_tlb_transient_nslabs}: slots in transient pools */
    long transientSlabs() {
        return transientNslabs.get();
    }

    /** @return whether pools are added when all are full */
    boolean canGrow() {
        return canGrow;
    }

    long bytesToDevice() {
        long n = 0;
        for (SwiotlbPool p : allPools()) {
            n += p.bytesToDevice();
        }
        return n;
    }

    long bytesFromDevice() {
        long n = 0;
        for (SwiotlbPool p : allPools()) {
            n += p.bytesFromDevice();
        }
        return n;
    }

    private List<SwiotlbPool> allPools() {
        List<SwiotlbPool> all = new ArrayList<>(Arrays.asList(pools));
        all.addAll(Arrays.asList(transients));
        return all;
    }

    /** Writing 0 to debugfs {@code io_tlb_used_hiwater}: the pools' marks and the allocator's go to 0. */
    void resetHighWater() {
        usedHiwater.set(0);
        for (SwiotlbPool p : allPools()) {
            p.clearHighWater();
        }
    }

    /**
     * An area of some pool reached a new high of its own: debugfs {@code io_tlb_used_hiwater} follows the slots
     * used in every pool then. The kernel keeps one atomic count of used slots, {@code total_used}, and compares it
     * on every map; the model keeps counts per area (no map writes a field all CPUs share) and sums them only here,
     * so the mark equals the kernel's whenever the new peak is also a new peak of the area that reached it (always
     * with one area, and for every test of a sequence of maps); otherwise it may lag the true peak.
     */
    void noteHigh() {
        long now = 0;
        for (SwiotlbPool p : pools) {
            now += p.usedSlotsRacy();
        }
        for (SwiotlbPool p : transients) {
            now += p.usedSlotsRacy();
        }
        if (now > usedHiwater.get()) {
            usedHiwater.accumulateAndGet(now, Math::max);
        }
    }

    /**
     * {@code dev_WARN_ONCE} at a swiotlb.c site: the kernel's WARN_ONCE with the {@code dev_printk} prefix.
     *
     * @param func the function that warns; the once-flag is the site's
     */
    void warnOnce(Device device, String func, String message) {
        kernel.log().warnOnce(SOURCE + func, devPrefix(kernel, device) + message);
    }

    /** What {@code dev_driver_string} and {@code dev_name} put before a device's message. */
    static String devPrefix(KernelServices kernel, Device device) {
        return kernel.devices().driverOf(device).orElse(device.bus().sysfsName()) + " " + device.name() + ": ";
    }

    /** @return the pool that holds {@code phys}, the kernel's {@code swiotlb_find_pool}, or null */
    SwiotlbPool find(long phys) {
        if (defpool.contains(phys)) {
            return defpool;
        }
        SwiotlbPool[] ps = pools;
        for (int i = 0; i < ps.length; i++) {
            if (ps[i].contains(phys)) {
                return ps[i];
            }
        }
        SwiotlbPool[] ts = transients;
        for (int i = 0; i < ts.length; i++) {
            if (ts[i].contains(phys)) {
                return ts[i];
            }
        }
        return null;
    }

    private DmaMappingException noPool(Device device) {
        String message = "Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce"
                + " buffer";
        if (noPoolWarnings.allow()) {
            kernel.log().log(LogLevel.WARNING, device, message);
        }
        return new DmaMappingException(Errno.ENOMEM, message + " (the swiotlb pool has been torn down)");
    }

    /**
     * The kernel's {@code swiotlb_tbl_map_single} (v6.12; the api keeps v6.9's separate allocation size, which
     * v6.10 folded into the mapping size, for callers that reserve more than they bounce).
     *
     * @param noWarn {@code DMA_ATTR_NO_WARN}: no "buffer is full" line
     * @param only the one pool to search (the exported default pool, which never grows), or null for all
     *     pools and, when allowed, a transient one
     * @return the bounce address
     */
    long mapSingle(Device device, long orig, long mappingSize, long allocSize, long allocAlignMask, boolean noWarn,
            SwiotlbPool only) {
        if (closed) {
            throw noPool(device); // and again under the area's lock, where it counts
        }
        boolean grow = false;
        try {
            if (mappingSize == 0) {
                // before the kernel's own check: a 0-byte search would hit BUG_ON(!nslots); not the sizes warning
                throw new DmaMappingException(Errno.EINVAL, "swiotlb: a bounce mapping of 0 bytes is invalid:"
                        + " expected at least 1 byte");
            }
            if (Long.compareUnsigned(mappingSize, allocSize) > 0) {
                String message = String.format("Invalid sizes (mapping: %d bytes, alloc: %d bytes)", mappingSize,
                        allocSize);
                // dev_warn_once: the first such call logs, whichever device makes it; every call is refused
                if (invalidSizesWarned.compareAndSet(false, true)) {
                    kernel.log().log(LogLevel.WARNING, device, message);
                }
                throw new DmaMappingException(Errno.EINVAL, message);
            }
            if (Long.compareUnsigned(allocAlignMask, 0xffffffffL) > 0) {
                throw new DmaMappingException(Errno.EINVAL, String.format("swiotlb: alloc align mask 0x%x is"
                        + " invalid: expected at most 0xffffffff (an unsigned int)", allocAlignMask));
            }
            if (allocAlignMask > PhysicalMemory.PAGE_OFFSET_MASK) {
                warnOnce(device, "swiotlb_tbl_map_single",
                        "Alloc alignment may prevent fulfilling requests with max mapping_size");
            }
            int offset = SwiotlbPool.alignOffset(device, allocAlignMask, orig);
            long size;
            if (Long.compareUnsigned(allocSize, SwiotlbPool.SEGMENT_BYTES) > 0) {
                size = allocSize; // swiotlb_find_slots refuses it before any search
            } else {
                long unit = allocAlignMask + 1;
                size = (allocSize + offset + unit - 1) & -unit;
            }
            if (Long.compareUnsigned(size, SwiotlbPool.SEGMENT_BYTES) > 0) {
                throw full(device, size, noWarn);
            }
            int cpu = cpus.currentCpu();
            if (only != null) {
                int index = only.findSlots(device, orig, false, size, allocAlignMask, cpu,
                        offset >>> SwiotlbPool.IO_TLB_SHIFT, mappingSize);
                if (index == SwiotlbPool.CLOSED) {
                    throw noPool(device);
                }
                if (index < 0) {
                    throw full(device, size, noWarn);
                }
                return complete(only, index, device, mappingSize, offset);
            }
            SwiotlbPool[] ps = pools;
            for (int i = 0; i < defaultNareas; i++) {
                for (SwiotlbPool p : ps) {
                    if (i >= p.nareas()) {
                        continue;
                    }
                    int index = p.searchArea(device, (cpu + i) & (p.nareas() - 1), orig, false, size,
                            allocAlignMask, offset >>> SwiotlbPool.IO_TLB_SHIFT, mappingSize);
                    if (index == SwiotlbPool.CLOSED) {
                        throw noPool(device);
                    }
                    if (index >= 0) {
                        return complete(p, index, device, mappingSize, offset);
                    }
                }
            }
            if (!canGrow) {
                throw full(device, size, noWarn);
            }
            grow = growPending.compareAndSet(false, true); // schedule_work: a no-op while the work is pending
            long tlb = mapTransient(device, orig, mappingSize, size, allocAlignMask, offset);
            if (tlb == -1L) {
                throw full(device, size, noWarn);
            }
            return tlb;
        } finally {
            if (grow) {
                growPending.set(false);
                growPool();
            }
        }
    }

    /**
     * Makes the first copy of a mapping the search reserved and recorded; a copy that fails gives the slots (and a
     * transient pool) back.
     */
    private long complete(SwiotlbPool pool, int index, Device device, long mappingSize, int offset) {
        int first = index + (offset >>> SwiotlbPool.IO_TLB_SHIFT);
        int inSlot = offset & (SwiotlbPool.IO_TLB_SIZE - 1);
        long tlb = pool.slotAddr(first) + inSlot;
        try {
            // copy the original for every direction, so a device that writes part of it leaves the rest as it was
            pool.fill(device, first, tlb, mappingSize);
        } catch (RuntimeException e) {
            pool.abandon(first, inSlot);
            if (pool.isTransient()) {
                deleteTransient(pool);
            }
            throw e;
        }
        return tlb;
    }

    /**
     * {@code swiotlb_alloc_pool(dev, nslabs, nslabs, 1, phys_limit, GFP_NOWAIT)} for one mapping, then the
     * search in it: a pool of exactly the mapping's slots, in one area, below the device's limit
     * ({@code min_not_zero(*dma_mask, bus_dma_limit)}), published before the mapping is completed in it.
     *
     * @return the bounce address, or -1 (the kernel's DMA_MAPPING_ERROR) when no memory is free there or the
     *     mapping does not fit it
     */
    private long mapTransient(Device device, long orig, long mappingSize, long size, long allocAlignMask,
            int offset) {
        int slabs = (int) AddressRange.unitsFor(size, SwiotlbPool.IO_TLB_SIZE);
        long limit = reachLimit(device);
        long end = limit < 0 || limit == Long.MAX_VALUE ? PageAllocator.NO_LIMIT : limit + 1;
        SwiotlbPool pool = allocatePool(slabs, 1, end, true);
        if (pool == null) {
            return -1L;
        }
        int index = pool.searchArea(device, 0, orig, false, size, allocAlignMask,
                offset >>> SwiotlbPool.IO_TLB_SHIFT, mappingSize);
        if (index < 0) {
            free(pool);
            if (index == SwiotlbPool.CLOSED) {
                throw noPool(device);
            }
            return -1L;
        }
        synchronized (poolsLock) {
            if (closed) {
                // the teardown came before the pool was published: it never saw the slots, so nothing may keep them
                pool.abandon(index + (offset >>> SwiotlbPool.IO_TLB_SHIFT), offset & (SwiotlbPool.IO_TLB_SIZE - 1));
                free(pool);
                throw noPool(device);
            }
            SwiotlbPool[] ts = Arrays.copyOf(transients, transients.length + 1);
            ts[ts.length - 1] = pool;
            transients = ts;
        }
        transientNslabs.addAndGet(pool.nslabs());
        return complete(pool, index, device, mappingSize, offset);
    }

    /** The device's reach, unsigned ({@code min_not_zero} of its DMA mask and bus limit). */
    static long reachLimit(Device device) {
        long mask = device.dmaMask();
        long bus = device.busDmaLimit();
        return bus == 0 || Long.compareUnsigned(mask, bus) <= 0 ? mask : bus;
    }

    /**
     * Allocates a pool's memory, {@code 2^order} pages as {@code alloc_pages} does, and lays a pool over it.
     *
     * @return the pool, or null when no block of that order is free below the limit
     */
    private SwiotlbPool allocatePool(int slabs, int nareas, long limit, boolean transientPool) {
        long bytes = (long) slabs << SwiotlbPool.IO_TLB_SHIFT;
        long pages = AddressRange.unitsFor(bytes, PhysicalMemory.PAGE_SIZE);
        int order = 64 - Long.numberOfLeadingZeros(pages - 1);
        long phys;
        try {
            phys = kernel.pageAllocator().allocatePages(order, limit);
        } catch (IommuException e) {
            return null;
        }
        kernel.memory().fill(phys, bytes, (byte) 0);
        return new SwiotlbPool(this, kernel, phys, slabs, nareas, transientPool, order);
    }

    /**
     * The {@code swiotlb_dyn_alloc} worker: a pool of the default size, at most {@link #MAX_POOL_SLABS} slots,
     * halved down to {@value SwiotlbPool#IO_TLB_MIN_SLABS} slots while memory is short, added at the head of the
     * pool list.
     */
    private void growPool() {
        int slabs = defaultNslabs;
        int nareas = defaultNareas;
        if (slabs > MAX_POOL_SLABS) {
            slabs = MAX_POOL_SLABS;
            nareas = limitNareas(nareas, slabs);
        }
        SwiotlbPool pool;
        while ((pool = allocatePool(slabs, areasFor(slabs, nareas), physLimit, false)) == null) {
            if (slabs <= SwiotlbPool.IO_TLB_MIN_SLABS) {
                if (growWarnings.allow()) {
                    kernel.log().withPrefix("software IO TLB").log(LogLevel.WARNING, "Failed to allocate new pool");
                }
                return;
            }
            slabs = ((slabs >>> 1) + SwiotlbPool.IO_TLB_SEGSIZE - 1) & -SwiotlbPool.IO_TLB_SEGSIZE;
            nareas = limitNareas(nareas, slabs);
        }
        synchronized (poolsLock) {
            if (closed) {
                free(pool);
                return;
            }
            SwiotlbPool[] ps = new SwiotlbPool[pools.length + 1];
            ps[0] = pool;
            System.arraycopy(pools, 0, ps, 1, pools.length);
            pools = ps;
            nslabs += pool.nslabs();
        }
    }

    /** The kernel's {@code limit_nareas}. */
    static int limitNareas(int nareas, long slabs) {
        if (slabs < (long) nareas * SwiotlbPool.IO_TLB_SEGSIZE) {
            return (int) (slabs / SwiotlbPool.IO_TLB_SEGSIZE);
        }
        return nareas;
    }

    /** Areas that divide the slots into whole segments: the count asked for, halved until they do. */
    private static int areasFor(int slabs, int nareas) {
        int n = Math.max(1, nareas);
        while (n > 1 && (slabs % n != 0 || (slabs / n) % SwiotlbPool.IO_TLB_SEGSIZE != 0)) {
            n >>>= 1;
        }
        return n;
    }

    /** Unmap in a pool; a transient pool goes with its mapping ({@code swiotlb_del_transient}). */
    void unmapIn(SwiotlbPool pool, Device device, long tlbAddr, long size, DmaDirection direction) {
        pool.unmapHere(device, tlbAddr, size, direction);
        if (pool.isTransient()) {
            deleteTransient(pool);
        }
    }

    private void deleteTransient(SwiotlbPool pool) {
        boolean removed = false;
        synchronized (poolsLock) {
            SwiotlbPool[] ts = transients;
            for (int i = 0; i < ts.length; i++) {
                if (ts[i] == pool) {
                    SwiotlbPool[] left = new SwiotlbPool[ts.length - 1];
                    System.arraycopy(ts, 0, left, 0, i);
                    System.arraycopy(ts, i + 1, left, i, ts.length - i - 1);
                    transients = left;
                    removed = true;
                    break;
                }
            }
        }
        if (removed) {
            transientNslabs.addAndGet(-pool.nslabs());
            free(pool);
        }
    }

    private void free(SwiotlbPool pool) {
        kernel.pageAllocator().freePages(pool.start(), pool.order());
    }

    /** Reserves a VFIO bounce window in the default pool (the seed thread's SWIOTLB-IOMMU; not in any kernel). */
    long allocateWindow(SwiotlbPool pool, Device device, long size) {
        if (closed) {
            throw noPool(device);
        }
        int index = pool.findSlots(device, 0, true, size, PhysicalMemory.PAGE_OFFSET_MASK, cpus.currentCpu(), 0,
                size);
        if (index == SwiotlbPool.CLOSED) {
            throw noPool(device);
        }
        if (index < 0) {
            throw full(device, size, false);
        }
        return pool.slotAddr(index);
    }

    private DmaMappingException full(Device device, long size, boolean noWarn) {
        String message = String.format("swiotlb buffer is full (sz: %d bytes), total %d (slots), used %d (slots)",
                size, nslabs, used());
        // rate-limited as dev_warn_ratelimited is: a burst of 10 lines per 5 seconds; DMA_ATTR_NO_WARN: none
        if (!noWarn && fullWarnings.allow()) {
            kernel.log().log(LogLevel.WARNING, device, message);
        }
        if (Long.compareUnsigned(size, SwiotlbPool.SEGMENT_BYTES) > 0) {
            message += String.format("; a mapping spans at most %d slots (%d bytes for %s), see dma_max_mapping_size",
                    SwiotlbPool.IO_TLB_SEGSIZE, SwiotlbPool.maxMappingSizeFor(device), device.name());
        }
        return new DmaMappingException(Errno.ENOMEM, message);
    }

    /**
     * Closes the allocator for unload: from now on every map fails as without a pool.
     *
     * @throws IommuException EBUSY, with nothing changed, while a slot is held or a map is under way
     */
    void close() {
        synchronized (poolsLock) {
            closed = true;
            // each area in turn, under its lock: a search either saw closed there or its slots are counted
            long busy = 0;
            long held = 0;
            for (SwiotlbPool p : allPools()) {
                long[] hm = p.heldAndMaking();
                held += hm[0];
                busy += hm[1];
            }
            if (busy != 0 || held != 0) {
                closed = false;
                throw new IommuException(Errno.EBUSY, String.format("swiotlb: %d slots of the bounce pools are held"
                        + " by live mappings and %d mappings are being made: unmap them before unloading; nothing"
                        + " was freed", held, busy));
            }
        }
    }

    /** Undoes {@link #close} when the unload it was for is refused later. */
    void reopen() {
        closed = false;
    }

    /** @return whether {@link #close} succeeded */
    boolean isClosed() {
        return closed;
    }

    /**
     * Frees every pool's memory, after {@link #close}.
     *
     * @param freeDefault how to free the default pool's memory (it was allocated as one contiguous run)
     */
    void freeAll(Runnable freeDefault) {
        if (!closed) {
            throw new IllegalStateException("swiotlb pools freed while open");
        }
        synchronized (poolsLock) {
            for (SwiotlbPool p : pools) {
                if (p != defpool) {
                    free(p);
                }
            }
            pools = new SwiotlbPool[] {defpool};
            nslabs = defpool.nslabs();
        }
        freeDefault.run();
    }
}
