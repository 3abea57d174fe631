package org.iommu4j.kernel.dma;

import org.iommu4j.api.AddressRange;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.log.Warnings;

/**
 * The kernel's dma-direct without a bounce pool ({@code kernel/dma/direct.c}, {@code kernel/dma/direct.h},
 * Linux v6.12): the DMA address is the physical address, no state is kept per mapping, and a buffer the device
 * cannot reach is a mapping error ({@code DMA_MAPPING_ERROR}, thrown as {@link DmaMappingException} with
 * {@link Errno#ENOMEM}, the errno drivers turn it into) announced by {@code dma_direct_map_page}'s
 * {@code dev_WARN_ONCE}: once per host (the kernel's once-flag is per call site), with the {@code cut here}
 * marker and the {@code WARNING: ... at kernel/dma/direct.h dma_direct_map_page} line, tainting W.
 */
public final class DirectDmaOps implements DmaOps {
    /** The warning site of an unreachable buffer, as {@link Warnings} prints it. */
    public static final String OVERFLOW_SITE = "kernel/dma/direct.h dma_direct_map_page";
    private final PhysicalMemory memory;
    private final PageAllocator pages;
    private final Warnings warnings;

    /**
     * @param memory the host's memory
     * @param pages the host's page allocator, for coherent buffers
     * @param warnings the kernel's WARN facility
     */
    public DirectDmaOps(PhysicalMemory memory, PageAllocator pages, Warnings warnings) {
        this.memory = memory;
        this.pages = pages;
        this.warnings = warnings;
    }

    /** @return bytes of memory on the host, for the DMA API's argument checks */
    long memorySize() {
        return memory.size();
    }

    /**
     * {@code dma_direct_map_page}: the physical address, if the device reaches all of the buffer.
     *
     * @throws IommuException {@link Errno#EFAULT} for a buffer not wholly in memory (the model's check: the
     *     kernel trusts its caller's {@code struct page}); the {@link DmaMappingException} above for one the
     *     device cannot reach
     */
    @Override
    public long map(Device device, long phys, long size, DmaDirection direction) {
        if (!AddressRange.fitsBelow(phys, size, memory.size() - 1)) {
            throw new IommuException(Errno.EFAULT, String.format("DMA buffer phys 0x%x + size 0x%x is outside"
                    + " memory: expected a buffer below 0x%x", phys, size, memory.size()));
        }
        if (!AddressRange.fitsBelow(phys, size, device.reachLimit())) {
            // %pad prints a dma_addr_t as 0x and 16 hex digits; %zu the size unsigned
            String message = String.format("DMA addr 0x%016x+%s overflow (mask %x, bus limit %x).", phys,
                    Long.toUnsignedString(size), device.dmaMask(), device.busDmaLimit());
            warnings.warnOnce("kernel", OVERFLOW_SITE, ((BusDevice) device).logPrefix() + ": " + message);
            throw new DmaMappingException(Errno.ENOMEM, message);
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

    /**
     * {@code dma_direct_alloc}: whole pages below the coherent mask, zeroed. A size larger than memory is
     * refused before the allocator is asked, so nothing changes.
     *
     * @throws IommuException {@link Errno#ENOMEM} naming the size when no run of free pages that long exists
     *     below the mask (or memory is smaller), {@link Errno#EINVAL} for a size that rounds past 2<sup>64</sup>
     */
    @Override
    public CoherentBuffer allocateCoherent(Device device, long size) {
        long bytes = AddressRange.alignUp("coherent size", size, PhysicalMemory.PAGE_SIZE);
        long count = bytes >>> PhysicalMemory.PAGE_SHIFT;
        if (bytes == 0 || Long.compareUnsigned(count, pages.totalPages()) > 0) {
            throw new IommuException(Errno.ENOMEM, String.format("coherent allocation of %s bytes failed:"
                    + " expected at most 0x%x bytes (the host's memory)", Long.toUnsignedString(size),
                    memory.size()));
        }
        long mask = device.coherentDmaMask();
        long limit = mask == -1L || mask + 1 < 0 ? PageAllocator.NO_LIMIT : mask + 1;
        long phys = pages.allocateContiguous(count, limit);
        memory.fill(phys, bytes, (byte) 0);
        return new CoherentBuffer(phys, phys, bytes);
    }

    @Override
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        pages.freeContiguous(buffer.phys(), buffer.size() >>> PhysicalMemory.PAGE_SHIFT);
    }

    /**
     * {@code dma_direct_max_mapping_size} without swiotlb: {@code SIZE_MAX}.
     *
     * @return {@code -1}, that is 2<sup>64</sup> - 1 unsigned
     */
    @Override
    public long maxMappingSize(Device device) {
        return -1L;
    }
}
