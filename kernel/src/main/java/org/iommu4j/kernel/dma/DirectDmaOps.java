package org.iommu4j.kernel.dma;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.log.KernelLogBuffer;

/**
 * The kernel's dma-direct without a bounce pool ({@code kernel/dma/direct.c}): the DMA address is the
 * physical address, no state is kept per mapping, and a buffer the device cannot reach is refused with the
 * kernel's message, logged once per device ({@code dev_err_once}).
 */
public final class DirectDmaOps implements DmaOps {
    private final PhysicalMemory memory;
    private final PageAllocator pages;
    private final KernelLogBuffer log;
    private final Set<String> reported = ConcurrentHashMap.newKeySet();

    /**
     * @param memory the host's memory
     * @param pages the host's page allocator, for coherent buffers
     * @param log the kernel log
     */
    public DirectDmaOps(PhysicalMemory memory, PageAllocator pages, KernelLogBuffer log) {
        this.memory = memory;
        this.pages = pages;
        this.log = log;
    }

    @Override
    public long map(Device device, long phys, long size, DmaDirection direction) {
        if (Long.compareUnsigned(phys + size - 1, device.reachLimit()) > 0) {
            String message = String.format("DMA addr 0x%016x+%d overflow (mask %x, bus limit %x).", phys, size,
                    device.dmaMask(), device.busDmaLimit());
            if (reported.add(device.name())) {
                log.log(LogLevel.ERR, ((BusDevice) device).logPrefix() + ": " + message);
            }
            throw new DmaMappingException(Errno.EIO, message);
        }
        return phys;
    }

    @Override
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
    }

    @Override
    public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
    }

    @Override
    public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
    }

    @Override
    public CoherentBuffer allocateCoherent(Device device, long size) {
        long bytes = PhysicalMemory.pageAlignUp(size);
        long mask = device.coherentDmaMask();
        long limit = mask == -1L || mask + 1 < 0 ? PageAllocator.NO_LIMIT : mask + 1;
        long phys = pages.allocateContiguous(bytes >>> PhysicalMemory.PAGE_SHIFT, limit);
        memory.fill(phys, bytes, (byte) 0);
        return new CoherentBuffer(phys, phys, bytes);
    }

    @Override
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        pages.freeContiguous(buffer.phys(), buffer.size() >>> PhysicalMemory.PAGE_SHIFT);
    }
}
