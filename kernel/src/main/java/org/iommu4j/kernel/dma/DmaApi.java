package org.iommu4j.kernel.dma;

import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.ReentrantLock;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaAttrs;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.DmaOpsRegistry;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.ScatterList;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.Buses;
import org.iommu4j.kernel.fault.FaultAttr;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * The DMA API kernel drivers call ({@code dma_map_single}, {@code dma_map_sg} and friends, {@code
 * kernel/dma/mapping.c}, Linux v6.12): it checks the arguments, picks the device's ops (its own, else the
 * default a backend installed, else iommu-dma when the device's default domain is a DMA
 * domain, else dma-direct) and records every live mapping against the ops that made it.
 *
 * <p><b>Module lifetime (an iommu4j rule; Linux builds these ops in or pins them at probe).</b> Each device has
 * a table of its live mappings ({@link LiveMappings}), each naming the {@link DmaOpsBinding} that made it. So:
 * <ul>
 * <li>a module is in use exactly while a mapping made through ops it installed is live, or a call through them
 *     is in flight; an unmap of an address the DMA API never handed out cannot cancel a real mapping (it still
 *     goes to the device's ops, as in the kernel, but counts nothing), and a hot-removed device's mappings
 *     still count until they are unmapped;</li>
 * <li>an unmap, a sync or a coherent free goes to the ops that made the mapping, even if the device's ops
 *     changed since (a backend loaded in between): the kernel never changes a device's ops under its driver, and
 *     this keeps that promise for mappings made before a change;</li>
 * <li>unloading a module first marks its bindings {@link DmaOpsBinding.State#RETIRING} and then counts, under each
 *     device's table lock; a map that starts meanwhile waits for the decision, so it can never be handed a slot
 *     of a pool the module then frees, and a refused unload leaves everything as it was.</li>
 * </ul>
 * Map, unmap and sync read volatile fields and take only the device's own table lock (and the device lock of
 * the DMA-API checker when it is on); the steady state allocates nothing.
 */
public final class DmaApi {
    /** How long an unload waits for DMA-API calls in flight through the module's ops to finish. */
    private static final long RETIRE_WAIT_NANOS = 500_000_000L;
    private final ReentrantLock lock;
    private final Buses buses;
    private final DirectDmaOps directOps;
    private final DmaOpsBinding direct;
    private final DmaDebug debug;
    private final FaultAttr failIommu;
    private final Map<BusDevice, LiveMappings> tables = new ConcurrentHashMap<>();
    private final List<DmaOpsBinding> installed = new CopyOnWriteArrayList<>();
    private final List<DmaOpsBinding> retiring = new CopyOnWriteArrayList<>();
    private volatile DmaOpsBinding defaultOps;

    /**
     * @param lock the host's configuration lock
     * @param buses the host's buses
     * @param direct the kernel's dma-direct
     * @param debug the DMA-API checker, or null when the host runs without it
     * @param failIommu the {@code fail_iommu} attribute, asked for devices that opted in
     */
    public DmaApi(ReentrantLock lock, Buses buses, DirectDmaOps direct, DmaDebug debug, FaultAttr failIommu) {
        this.failIommu = failIommu;
        this.lock = lock;
        this.buses = buses;
        this.debug = debug;
        this.directOps = direct;
        this.direct = new DmaOpsBinding(direct, ModuleRef.KERNEL);
        this.defaultOps = this.direct;
    }

    /**
     * Maps a buffer for streaming DMA, {@code dma_map_single}.
     *
     * @param device the device
     * @param phys the buffer's physical address
     * @param size bytes, unsigned, at least 1
     * @param direction not {@link DmaDirection#NONE}
     * @return the DMA address to give the device
     * @throws IommuException {@link Errno#EINVAL} for a bad size or direction or a buffer that wraps past
     *     2<sup>64</sup>, {@link Errno#EFAULT} for a buffer that starts outside memory (dma-direct also refuses
     *     one that ends outside it), {@link Errno#ENODEV} for a removed
     *     device, or the backend's {@link DmaMappingException}; nothing is mapped then
     */
    public long map(Device device, long phys, long size, DmaDirection direction) {
        return map(device, phys, size, direction, DmaAttrs.NONE);
    }

    /**
     * {@code dma_map_single_attrs}: {@link #map(Device, long, long, DmaDirection)} with attributes.
     *
     * @param device the device
     * @param phys the buffer's physical address
     * @param size bytes, unsigned, at least 1
     * @param direction not {@link DmaDirection#NONE}
     * @param attrs the call's attributes
     * @return the DMA address
     */
    public long map(Device device, long phys, long size, DmaDirection direction, DmaAttrs attrs) {
        BusDevice d = check(device, size, direction);
        requireInMemory(phys, size);
        injectFailure(d, size);
        LiveMappings.Slot s = enter(d, table(d));
        long address;
        try {
            address = s.binding().ops().map(device, phys, size, direction, attrs == null ? DmaAttrs.NONE : attrs);
        } catch (RuntimeException | Error e) {
            s.done();
            throw e;
        }
        s.mapped(address); // a live mapping from here on: the slot keeps its record until the table takes it
        if (debug != null) {
            debug.mapped(d, phys, address, size, direction);
        }
        return address;
    }

    /**
     * Ends a streaming mapping, {@code dma_unmap_single}.
     *
     * @param device the device
     * @param dmaAddress what {@link #map} returned
     * @param size the mapped size
     * @param direction the mapped direction
     */
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
        unmap(device, dmaAddress, size, direction, DmaAttrs.NONE);
    }

    /**
     * {@code dma_unmap_single_attrs}. The unmap goes to the ops that made the mapping. An address the DMA API
     * never handed out (or already took back) is passed to the device's current ops, as the kernel passes it,
     * and counts nothing; while another caller is unmapping a mapping at the same address, this call waits for
     * that one to finish, so two racing unmaps of one mapping are ordered.
     *
     * @param device the device
     * @param dmaAddress what {@link #map} returned
     * @param size the mapped size
     * @param direction the mapped direction
     * @param attrs the call's attributes
     */
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction, DmaAttrs attrs) {
        BusDevice d = checkArguments(device, size, direction);
        DmaAttrs a = attrs == null ? DmaAttrs.NONE : attrs;
        LiveMappings t = table(d);
        LiveMappings.Slot s = take(d, t, dmaAddress);
        if (s == null) {
            if (debug != null) {
                debug.unmapping(d, dmaAddress, size, direction); // reports it: nothing was mapped there
            }
            LiveMappings.Slot current = enter(d, t);
            try {
                current.binding().ops().unmap(device, dmaAddress, size, direction, a);
            } finally {
                current.done();
            }
            return;
        }
        DmaDebug.Entry recorded = debug == null ? null : debug.unmapping(d, dmaAddress, size, direction);
        try {
            s.binding().ops().unmap(device, dmaAddress, size, direction, a);
        } catch (RuntimeException | Error e) {
            if (recorded != null) {
                debug.restore(recorded);
            }
            t.lock();
            try {
                t.unmapFailed(s);
            } finally {
                t.unlock();
            }
            throw e;
        }
        s.done();
    }

    /**
     * {@code dma_sync_single_for_cpu}: goes to the ops that made the mapping starting at {@code dmaAddress}, else
     * (an address inside a mapping) to the device's current ops.
     *
     * @param device the device
     * @param dmaAddress inside a live mapping
     * @param size bytes
     * @param direction the mapping's direction
     */
    public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        BusDevice d = checkArguments(device, size, direction);
        AddressRange.requireNoWrap("DMA address", dmaAddress, size);
        if (debug != null) {
            debug.syncing(d, dmaAddress, size, direction, true);
        }
        LiveMappings.Slot s = enterFor(d, table(d), dmaAddress);
        try {
            s.binding().ops().syncForCpu(device, dmaAddress, size, direction);
        } finally {
            s.done();
        }
    }

    /**
     * {@code dma_sync_single_for_device}; routed as {@link #syncForCpu}.
     *
     * @param device the device
     * @param dmaAddress inside a live mapping
     * @param size bytes
     * @param direction the mapping's direction
     */
    public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        BusDevice d = checkArguments(device, size, direction);
        AddressRange.requireNoWrap("DMA address", dmaAddress, size);
        if (debug != null) {
            debug.syncing(d, dmaAddress, size, direction, false);
        }
        LiveMappings.Slot s = enterFor(d, table(d), dmaAddress);
        try {
            s.binding().ops().syncForDevice(device, dmaAddress, size, direction);
        } finally {
            s.done();
        }
    }

    /**
     * Maps a scatterlist, {@code dma_map_sg_attrs}: each DMA entry is recorded as a live mapping of the ops that
     * made it. dma-direct and swiotlb map segment by segment and never merge.
     *
     * @param device the device
     * @param sg the list; its DMA side is written
     * @param direction not {@link DmaDirection#NONE}
     * @param attrs the call's attributes
     * @return the number of DMA entries
     * @throws IommuException as {@link #map} for any segment; nothing stays mapped then
     */
    public int mapSg(Device device, ScatterList sg, DmaDirection direction, DmaAttrs attrs) {
        BusDevice d = check(device, 1, direction);
        requireList(sg);
        for (int i = 0; i < sg.nents(); i++) {
            requireInMemory(sg.phys(i), sg.length(i));
        }
        if (sg.mappedCount() != 0) {
            throw new IommuException(Errno.EINVAL, "scatterlist is already mapped (" + sg.mappedCount()
                    + " entries): unmap it first");
        }
        injectFailure(d, sg.length(0));
        LiveMappings t = table(d);
        LiveMappings.Slot s = enter(d, t);
        DmaOpsBinding b = s.binding();
        int n;
        try {
            n = b.ops().mapSg(device, sg, direction, attrs == null ? DmaAttrs.NONE : attrs);
        } catch (RuntimeException | Error e) {
            s.done();
            throw e;
        }
        t.lock();
        try {
            for (int i = 0; i < n; i++) {
                t.add(sg.dmaAddress(i), b);
            }
            s.done();
        } finally {
            t.unlock();
        }
        if (debug != null) {
            for (int i = 0; i < n; i++) {
                debug.mapped(d, sg.phys(i), sg.dmaAddress(i), sg.dmaLength(i), direction);
            }
        }
        return n;
    }

    /**
     * Unmaps a scatterlist {@link #mapSg} mapped, {@code dma_unmap_sg_attrs}, through the ops that mapped it.
     *
     * @param device the device
     * @param sg the mapped list; its DMA side is cleared
     * @param direction the mapped direction
     * @param attrs the call's attributes
     * @throws IommuException EINVAL if the list is not mapped
     */
    public void unmapSg(Device device, ScatterList sg, DmaDirection direction, DmaAttrs attrs) {
        BusDevice d = checkArguments(device, 1, direction);
        int n = requireMapped(sg);
        LiveMappings t = table(d);
        // mapSg made every entry through one binding: take their records, and keep that binding counted as busy
        // while its ops unmap, so that its owner stays loaded without remembering each entry
        DmaOpsBinding b = null;
        int taken = 0;
        for (int i = 0; i < n; i++) {
            long address = sg.dmaAddress(i);
            DmaOpsBinding e = takeRecord(d, t, address);
            if (e != null) {
                if (b == null) {
                    b = e;
                } else if (e != b) {
                    t.lock(); // a record of other ops at the same address: not this list's, put it back
                    try {
                        t.busy(e, -1);
                        t.add(address, e);
                    } finally {
                        t.unlock();
                    }
                    continue;
                }
                taken++;
            }
        }
        DmaDebug.Entry[] recorded = debug == null ? null : new DmaDebug.Entry[n];
        if (debug != null) {
            for (int i = 0; i < n; i++) {
                recorded[i] = debug.unmapping(d, sg.dmaAddress(i), sg.dmaLength(i), direction);
            }
        }
        LiveMappings.Slot current = b != null ? null : enter(d, t);
        DmaOpsBinding ops = b != null ? b : current.binding();
        try {
            ops.ops().unmapSg(device, sg, direction, attrs == null ? DmaAttrs.NONE : attrs);
        } catch (RuntimeException | Error e) {
            if (taken == n && sg.mappedCount() == n) { // the list is still mapped: so are its records
                t.lock();
                try {
                    for (int i = 0; i < n; i++) {
                        t.add(sg.dmaAddress(i), ops);
                    }
                } finally {
                    t.unlock();
                }
                if (recorded != null) {
                    for (DmaDebug.Entry r : recorded) {
                        debug.restore(r);
                    }
                }
            }
            throw e;
        } finally {
            if (current != null) {
                current.done();
            } else {
                t.lock();
                try {
                    t.busy(ops, -taken);
                } finally {
                    t.unlock();
                }
            }
        }
    }

    /**
     * {@code dma_sync_sg_for_cpu}, through the ops that mapped the list.
     *
     * @param device the device
     * @param sg the mapped list
     * @param direction the mapped direction
     */
    public void syncSgForCpu(Device device, ScatterList sg, DmaDirection direction) {
        syncSg(device, sg, direction, true);
    }

    /**
     * {@code dma_sync_sg_for_device}, through the ops that mapped the list.
     *
     * @param device the device
     * @param sg the mapped list
     * @param direction the mapped direction
     */
    public void syncSgForDevice(Device device, ScatterList sg, DmaDirection direction) {
        syncSg(device, sg, direction, false);
    }

    private void syncSg(Device device, ScatterList sg, DmaDirection direction, boolean forCpu) {
        BusDevice d = checkArguments(device, 1, direction);
        int n = requireMapped(sg);
        if (debug != null) {
            for (int i = 0; i < n; i++) {
                debug.syncing(d, sg.dmaAddress(i), sg.dmaLength(i), direction, forCpu);
            }
        }
        LiveMappings.Slot s = enterFor(d, table(d), sg.dmaAddress(0));
        try {
            if (forCpu) {
                s.binding().ops().syncSgForCpu(device, sg, direction);
            } else {
                s.binding().ops().syncSgForDevice(device, sg, direction);
            }
        } finally {
            s.done();
        }
    }

    private static void requireList(ScatterList sg) {
        if (sg == null) {
            throw new IommuException(Errno.EINVAL, "scatterlist null is invalid: expected a ScatterList");
        }
    }

    private static int requireMapped(ScatterList sg) {
        requireList(sg);
        if (sg.mappedCount() == 0) {
            throw new IommuException(Errno.EINVAL, "scatterlist is not mapped: map it with dma_map_sg first");
        }
        return sg.mappedCount();
    }

    /**
     * @param device the device
     * @param size bytes, unsigned, at least 1
     * @return a zeroed coherent buffer the device can reach
     */
    public CoherentBuffer allocateCoherent(Device device, long size) {
        BusDevice d = check(device, size, DmaDirection.BIDIRECTIONAL);
        injectFailure(d, size);
        LiveMappings.Slot s = enter(d, table(d));
        CoherentBuffer buffer;
        try {
            buffer = s.binding().ops().allocateCoherent(device, size);
        } catch (RuntimeException | Error e) {
            s.done();
            throw e;
        }
        s.mapped(buffer.dmaAddress());
        if (debug != null) {
            debug.allocated(d, buffer);
        }
        return buffer;
    }

    /**
     * Frees a coherent buffer through the ops that allocated it.
     *
     * @param device the device
     * @param buffer a buffer {@link #allocateCoherent} returned for it
     */
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        if (buffer == null) {
            throw new IommuException(Errno.EINVAL, "coherent buffer null is invalid: expected one"
                    + " allocateCoherent returned");
        }
        BusDevice d = checkArguments(device, buffer.size() == 0 ? 1 : buffer.size(), DmaDirection.BIDIRECTIONAL);
        LiveMappings t = table(d);
        LiveMappings.Slot s = take(d, t, buffer.dmaAddress());
        if (s == null) {
            if (debug != null) {
                debug.freeing(d, buffer);
            }
            LiveMappings.Slot current = enter(d, t);
            try {
                current.binding().ops().freeCoherent(device, buffer);
            } finally {
                current.done();
            }
            return;
        }
        DmaDebug.Entry recorded = debug == null ? null : debug.freeing(d, buffer);
        try {
            s.binding().ops().freeCoherent(device, buffer);
        } catch (RuntimeException | Error e) {
            if (recorded != null) {
                debug.restore(recorded);
            }
            t.lock();
            try {
                t.unmapFailed(s);
            } finally {
                t.unlock();
            }
            throw e;
        }
        s.done();
    }

    /**
     * {@code dma_max_mapping_size}: the largest single mapping the device's ops make.
     *
     * @param device the device
     * @return bytes, unsigned: {@code -1} ({@code SIZE_MAX}) for dma-direct without a bounce pool
     */
    public long maxMappingSize(Device device) {
        return binding((BusDevice) device).ops().maxMappingSize(device);
    }

    /**
     * {@code dma_opt_mapping_size}: in Linux v6.12 {@code min(dma_max_mapping_size, ops->opt_mapping_size)}, and
     * only IOMMU ops have an optimum, so for dma-direct and swiotlb it is the maximum.
     *
     * @param device the device
     * @return bytes, unsigned
     */
    public long optMappingSize(Device device) {
        DmaOps ops = binding((BusDevice) device).ops();
        long max = ops.maxMappingSize(device);
        long opt = ops.optMappingSize(device);
        return Long.compareUnsigned(opt, max) < 0 ? opt : max;
    }

    /** @return the DMA-API checker, when the host runs with it */
    public Optional<DmaDebug> debug() {
        return Optional.ofNullable(debug);
    }

    /**
     * @param device a device
     * @return the ops its new DMA API calls go to now
     */
    public DmaOps opsFor(Device device) {
        return binding((BusDevice) device).ops();
    }

    private DmaOpsBinding binding(BusDevice device) {
        DmaOpsBinding own = device.dmaOps();
        if (own != null) {
            return own;
        }
        DmaOpsBinding def = defaultOps;
        if (def == direct) {
            // iommu_setup_dma_ops: a device whose default domain is a DMA domain uses iommu-dma
            Group g = device.group();
            DmaOpsBinding iommuDma = g == null ? null : g.dmaApiBinding();
            if (iommuDma != null) {
                return iommuDma;
            }
        }
        return def;
    }

    /** The device's table: held in the device itself, so the hot path looks nothing up. */
    private LiveMappings table(BusDevice d) {
        Object o = d.dmaApiPrivate();
        if (o instanceof LiveMappings t && t.api == this) {
            return t;
        }
        LiveMappings t = tables.computeIfAbsent(d, x -> new LiveMappings(this));
        d.setDmaApiPrivate(t);
        return t;
    }

    /**
     * Claims a slot for a new call in flight through the device's current ops, waiting while their owner's unload
     * is being decided: the state is read under the table lock that the unload's count also takes.
     */
    private LiveMappings.Slot enter(BusDevice d, LiveMappings t) {
        for (;;) {
            DmaOpsBinding b;
            t.lock();
            try {
                b = binding(d);
                if (b.state() == DmaOpsBinding.State.LIVE) {
                    return t.claim(b);
                }
            } finally {
                t.unlock();
            }
            while (b.state() == DmaOpsBinding.State.RETIRING) {
                Thread.onSpinWait();
                Thread.yield();
            }
        }
    }

    /** As {@link #enter}, but the ops of a live mapping starting at {@code dmaAddress} come first. */
    private LiveMappings.Slot enterFor(BusDevice d, LiveMappings t, long dmaAddress) {
        t.lock();
        try {
            DmaOpsBinding b = t.find(dmaAddress, binding(d));
            if (b != null) {
                return t.claim(b); // its mapping keeps its owner loaded: no need to wait for a decision
            }
        } finally {
            t.unlock();
        }
        return enter(d, t);
    }

    /**
     * Takes the record of a live mapping at {@code dmaAddress} for an unmap, waiting while another caller is
     * unmapping one there and none other is live, so that the loser of a race sees the winner's outcome.
     *
     * @return the slot holding it while it is unmapped, or null when none is live there
     */
    private LiveMappings.Slot take(BusDevice d, LiveMappings t, long dmaAddress) {
        for (;;) {
            t.lock();
            try {
                LiveMappings.Slot s = t.takeSlot(dmaAddress, binding(d));
                if (s != null || !t.isUnmapping(dmaAddress)) {
                    return s;
                }
            } finally {
                t.unlock();
            }
            Thread.onSpinWait();
            Thread.yield();
        }
    }

    /** As {@link #take} for a scatterlist entry: the record goes, and the binding that made it is returned. */
    private DmaOpsBinding takeRecord(BusDevice d, LiveMappings t, long dmaAddress) {
        for (;;) {
            t.lock();
            try {
                DmaOpsBinding b = t.take(dmaAddress, binding(d));
                if (b != null) {
                    t.unmapped(dmaAddress, b);
                    t.busy(b, 1);
                    return b;
                }
                if (!t.isUnmapping(dmaAddress)) {
                    return null;
                }
            } finally {
                t.unlock();
            }
            Thread.onSpinWait();
            Thread.yield();
        }
    }

    /**
     * The whole buffer must lie in memory (the kernel's caller has a {@code struct page} for every byte of it) and
     * must not wrap past 2<sup>64</sup>: one check here, for every backend's ops, so that no ops can hand out a
     * DMA address for memory that does not exist.
     */
    private void requireInMemory(long phys, long size) {
        AddressRange.requireNoWrap("DMA buffer phys", phys, size);
        long memory = directOps.memorySize();
        if (Long.compareUnsigned(phys, memory) >= 0) {
            throw new IommuException(Errno.EFAULT, String.format("DMA buffer phys 0x%x is outside memory: expected"
                    + " an address below 0x%x", phys, memory));
        }
        if (Long.compareUnsigned(size, memory - phys) > 0) {
            throw new IommuException(Errno.EFAULT, String.format("DMA buffer phys 0x%x + size 0x%x is outside memory:"
                    + " expected a buffer below 0x%x", phys, size, memory));
        }
    }

    private void injectFailure(BusDevice device, long size) {
        if (device.failIommu() && failIommu.shouldFail(1)) { // the kernel asks should_fail(attr, 1)
            throw new DmaMappingException(Errno.ENOMEM, String.format("%s: iommu_alloc failed: no DMA address"
                    + " space for %s bytes", device.name(), Long.toUnsignedString(size)));
        }
    }

    private static BusDevice check(Device device, long size, DmaDirection direction) {
        BusDevice d = checkArguments(device, size, direction);
        if (!d.isPresent()) {
            throw new IommuException(Errno.ENODEV, "device " + d.name() + " has been removed");
        }
        return d;
    }

    private static BusDevice checkArguments(Device device, long size, DmaDirection direction) {
        if (!(device instanceof BusDevice d)) {
            throw new IommuException(Errno.EINVAL, "device " + device + " is invalid: expected a device of this"
                    + " host's buses");
        }
        if (direction == null || direction == DmaDirection.NONE) {
            throw new IommuException(Errno.EINVAL, "DMA direction " + direction + " is invalid for a mapping:"
                    + " use TO_DEVICE, FROM_DEVICE or BIDIRECTIONAL");
        }
        if (size == 0) {
            throw new IommuException(Errno.EINVAL, "DMA size 0 is invalid: expected at least 1 byte");
        }
        return d;
    }

    /**
     * @param owner a module
     * @return live mappings and coherent buffers made through ops that module installed, with calls through them
     *     in flight; devices hot-removed with mappings live included
     */
    public long liveMappings(ModuleRef owner) {
        long n = 0;
        for (LiveMappings t : tables.values()) {
            t.lock();
            try {
                n += t.count(owner);
            } finally {
                t.unlock();
            }
        }
        return n;
    }

    /**
     * The DMA side of unloading a module: marks every binding it installed {@link DmaOpsBinding.State#RETIRING},
     * so that new calls through them wait, lets the calls already in flight finish (for up to half a second, while
     * no mapping is live), then counts what is live through them. If anything is, the bindings go
     * back to {@link DmaOpsBinding.State#LIVE} and the count is returned: the unload must be refused. If nothing
     * is, they stay retiring until {@link #removeAllOwnedBy} replaces them; nothing can map through them any more.
     * Call with the configuration lock held.
     *
     * @param owner the module being unloaded
     * @return live mappings and calls in flight through its ops; 0 means the unload may go on
     */
    public long retire(ModuleRef owner) {
        lock.lock();
        try {
            for (DmaOpsBinding b : installed) {
                markRetiring(b, owner);
            }
            for (BusDevice d : buses.all()) {
                markRetiring(binding(d), owner); // also ops the DMA API picks for a device by other means
            }
            // calls already in flight finish (new ones wait): a map leaves a live mapping, an unmap none; wait
            // for them a little, so that a driver between two mappings does not keep its ops loaded forever
            long n = liveMappings(owner);
            long deadline = System.nanoTime() + RETIRE_WAIT_NANOS;
            while (n != 0 && liveOnly(owner) == 0 && System.nanoTime() - deadline < 0) {
                Thread.onSpinWait();
                Thread.yield();
                n = liveMappings(owner);
            }
            if (n != 0) {
                for (DmaOpsBinding b : retiring) {
                    if (b.owner() == owner) {
                        b.setState(DmaOpsBinding.State.LIVE);
                        retiring.remove(b);
                    }
                }
            }
            return n;
        } finally {
            lock.unlock();
        }
    }

    private long liveOnly(ModuleRef owner) {
        long n = 0;
        for (LiveMappings t : tables.values()) {
            t.lock();
            try {
                n += t.countLive(owner);
            } finally {
                t.unlock();
            }
        }
        return n;
    }

    private void markRetiring(DmaOpsBinding b, ModuleRef owner) {
        if (b != direct && b.owner() == owner && b.state() == DmaOpsBinding.State.LIVE) {
            b.setState(DmaOpsBinding.State.RETIRING);
            retiring.add(b);
        }
    }

    /**
     * Removes every ops binding an owner installed; calls waiting on them go to whatever ops are in force now.
     *
     * @param owner the module
     * @return how many bindings were removed
     */
    public int removeAllOwnedBy(ModuleRef owner) {
        lock.lock();
        try {
            int n = 0;
            if (defaultOps.owner() == owner) {
                defaultOps = direct;
                n++;
            }
            for (BusDevice d : buses.all()) {
                DmaOpsBinding b = d.dmaOps();
                if (b != null && b.owner() == owner) {
                    d.setDmaOps(null);
                    n++;
                }
            }
            for (DmaOpsBinding b : installed) {
                if (b.owner() == owner) {
                    installed.remove(b);
                }
            }
            // every binding its unload retired is gone now: calls waiting on them go to the ops in force
            for (DmaOpsBinding b : retiring) {
                if (b.owner() == owner) {
                    b.setState(DmaOpsBinding.State.GONE);
                    retiring.remove(b);
                }
            }
            return n;
        } finally {
            lock.unlock();
        }
    }

    /**
     * The api view for one module.
     *
     * @param owner the module
     * @return a registry whose installations belong to {@code owner}
     */
    public DmaOpsRegistry view(ModuleRef owner) {
        return new DmaOpsRegistry() {
            @Override
            public void setDeviceOps(Device device, DmaOps ops) {
                lock.lock();
                try {
                    BusDevice d = (BusDevice) device;
                    requireIdle(d.dmaOps(), device.name());
                    d.setDmaOps(install(new DmaOpsBinding(ops, owner), d.dmaOps()));
                } finally {
                    lock.unlock();
                }
            }

            @Override
            public void clearDeviceOps(Device device) {
                lock.lock();
                try {
                    BusDevice d = (BusDevice) device;
                    requireIdle(d.dmaOps(), device.name());
                    DmaOpsBinding old = d.dmaOps();
                    d.setDmaOps(null);
                    uninstall(old);
                } finally {
                    lock.unlock();
                }
            }

            @Override
            public void setDefaultOps(DmaOps ops) {
                lock.lock();
                try {
                    if (defaultOps != direct && defaultOps.owner() != owner) {
                        throw new IommuException(Errno.EBUSY, "default DMA ops are already installed by "
                                + defaultOps.owner().name() + ": unload it first");
                    }
                    requireIdle(defaultOps, "the default ops");
                    defaultOps = install(new DmaOpsBinding(ops, owner), defaultOps);
                } finally {
                    lock.unlock();
                }
            }

            @Override
            public void clearDefaultOps(DmaOps ops) {
                lock.lock();
                try {
                    if (defaultOps.ops() == ops) {
                        requireIdle(defaultOps, "the default ops");
                        DmaOpsBinding old = defaultOps;
                        defaultOps = direct;
                        uninstall(old);
                    }
                } finally {
                    lock.unlock();
                }
            }

            @Override
            public DmaOps directOps() {
                return direct.ops();
            }
        };
    }

    /** A new binding replaces {@code old}; one that is retiring passes its state on (the owner is unloading). */
    private DmaOpsBinding install(DmaOpsBinding binding, DmaOpsBinding old) {
        if (old != null && old != direct) {
            boolean wasRetiring = old.state() == DmaOpsBinding.State.RETIRING;
            uninstall(old);
            if (wasRetiring && old.owner() == binding.owner()) {
                binding.setState(DmaOpsBinding.State.RETIRING);
                retiring.add(binding);
            }
        }
        installed.add(binding);
        return binding;
    }

    /** A binding stops being installed; one whose owner is unloading is gone, so calls waiting on it move on. */
    private void uninstall(DmaOpsBinding binding) {
        if (binding != null && binding != direct) {
            installed.remove(binding);
            if (binding.state() == DmaOpsBinding.State.RETIRING) {
                binding.setState(DmaOpsBinding.State.GONE);
                retiring.remove(binding);
            }
        }
    }

    private void requireIdle(DmaOpsBinding binding, String what) {
        if (binding == null || binding == direct) {
            return;
        }
        long n = 0;
        for (LiveMappings t : tables.values()) {
            t.lock();
            try {
                n += t.count(binding);
            } finally {
                t.unlock();
            }
        }
        if (n != 0) {
            throw new IommuException(Errno.EBUSY, "cannot change DMA ops of " + what + " while " + n
                    + " mappings made through them are live");
        }
    }
}
