package org.iommu4j.kernel.dma;

import java.util.Optional;
import java.util.concurrent.locks.ReentrantLock;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.DmaOpsRegistry;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.Buses;
import org.iommu4j.kernel.fault.FaultAttr;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * The DMA API kernel drivers call ({@code dma_map_single} and friends): it checks the arguments, picks the
 * device's ops (its own, else the default a backend installed, else iommu-dma when the device's default domain
 * is a DMA domain, else dma-direct) and counts live mappings
 * against the module that provides them. Map, unmap and sync read two volatile fields and take no lock.
 */
public final class DmaApi {
    private final ReentrantLock lock;
    private final Buses buses;
    private final DmaOpsBinding direct;
    private final DmaDebug debug;
    private final FaultAttr failIommu;
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
        this.direct = new DmaOpsBinding(direct, ModuleRef.KERNEL);
        this.defaultOps = this.direct;
    }

    /**
     * Maps a buffer for streaming DMA.
     *
     * @param device the device
     * @param phys the buffer's physical address
     * @param size bytes, positive
     * @param direction not {@link DmaDirection#NONE}
     * @return the DMA address to give the device
     * @throws IommuException {@link Errno#EINVAL} for a bad size or direction, {@link Errno#ENODEV} for a
     *     removed device, or the backend's {@link org.iommu4j.api.DmaMappingException}
     */
    public long map(Device device, long phys, long size, DmaDirection direction) {
        BusDevice d = check(device, size, direction);
        injectFailure(d, size);
        DmaOpsBinding b = binding(d);
        long address = b.ops().map(device, phys, size, direction);
        b.live().increment();
        if (debug != null) {
            debug.mapped(d, phys, address, size, direction);
        }
        return address;
    }

    /**
     * Ends a streaming mapping.
     *
     * @param device the device
     * @param dmaAddress what {@link #map} returned
     * @param size the mapped size
     * @param direction the mapped direction
     */
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
        BusDevice d = checkArguments(device, size, direction);
        DmaDebug.Entry recorded = debug == null ? null : debug.unmapping(d, dmaAddress, size, direction);
        DmaOpsBinding b = binding(d);
        try {
            b.ops().unmap(device, dmaAddress, size, direction);
        } catch (RuntimeException e) {
            if (recorded != null) {
                debug.restore(recorded);
            }
            throw e;
        }
        b.live().decrement();
    }

    /**
     * @param device the device
     * @param dmaAddress inside a live mapping
     * @param size bytes
     * @param direction the mapping's direction
     */
    public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        BusDevice d = checkArguments(device, size, direction);
        if (debug != null) {
            debug.syncing(d, dmaAddress, size, direction, true);
        }
        binding(d).ops().syncForCpu(device, dmaAddress, size, direction);
    }

    /**
     * @param device the device
     * @param dmaAddress inside a live mapping
     * @param size bytes
     * @param direction the mapping's direction
     */
    public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        BusDevice d = checkArguments(device, size, direction);
        if (debug != null) {
            debug.syncing(d, dmaAddress, size, direction, false);
        }
        binding(d).ops().syncForDevice(device, dmaAddress, size, direction);
    }

    /**
     * @param device the device
     * @param size bytes, positive
     * @return a zeroed coherent buffer the device can reach
     */
    public CoherentBuffer allocateCoherent(Device device, long size) {
        BusDevice d = check(device, size, DmaDirection.BIDIRECTIONAL);
        injectFailure(d, size);
        DmaOpsBinding b = binding(d);
        CoherentBuffer buffer = b.ops().allocateCoherent(device, size);
        b.live().increment();
        if (debug != null) {
            debug.allocated(d, buffer);
        }
        return buffer;
    }

    /**
     * @param device the device
     * @param buffer a buffer {@link #allocateCoherent} returned for it
     */
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        BusDevice d = (BusDevice) device;
        DmaDebug.Entry recorded = debug == null ? null : debug.freeing(d, buffer);
        DmaOpsBinding b = binding(d);
        try {
            b.ops().freeCoherent(device, buffer);
        } catch (RuntimeException e) {
            if (recorded != null) {
                debug.restore(recorded);
            }
            throw e;
        }
        b.live().decrement();
    }

    /** @return the DMA-API checker, when the host runs with it */
    public Optional<DmaDebug> debug() {
        return Optional.ofNullable(debug);
    }

    /**
     * @param device a device
     * @return the ops its DMA API calls go to now
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

    private void injectFailure(BusDevice device, long size) {
        if (device.failIommu() && failIommu.shouldFail(1)) { // the kernel asks should_fail(attr, 1)
            throw new DmaMappingException(Errno.ENOMEM, String.format("%s: iommu_alloc failed: no DMA address"
                    + " space for %d bytes", device.name(), size));
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
        if (direction == null || direction == DmaDirection.NONE) {
            throw new IommuException(Errno.EINVAL, "DMA direction " + direction + " is invalid for a mapping:"
                    + " use TO_DEVICE, FROM_DEVICE or BIDIRECTIONAL");
        }
        if (size <= 0) {
            throw new IommuException(Errno.EINVAL, "DMA size " + size + " is invalid: expected at least 1 byte");
        }
        return (BusDevice) device;
    }

    /**
     * @param owner a module
     * @return live mappings and coherent buffers made through ops that module installed
     */
    public long liveMappings(ModuleRef owner) {
        long n = 0;
        DmaOpsBinding def = defaultOps;
        if (def.owner() == owner) {
            n += def.live().sum();
        }
        java.util.Set<DmaOpsBinding> iommuDma = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (BusDevice d : buses.all()) {
            DmaOpsBinding b = d.dmaOps();
            if (b != null && b.owner() == owner) {
                n += b.live().sum();
            }
            Group g = d.group();
            DmaOpsBinding viaDomain = g == null ? null : g.dmaApiBinding();
            if (viaDomain != null && viaDomain.owner() == owner && iommuDma.add(viaDomain)) {
                n += viaDomain.live().sum(); // iommu-dma mappings live in the driver's domains
            }
        }
        return n;
    }

    /**
     * Removes every ops binding an owner installed.
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
                    d.setDmaOps(new DmaOpsBinding(ops, owner));
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
                    d.setDmaOps(null);
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
                    defaultOps = new DmaOpsBinding(ops, owner);
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
                        defaultOps = direct;
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

    private void requireIdle(DmaOpsBinding binding, String what) {
        if (binding != null && binding != direct && binding.live().sum() != 0) {
            throw new IommuException(Errno.EBUSY, "cannot change DMA ops of " + what + " while "
                    + binding.live().sum() + " mappings made through them are live");
        }
    }
}
