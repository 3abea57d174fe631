package org.iommu4j.kernel.mem;

import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.fault.FaultAttr;

/**
 * A binary buddy allocator over page frames, orders 0 to {@link PageAllocator#MAX_ORDER}, with one free list
 * per order kept as a {@link BitSet} of block indices, so a 64 GiB host starts with a few kilobytes of state.
 * Kernel allocations take the smallest fitting free block at the lowest address, which makes fragmentation
 * predictable in tests; user pages ({@link #allocateUserPage()}) come from the top of memory downwards, so a
 * process's virtually consecutive pages are not physically contiguous, as on a real, aged system.
 * One lock per allocator: this is not a DMA hot path.
 */
public final class BuddyAllocator implements PageAllocator {
    private final long totalPages;
    private final BitSet[] free = new BitSet[MAX_ORDER + 1];
    private final Map<Long, Integer> blocks = new HashMap<>();
    private final Map<Long, Long> runs = new HashMap<>();
    private final FaultAttr faults;
    private long freePages;

    /**
     * @param totalPages how many 4 KiB frames memory has, at least 1
     */
    public BuddyAllocator(long totalPages) {
        this(totalPages, null);
    }

    /**
     * @param totalPages how many 4 KiB frames memory has, at least 1
     * @param faults the {@code fail_page_alloc} attribute every allocation asks first, or null
     */
    public BuddyAllocator(long totalPages, FaultAttr faults) {
        this.faults = faults;
        if (totalPages < 1 || totalPages >= (1L << 31)) {
            throw new IllegalArgumentException("page count " + totalPages + " is invalid: expected 1 to 2^31-1");
        }
        this.totalPages = totalPages;
        for (int o = 0; o <= MAX_ORDER; o++) {
            free[o] = new BitSet();
        }
        release(0, totalPages);
    }

    @Override
    public synchronized long allocatePages(int order, long limit) {
        checkOrder(order);
        long pfn = injected(PhysicalMemory.PAGE_SIZE << order) ? -1 : take(order, limitPfn(limit), 1L << order);
        if (pfn < 0) {
            throw new IommuException(Errno.ENOMEM, String.format(
                    "page allocation failure: order:%d, limit 0x%x: no free block (free pages: %d)", order, limit,
                    freePages));
        }
        blocks.put(pfn, order);
        return pfn << PhysicalMemory.PAGE_SHIFT;
    }

    @Override
    public synchronized void freePages(long phys, int order) {
        long pfn = phys >>> PhysicalMemory.PAGE_SHIFT;
        Integer allocated = (phys & PhysicalMemory.PAGE_OFFSET_MASK) == 0 ? blocks.get(pfn) : null;
        if (allocated == null || allocated != order) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "freeing 0x%x order %d: not allocated as such (double free or wrong order)", phys, order));
        }
        blocks.remove(pfn);
        release(pfn, 1L << order);
    }

    /**
     * Takes one page from the highest free address.
     *
     * @return its physical address
     * @throws IommuException {@link Errno#ENOMEM} when memory is full
     */
    public synchronized long allocateUserPage() {
        int bestOrder = -1;
        long bestTop = -1;
        for (int o = 0; o <= MAX_ORDER; o++) {
            int idx = free[o].length() - 1;
            if (idx >= 0) {
                long top = ((long) (idx + 1) << o) - 1;
                if (top > bestTop) {
                    bestTop = top;
                    bestOrder = o;
                }
            }
        }
        if (bestOrder < 0 || injected(PhysicalMemory.PAGE_SIZE)) {
            throw new IommuException(Errno.ENOMEM, "out of memory: no free page for a user mapping");
        }
        int o = bestOrder;
        long pfn = (bestTop + 1) - (1L << o);
        free[o].clear((int) (pfn >>> o));
        while (o > 0) {
            o--;
            free[o].set((int) (pfn >>> o));
            pfn += 1L << o;
        }
        freePages--;
        blocks.put(pfn, 0);
        return pfn << PhysicalMemory.PAGE_SHIFT;
    }

    @Override
    public synchronized long allocateContiguous(long pages, long limit) {
        if (pages < 1) {
            throw new IommuException(Errno.EINVAL, "contiguous allocation of " + pages
                    + " pages is invalid: expected at least 1");
        }
        if (pages > totalPages) {
            // before anything else, so that no arithmetic below can overflow and nothing is taken
            throw new IommuException(Errno.ENOMEM, String.format(
                    "contiguous allocation of %d pages below 0x%x failed: memory has only %d pages (free pages: %d)",
                    pages, limit, totalPages, freePages));
        }
        long limitPfn = limitPfn(limit);
        long pfn;
        if (injected(pages << PhysicalMemory.PAGE_SHIFT)) {
            pfn = -1;
        } else if (pages <= 1L << MAX_ORDER) {
            int order = 64 - Long.numberOfLeadingZeros(pages - 1);
            pfn = take(order, limitPfn, pages);
            if (pfn >= 0) {
                release(pfn + pages, (1L << order) - pages);
            }
        } else {
            pfn = takeRunOfLargestBlocks(pages, limitPfn);
        }
        if (pfn < 0) {
            throw new IommuException(Errno.ENOMEM, String.format(
                    "contiguous allocation of %d pages below 0x%x failed: no free run that long (free pages: %d)",
                    pages, limit, freePages));
        }
        runs.put(pfn, pages);
        return pfn << PhysicalMemory.PAGE_SHIFT;
    }

    @Override
    public synchronized void freeContiguous(long phys, long pages) {
        long pfn = phys >>> PhysicalMemory.PAGE_SHIFT;
        Long allocated = (phys & PhysicalMemory.PAGE_OFFSET_MASK) == 0 ? runs.get(pfn) : null;
        if (allocated == null || allocated != pages) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "freeing 0x%x+%d pages: not a live contiguous allocation", phys, pages));
        }
        runs.remove(pfn);
        release(pfn, pages);
    }

    private boolean injected(long bytes) {
        return faults != null && faults.shouldFail(bytes);
    }

    @Override
    public long totalPages() {
        return totalPages;
    }

    @Override
    public synchronized long freePageCount() {
        return freePages;
    }

    private static void checkOrder(int order) {
        if (order < 0 || order > MAX_ORDER) {
            throw new IommuException(Errno.EINVAL, "order " + order + " is invalid: expected 0 to " + MAX_ORDER);
        }
    }

    private long limitPfn(long limit) {
        return limit == NO_LIMIT ? totalPages : Math.min(totalPages, limit >>> PhysicalMemory.PAGE_SHIFT);
    }

    /**
     * Takes the lowest block of the smallest order at or above {@code order} whose first {@code needed} pages
     * end by the limit; splitting keeps the low part, so only those pages have to fit.
     */
    private long take(int order, long limitPfn, long needed) {
        for (int o = order; o <= MAX_ORDER; o++) {
            int idx = free[o].nextSetBit(0);
            if (idx >= 0 && ((long) idx << o) + needed <= limitPfn) {
                free[o].clear(idx);
                long pfn = (long) idx << o;
                while (o > order) {
                    o--;
                    free[o].set((int) ((pfn >>> o) + 1));
                }
                freePages -= 1L << order;
                return pfn;
            }
        }
        return -1;
    }

    /** Takes the lowest run of consecutive free largest blocks covering {@code pages}; the tail goes back. */
    private long takeRunOfLargestBlocks(long pages, long limitPfn) {
        int needed = (int) ((pages + (1L << MAX_ORDER) - 1) >>> MAX_ORDER);
        BitSet top = free[MAX_ORDER];
        for (int i = top.nextSetBit(0); i >= 0; i = top.nextSetBit(top.nextClearBit(i))) {
            if (((long) (i + needed) << MAX_ORDER) > limitPfn) {
                return -1;
            }
            if (top.nextClearBit(i) - i >= needed) {
                top.clear(i, i + needed);
                long pfn = (long) i << MAX_ORDER;
                freePages -= (long) needed << MAX_ORDER;
                release(pfn + pages, ((long) needed << MAX_ORDER) - pages);
                return pfn;
            }
        }
        return -1;
    }

    /** Frees a run of pages as the largest aligned blocks it contains, merging each with its buddies. */
    private void release(long pfn, long count) {
        freePages += count;
        while (count > 0) {
            int order = Math.min(MAX_ORDER, Math.min(pfn == 0 ? MAX_ORDER : Long.numberOfTrailingZeros(pfn),
                    63 - Long.numberOfLeadingZeros(count)));
            if (order == MAX_ORDER) {
                // blocks of the largest order have no buddy to merge with: a run of them is one range of bits
                // (a 64 GiB host's boot frees 16 384 of them)
                int first = (int) (pfn >>> MAX_ORDER);
                int blocks = (int) (count >>> MAX_ORDER);
                free[MAX_ORDER].set(first, first + blocks);
                pfn += (long) blocks << MAX_ORDER;
                count -= (long) blocks << MAX_ORDER;
                continue;
            }
            insertFree(pfn, order);
            pfn += 1L << order;
            count -= 1L << order;
        }
    }

    private void insertFree(long pfn, int order) {
        while (order < MAX_ORDER) {
            long buddy = pfn ^ (1L << order);
            int buddyIndex = (int) (buddy >>> order);
            if (!free[order].get(buddyIndex)) {
                break;
            }
            free[order].clear(buddyIndex);
            pfn = Math.min(pfn, buddy);
            order++;
        }
        free[order].set((int) (pfn >>> order));
    }
}
