package org.iommu4j.backend.swiotlb;

import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;

/**
 * dma-direct with swiotlb behind it, as {@code kernel/dma/direct.h} decides: a buffer the device can reach is
 * mapped directly (DMA address = physical address) unless bouncing is forced; anything else is bounced, and a
 * bounce slot the device still cannot reach is given back with the kernel's warning. With the pool disabled
 * ({@code swiotlb=noforce}) an unreachable buffer is refused as dma-direct refuses it.
 */
final class SwiotlbDmaOps implements DmaOps {
    private final KernelServices kernel;
    private final SwiotlbPool pool;
    private final boolean force;

    /**
     * @param kernel the host's services
     * @param pool the pool, or null when bouncing is disabled
     * @param force bounce every mapping
     */
    SwiotlbDmaOps(KernelServices kernel, SwiotlbPool pool, boolean force) {
        this.kernel = kernel;
        this.pool = pool;
        this.force = force;
    }

    static boolean capable(Device device, long address, long size) {
        return Long.compareUnsigned(address + size - 1, device.reachLimit()) <= 0;
    }

    @Override
    public long map(Device device, long phys, long size, DmaDirection direction) {
        if (!force && capable(device, phys, size)) {
            return phys;
        }
        if (pool == null) {
            throw overflow(device, "DMA addr", phys, size);
        }
        long tlb = pool.map(device, phys, size, size, 0, direction);
        if (!capable(device, tlb, size)) {
            pool.unmap(device, tlb, size, DmaDirection.TO_DEVICE);
            throw overflow(device, "swiotlb addr", tlb, size);
        }
        return tlb;
    }

    private DmaMappingException overflow(Device device, String what, long address, long size) {
        String message = String.format("%s 0x%016x+%d overflow (mask %x, bus limit %x).", what, address, size,
                device.dmaMask(), device.busDmaLimit());
        kernel.log().log(LogLevel.ERR, device, message);
        return new DmaMappingException(Errno.EIO, message);
    }

    @Override
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
        if (pool != null && pool.contains(dmaAddress)) {
            pool.unmap(device, dmaAddress, size, direction);
        }
    }

    @Override
    public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        if (pool != null && pool.contains(dmaAddress)) {
            pool.syncForCpu(device, dmaAddress, size, direction);
        }
    }

    @Override
    public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        if (pool != null && pool.contains(dmaAddress)) {
            pool.syncForDevice(device, dmaAddress, size, direction);
        }
    }

    @Override
    public CoherentBuffer allocateCoherent(Device device, long size) {
        return kernel.dma().directOps().allocateCoherent(device, size);
    }

    /**
     * {@code dma_direct_map_page} with attributes (API 1.2). {@code DMA_ATTR_SKIP_CPU_SYNC} changes nothing on
     * map: Linux v6.12's {@code swiotlb_tbl_map_single} copies the original into the slot whatever the attributes.
     * {@code DMA_ATTR_NO_WARN} needs the pool's "buffer is full" path to know of it, which this ops class does not
     * reach: until the pool takes attributes, a full pool still warns.
     */
    @Override
    public long map(Device device, long phys, long size, DmaDirection direction,
            org.iommu4j.api.DmaAttrs attrs) {
        return map(device, phys, size, direction);
    }

    /**
     * {@code dma_direct_unmap_page} with attributes (API 1.2): with {@code DMA_ATTR_SKIP_CPU_SYNC} the slot is
     * released without a copy back, as {@code swiotlb_tbl_unmap_single} does; the pool copies back only for a
     * direction from the device, so the release is made as a TO_DEVICE one.
     */
    @Override
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction,
            org.iommu4j.api.DmaAttrs attrs) {
        unmap(device, dmaAddress, size, attrs.skipCpuSync() ? DmaDirection.TO_DEVICE : direction);
    }

    @Override
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        kernel.dma().directOps().freeCoherent(device, buffer);
    }

    @Override
    public long maxMappingSize(Device device) {
        return pool == null ? Long.MAX_VALUE : pool.maxMappingSize(device);
    }
}
