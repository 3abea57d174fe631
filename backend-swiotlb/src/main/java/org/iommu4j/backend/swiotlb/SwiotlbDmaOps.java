package org.iommu4j.backend.swiotlb;

import org.iommu4j.api.AddressRange;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.KernelServices;

/**
 * dma-direct with swiotlb behind it, as Linux v6.12's {@code kernel/dma/direct.h} ({@code dma_direct_map_page})
 * and {@code kernel/dma/swiotlb.c} ({@code swiotlb_map}) decide: a buffer the device can reach is mapped directly
 * (DMA address = physical address) unless bouncing is forced; anything else is bounced. A bounce slot the device
 * still cannot reach is given back and reported with the kernel's {@code dev_WARN_ONCE} ("swiotlb addr ...
 * overflow", taint W); with no pool ({@code swiotlb=noforce}) an unreachable buffer gets dma-direct's
 * {@code dev_WARN_ONCE} ("DMA addr ... overflow"). Either way the map returns {@code DMA_MAPPING_ERROR}, which
 * surfaces as {@link DmaMappingException} with ENOMEM, the errno a caller converting it reports.
 */
final class SwiotlbDmaOps implements DmaOps {
    private final KernelServices kernel;
    private final SwiotlbMem mem;
    private final boolean force;

    /**
     * @param kernel the host's services
     * @param mem the pools, or null when bouncing is disabled
     * @param force bounce every mapping
     */
    SwiotlbDmaOps(KernelServices kernel, SwiotlbMem mem, boolean force) {
        this.kernel = kernel;
        this.mem = mem;
        this.force = force;
    }

    /** The kernel's {@code dma_capable}: the range's last byte at or below the device's reach, unsigned. */
    static boolean capable(Device device, long address, long size) {
        return AddressRange.fitsBelow(address, size, SwiotlbMem.reachLimit(device));
    }

    @Override
    public long map(Device device, long phys, long size, DmaDirection direction) {
        return map(device, phys, size, false);
    }

    private long map(Device device, long phys, long size, boolean noWarn) {
        if (!force && capable(device, phys, size)) {
            return phys;
        }
        if (mem == null) {
            throw overflow(device, "kernel/dma/direct.h dma_direct_map_page", "DMA addr", phys, size);
        }
        long tlb = mem.mapSingle(device, phys, size, size, 0, noWarn, null);
        if (!capable(device, tlb, size)) {
            // swiotlb_tbl_unmap_single with DMA_ATTR_SKIP_CPU_SYNC: no copy back
            SwiotlbPool pool = mem.find(tlb);
            mem.unmapIn(pool, device, tlb, size, DmaDirection.TO_DEVICE);
            throw overflow(device, "kernel/dma/swiotlb.c swiotlb_map", "swiotlb addr", tlb, size);
        }
        return tlb;
    }

    private DmaMappingException overflow(Device device, String site, String what, long address, long size) {
        String message = String.format("%s 0x%016x+%s overflow (mask %x, bus limit %x).", what, address,
                Long.toUnsignedString(size), device.dmaMask(), device.busDmaLimit());
        kernel.log().warnOnce(site, SwiotlbMem.devPrefix(kernel, device) + message);
        return new DmaMappingException(Errno.ENOMEM, message);
    }

    @Override
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
        SwiotlbPool pool = mem == null ? null : mem.find(dmaAddress);
        if (pool != null) {
            mem.unmapIn(pool, device, dmaAddress, size, direction);
        }
    }

    @Override
    public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        SwiotlbPool pool = mem == null ? null : mem.find(dmaAddress);
        if (pool != null) {
            pool.syncForCpu(device, dmaAddress, size, direction);
        }
    }

    @Override
    public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        SwiotlbPool pool = mem == null ? null : mem.find(dmaAddress);
        if (pool != null) {
            pool.syncForDevice(device, dmaAddress, size, direction);
        }
    }

    @Override
    public CoherentBuffer allocateCoherent(Device device, long size) {
        return kernel.dma().directOps().allocateCoherent(device, size);
    }

    /**
     * {@code dma_direct_map_page} with attributes (API 1.2). {@code DMA_ATTR_NO_WARN} keeps a full pool from
     * logging "swiotlb buffer is full"; {@code DMA_ATTR_SKIP_CPU_SYNC} changes nothing on map: Linux v6.12's
     * {@code swiotlb_tbl_map_single} copies the original into the slot whatever the attributes.
     */
    @Override
    public long map(Device device, long phys, long size, DmaDirection direction,
            org.iommu4j.api.DmaAttrs attrs) {
        return map(device, phys, size, attrs.noWarn());
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

    /**
     * {@code dma_direct_max_mapping_size} (Linux v6.12 {@code kernel/dma/direct.c}): swiotlb's maximum when swiotlb
     * is active and every mapping is bounced or the device cannot address all memory ({@code
     * dma_addressing_limited}: its reach is below {@code dma_get_required_mask}), else {@code SIZE_MAX} ({@code -1},
     * unsigned).
     */
    @Override
    public long maxMappingSize(Device device) {
        long required = -1L >>> Long.numberOfLeadingZeros(kernel.memory().size() - 1);
        boolean limited = Long.compareUnsigned(SwiotlbMem.reachLimit(device), required) < 0;
        return mem != null && (force || limited) ? SwiotlbPool.maxMappingSizeFor(device) : -1L;
    }
}
