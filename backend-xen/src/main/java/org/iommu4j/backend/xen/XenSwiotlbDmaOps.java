package org.iommu4j.backend.xen;

import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.XenHypercalls;

/**
 * xen-swiotlb (Linux v6.12 {@code drivers/xen/swiotlb-xen.c}): the device sees machine addresses. A buffer is
 * mapped directly when its machine address is within the device's reach, it does not straddle a machine
 * discontinuity, and bouncing is not forced; otherwise it is bounced through swiotlb's pool, whose segments
 * were made machine-contiguous below 4 GiB when this module loaded ({@code xen_swiotlb_fixup}). Bouncing is
 * forced by {@code swiotlb=force} on the kernel command line ({@code is_swiotlb_force_bounce}) or this
 * module's {@code force}.
 *
 * <p>Whatever is mapped, directly or bounced, is also mapped by hypercall in the device's context of the
 * hypervisor's IOMMU (bus frame = machine frame) and unmapped with it, so the device reaches its buffers and
 * nothing else; a device that is not in a DMA domain (not assigned to this domain, or taken by VFIO) cannot be
 * mapped for at all.
 */
final class XenSwiotlbDmaOps implements DmaOps {
    private static final int RW = IommuProt.READ | IommuProt.WRITE;

    private final KernelServices kernel;
    private final XenHypercalls xen;
    private final BounceBufferPool pool;
    private final XenIommuOps iommu;
    private final boolean force;

    XenSwiotlbDmaOps(KernelServices kernel, XenHypercalls xen, BounceBufferPool pool, XenIommuOps iommu,
            boolean force) {
        this.kernel = kernel;
        this.xen = xen;
        this.pool = pool;
        this.iommu = iommu;
        this.force = force;
    }

    /** {@code xen_phys_to_dma}: the guest's physical address to the machine (bus) address. */
    long physToDma(long phys) {
        return (xen.pfnToMfn(phys >>> PhysicalMemory.PAGE_SHIFT) << PhysicalMemory.PAGE_SHIFT)
                | (phys & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /** {@code xen_dma_to_phys}, through the m2p; -1 for a frame the domain does not own. */
    long dmaToPhys(long dma) {
        long pfn = xen.mfnToPfn(dma >>> PhysicalMemory.PAGE_SHIFT);
        return pfn < 0 ? -1 : (pfn << PhysicalMemory.PAGE_SHIFT) | (dma & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /**
     * {@code range_straddles_page_boundary}: walks the frames of the range; it straddles when a next frame's
     * machine frame is not the previous one plus one, or when a buffer aligned to its size in pseudo-physical
     * memory is not so aligned in machine memory.
     */
    boolean straddles(long phys, long size) {
        return straddles(phys, size, xen.pfnToMfn(phys >>> PhysicalMemory.PAGE_SHIFT));
    }

    /** As {@link #straddles(long, long)}, given the machine frame of the first page. */
    private boolean straddles(long phys, long size, long firstMfn) {
        long pfn = phys >>> PhysicalMemory.PAGE_SHIFT;
        long pages = pages(phys, size);
        long align = Long.highestOneBit(Math.max(PhysicalMemory.PAGE_SIZE, PhysicalMemory.pageAlignUp(size)));
        if (align < PhysicalMemory.pageAlignUp(size)) {
            align <<= 1;
        }
        long next = firstMfn;
        if ((phys & (align - 1)) == 0 && ((next << PhysicalMemory.PAGE_SHIFT) & (align - 1)) != 0) {
            return true;
        }
        for (long i = 1; i < pages; i++) {
            if (xen.pfnToMfn(++pfn) != ++next) {
                return true;
            }
        }
        return false;
    }

    private static long pages(long address, long size) {
        return ((address & PhysicalMemory.PAGE_OFFSET_MASK) + size + PhysicalMemory.PAGE_OFFSET_MASK)
                >>> PhysicalMemory.PAGE_SHIFT;
    }

    private static boolean capable(Device device, long address, long size) {
        return Long.compareUnsigned(address + size - 1, device.reachLimit()) <= 0;
    }

    private XenHypercalls.IommuContext context(Device device) {
        XenHypercalls.IommuContext context = iommu.dmaContext(device);
        if (context == null) {
            throw new IommuException(Errno.ENODEV, "xen: " + device.name() + " is not in a DMA domain of d"
                    + xen.domainId() + " (the hypervisor has not assigned it to this domain, or VFIO has it): there"
                    + " is no IOMMU context to map for it");
        }
        return context;
    }

    @Override
    public long map(Device device, long phys, long size, DmaDirection direction) {
        XenHypercalls.IommuContext context = context(device);
        long dma = physToDma(phys);
        if (force || !capable(device, dma, size) || straddles(phys, size, dma >>> PhysicalMemory.PAGE_SHIFT)) {
            long tlb = pool.map(device, phys, size, size, 0, direction);
            dma = physToDma(tlb);
            if (!capable(device, dma, size)) {
                pool.unmap(device, tlb, size, DmaDirection.TO_DEVICE);
                throw new DmaMappingException(Errno.EIO, String.format("xen-swiotlb: bounce buffer 0x%016x+%d is"
                        + " beyond the reach of %s (mask %x)", dma, size, device.name(), device.dmaMask()));
            }
        }
        if (size > 0) {
            context.map(dma >>> PhysicalMemory.PAGE_SHIFT, dma >>> PhysicalMemory.PAGE_SHIFT, pages(dma, size), RW);
        }
        return dma;
    }

    private long bounced(long dma) {
        long phys = dmaToPhys(dma);
        return phys >= 0 && pool.contains(phys) ? phys : -1;
    }

    @Override
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
        XenHypercalls.IommuContext context = iommu.dmaContext(device);
        if (context != null) {
            context.unmap(dmaAddress >>> PhysicalMemory.PAGE_SHIFT, pages(dmaAddress, size));
        }
        long tlb = bounced(dmaAddress);
        if (tlb >= 0) {
            pool.unmap(device, tlb, size, direction);
        }
    }

    @Override
    public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        long tlb = bounced(dmaAddress);
        if (tlb >= 0) {
            pool.syncForCpu(device, tlb, size, direction);
        }
    }

    @Override
    public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        long tlb = bounced(dmaAddress);
        if (tlb >= 0) {
            pool.syncForDevice(device, tlb, size, direction);
        }
    }

    /**
     * {@code xen_swiotlb_alloc_coherent}: pages from the domain, exchanged for a machine-contiguous run below
     * the device's coherent mask when they are not one already, and mapped in the device's context.
     */
    @Override
    public CoherentBuffer allocateCoherent(Device device, long size) {
        XenHypercalls.IommuContext context = context(device);
        long bytes = PhysicalMemory.pageAlignUp(size);
        int order = 64 - Long.numberOfLeadingZeros((bytes >>> PhysicalMemory.PAGE_SHIFT) - 1);
        long phys = kernel.pageAllocator().allocatePages(order, PageAllocator.NO_LIMIT);
        try {
            long pages = 1L << order;
            long dma = physToDma(phys);
            if (!capable(device, dma, pages << PhysicalMemory.PAGE_SHIFT) || straddles(phys, bytes)) {
                int bits = 64 - Long.numberOfLeadingZeros(device.coherentDmaMask());
                xen.exchange(phys >>> PhysicalMemory.PAGE_SHIFT, order, bits);
                dma = physToDma(phys);
            }
            kernel.memory().fill(phys, pages << PhysicalMemory.PAGE_SHIFT, (byte) 0);
            context.map(dma >>> PhysicalMemory.PAGE_SHIFT, dma >>> PhysicalMemory.PAGE_SHIFT, pages, RW);
            return new CoherentBuffer(phys, dma, pages << PhysicalMemory.PAGE_SHIFT);
        } catch (RuntimeException e) {
            kernel.pageAllocator().freePages(phys, order);
            throw e;
        }
    }

    @Override
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        long pages = buffer.size() >>> PhysicalMemory.PAGE_SHIFT;
        XenHypercalls.IommuContext context = iommu.dmaContext(device);
        if (context != null) {
            context.unmap(buffer.dmaAddress() >>> PhysicalMemory.PAGE_SHIFT, pages);
        }
        kernel.pageAllocator().freePages(buffer.phys(), 63 - Long.numberOfLeadingZeros(pages));
    }

    @Override
    public long maxMappingSize(Device device) {
        return pool.maxMappingSize(device);
    }
}
