package org.iommu4j.backend.xen;

import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;

/**
 * xen-swiotlb ({@code drivers/xen/swiotlb-xen.c}): the device sees machine addresses. A buffer is mapped
 * directly when its machine address is within the device's reach, it does not straddle a machine
 * discontinuity, and bouncing is not forced; otherwise it is bounced through swiotlb's pool, whose segments
 * were made machine-contiguous below 4 GiB when this module loaded. Bouncing is forced by {@code swiotlb=force}
 * on the kernel command line (the kernel's {@code is_swiotlb_force_bounce}) or this module's {@code force}. A
 * device the guest was not given cannot be mapped for at all.
 */
final class XenSwiotlbDmaOps implements DmaOps {
    private final KernelServices kernel;
    private final XenHypervisor hypervisor;
    private final XenDomain guest;
    private final BounceBufferPool pool;
    private final XenIommuOps iommu;
    private final boolean force;

    XenSwiotlbDmaOps(KernelServices kernel, XenHypervisor hypervisor, XenDomain guest, BounceBufferPool pool,
            XenIommuOps iommu, boolean force) {
        this.kernel = kernel;
        this.hypervisor = hypervisor;
        this.guest = guest;
        this.pool = pool;
        this.iommu = iommu;
        this.force = force;
    }

    /** {@code xen_phys_to_dma}: the guest's physical address to the machine (bus) address. */
    long physToDma(long phys) {
        return (guest.mfn(phys >>> PhysicalMemory.PAGE_SHIFT) << PhysicalMemory.PAGE_SHIFT)
                | (phys & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /** {@code xen_dma_to_phys}, through the m2p table; -1 for a frame the guest does not own. */
    long dmaToPhys(long dma) {
        long mfn = dma >>> PhysicalMemory.PAGE_SHIFT;
        if (hypervisor.ownerOf(mfn) != guest.domid()) {
            return -1;
        }
        return (hypervisor.pfnOf(mfn) << PhysicalMemory.PAGE_SHIFT) | (dma & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /**
     * {@code range_straddles_page_boundary}: walks the frames of the range; it straddles when a next frame's
     * machine frame is not the previous one plus one, or when a buffer aligned to its size in pseudo-physical
     * memory is not so aligned in machine memory.
     */
    boolean straddles(long phys, long size) {
        long pfn = phys >>> PhysicalMemory.PAGE_SHIFT;
        long pages = (((phys & PhysicalMemory.PAGE_OFFSET_MASK) + size) + PhysicalMemory.PAGE_OFFSET_MASK)
                >>> PhysicalMemory.PAGE_SHIFT;
        long align = Long.highestOneBit(Math.max(PhysicalMemory.PAGE_SIZE, PhysicalMemory.pageAlignUp(size)));
        if (align < PhysicalMemory.pageAlignUp(size)) {
            align <<= 1;
        }
        long next = guest.mfn(pfn);
        if ((phys & (align - 1)) == 0 && ((next << PhysicalMemory.PAGE_SHIFT) & (align - 1)) != 0) {
            return true;
        }
        for (long i = 1; i < pages; i++) {
            if (guest.mfn(++pfn) != ++next) {
                return true;
            }
        }
        return false;
    }

    private static boolean capable(Device device, long address, long size) {
        return Long.compareUnsigned(address + size - 1, device.reachLimit()) <= 0;
    }

    private void requireAssigned(Device device) {
        if (!iommu.isAssigned(device)) {
            throw new IommuException(Errno.ENODEV, "xen: " + device.name() + " is not assigned to " + guest
                    + ": give it to the guest with xen-pciback.hide=, or new_slot then bind, first");
        }
    }

    @Override
    public long map(Device device, long phys, long size, DmaDirection direction) {
        requireAssigned(device);
        long dma = physToDma(phys);
        if (!force && capable(device, dma, size) && !straddles(phys, size)) {
            return dma;
        }
        long tlb = pool.map(device, phys, size, size, 0, direction);
        dma = physToDma(tlb);
        if (!capable(device, dma, size)) {
            pool.unmap(device, tlb, size, DmaDirection.TO_DEVICE);
            throw new DmaMappingException(Errno.EIO, String.format("xen-swiotlb: bounce buffer 0x%016x+%d is beyond"
                    + " the reach of %s (mask %x)", dma, size, device.name(), device.dmaMask()));
        }
        return dma;
    }

    private long bounced(long dma) {
        long phys = dmaToPhys(dma);
        return phys >= 0 && pool.contains(phys) ? phys : -1;
    }

    @Override
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
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
     * {@code xen_swiotlb_alloc_coherent}: pages from the guest, exchanged for a machine-contiguous run below the
     * device's coherent mask when they are not one already.
     */
    @Override
    public CoherentBuffer allocateCoherent(Device device, long size) {
        requireAssigned(device);
        long bytes = PhysicalMemory.pageAlignUp(size);
        int order = 64 - Long.numberOfLeadingZeros((bytes >>> PhysicalMemory.PAGE_SHIFT) - 1);
        long phys = kernel.pageAllocator().allocatePages(order, PageAllocator.NO_LIMIT);
        try {
            long pages = 1L << order;
            long dma = physToDma(phys);
            long mask = device.coherentDmaMask();
            if (!capable(device, dma, pages << PhysicalMemory.PAGE_SHIFT) || straddles(phys, bytes)) {
                int bits = 64 - Long.numberOfLeadingZeros(mask);
                hypervisor.exchangeContiguous(guest, phys >>> PhysicalMemory.PAGE_SHIFT, order, bits);
                dma = physToDma(phys);
            }
            kernel.memory().fill(phys, pages << PhysicalMemory.PAGE_SHIFT, (byte) 0);
            return new CoherentBuffer(phys, dma, pages << PhysicalMemory.PAGE_SHIFT);
        } catch (RuntimeException e) {
            kernel.pageAllocator().freePages(phys, order);
            throw e;
        }
    }

    @Override
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        int order = 63 - Long.numberOfLeadingZeros(buffer.size() >>> PhysicalMemory.PAGE_SHIFT);
        kernel.pageAllocator().freePages(buffer.phys(), order);
    }

    @Override
    public long maxMappingSize(Device device) {
        return pool.maxMappingSize(device);
    }
}
