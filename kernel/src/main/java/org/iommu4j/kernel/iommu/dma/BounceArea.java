package org.iommu4j.kernel.iommu.dma;

import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;

/**
 * The kernel's own bounce buffers for untrusted devices, standing in for the default swiotlb pool every
 * Linux v6.12 x86 kernel sets up at boot ({@code kernel/dma/swiotlb.c swiotlb_init}) and that
 * {@code drivers/iommu/dma-iommu.c iommu_dma_map_page} bounces through. iommu4j's swiotlb <em>module</em> is a
 * separate, loadable pool that the kernel cannot depend on, so iommu-dma keeps this small area: {@value #PAGES}
 * pages (256 KiB), taken from the page allocator the first time an untrusted device needs one, in whole-page
 * slots so that a device never shares a bounce page with another buffer.
 *
 * <p>As swiotlb does, a map copies the original into the slot whatever the direction, and iommu-dma zeroes the
 * rest of the slot's pages, so an untrusted device sees its buffer and zeros, never the neighbours of the
 * buffer in the original page. The area's slot search takes the area's lock (swiotlb takes an area lock); it
 * is on the untrusted-device path only; {@link #contains}, which every unmap asks, takes no lock.
 */
final class BounceArea {
    /** Pages in the area. */
    static final int PAGES = 64;

    private final PhysicalMemory memory;
    private final PageAllocator pages;
    private final long[] origPhys = new long[PAGES];
    private final long[] origSize = new long[PAGES];
    private final int[] slotPages = new int[PAGES];
    /** For every page of a slot, the slot's first page. */
    private final int[] slotOf = new int[PAGES];
    private long used; // one bit per page
    /** Set once, under the lock, when the area is taken; read without it by {@link #contains}. */
    private volatile long start = -1;
    private boolean unavailable;

    BounceArea(PhysicalMemory memory, PageAllocator pages) {
        this.memory = memory;
        this.pages = pages;
    }

    /**
     * Reserves whole pages for {@code size} bytes, copies the original into them and zeroes the rest.
     *
     * @return the bounce copy's physical address (page-aligned), or -1 when the area is full or could not be set up
     */
    synchronized long map(long phys, long size) {
        if (start < 0 && !setUp()) {
            return -1;
        }
        int n = (int) Math.min(PAGES + 1, (size + PhysicalMemory.PAGE_OFFSET_MASK) >>> PhysicalMemory.PAGE_SHIFT);
        if (n > PAGES) {
            return -1;
        }
        long run = n == 64 ? -1L : (1L << n) - 1;
        for (int i = 0; i + n <= PAGES; i++) {
            if ((used & (run << i)) == 0) {
                used |= run << i;
                origPhys[i] = phys;
                origSize[i] = size;
                slotPages[i] = n;
                for (int j = i; j < i + n; j++) {
                    slotOf[j] = i;
                }
                long tlb = start + ((long) i << PhysicalMemory.PAGE_SHIFT);
                memory.copy(phys, tlb, size);
                memory.fill(tlb + size, ((long) n << PhysicalMemory.PAGE_SHIFT) - size, (byte) 0);
                return tlb;
            }
        }
        return -1;
    }

    private boolean setUp() {
        if (unavailable) {
            return false;
        }
        try {
            start = pages.allocateContiguous(PAGES, PageAllocator.NO_LIMIT);
            return true;
        } catch (RuntimeException e) {
            unavailable = true;
            return false;
        }
    }

    /**
     * Whether a physical address lies in the area ({@code is_swiotlb_buffer}). Every unmap of every device asks,
     * so it takes no lock: {@code start} is written once and never again.
     */
    boolean contains(long phys) {
        long s = start;
        return s >= 0 && phys >= s && phys < s + ((long) PAGES << PhysicalMemory.PAGE_SHIFT);
    }

    /** Copies back where the direction needs it and frees the slot. */
    synchronized void unmap(long tlb, DmaDirection direction) {
        int i = (int) ((tlb - start) >>> PhysicalMemory.PAGE_SHIFT);
        if (direction != DmaDirection.TO_DEVICE) {
            memory.copy(tlb, origPhys[i], origSize[i]);
        }
        int n = slotPages[i];
        used &= ~((n == 64 ? -1L : (1L << n) - 1) << i);
    }

    /** Copies part of a bounced buffer one way: to the original for the CPU, or from it for the device. */
    synchronized void sync(long tlb, long size, boolean forCpu) {
        int i = slotOf[(int) ((tlb - start) >>> PhysicalMemory.PAGE_SHIFT)];
        long slot = start + ((long) i << PhysicalMemory.PAGE_SHIFT);
        long orig = origPhys[i] + (tlb - slot);
        if (forCpu) {
            memory.copy(tlb, orig, size);
        } else {
            memory.copy(orig, tlb, size);
        }
    }

    /** @return whether the area could not be taken from the page allocator, so bouncing is off */
    synchronized boolean isUnavailable() {
        return unavailable;
    }

    /** @return pages in use */
    synchronized int usedPages() {
        return Long.bitCount(used);
    }
}
