package org.iommu4j.api;

/**
 * The host's page-frame allocator: physically contiguous runs of pages, the kernel's {@code alloc_pages} and
 * (for runs larger than the biggest buddy block) {@code memblock}/CMA-style contiguous allocation. Freed memory
 * keeps its contents; callers that hand memory to a device clear it first if that matters.
 */
public interface PageAllocator {

    /** The largest order {@link #allocatePages} serves: 2^10 pages = 4 MiB, the kernel's MAX_PAGE_ORDER. */
    int MAX_ORDER = 10;

    /** A limit meaning "anywhere in memory". */
    long NO_LIMIT = Long.MAX_VALUE;

    /**
     * Allocates 2^{@code order} physically contiguous pages, aligned to their size, below {@code limit}: from
     * the smallest free block that fits, lowest address first within its order, as a buddy allocator does (so a
     * test can predict and provoke fragmentation).
     *
     * @param order 0 to {@link #MAX_ORDER}
     * @param limit the allocation must end at or below this address ({@code 1L << 32} for a 32-bit device), or
     *     {@link #NO_LIMIT}
     * @return the physical address of the first page
     * @throws IommuException {@link Errno#ENOMEM} when no free block of that order lies below the limit;
     *     {@link Errno#EINVAL} for an order outside 0 to {@link #MAX_ORDER}
     */
    long allocatePages(int order, long limit);

    /**
     * Frees what {@link #allocatePages} returned.
     *
     * @param phys the address it returned
     * @param order the order it was asked for
     * @throws IommuException {@link Errno#EINVAL} if that block is not allocated as such (a double free)
     */
    void freePages(long phys, int order);

    /**
     * Allocates {@code pages} physically contiguous pages, any number, below {@code limit}: for boot-time
     * pools such as the swiotlb bounce buffer.
     *
     * @param pages how many pages, at least 1
     * @param limit as for {@link #allocatePages}
     * @return the physical address of the first page
     * @throws IommuException {@link Errno#ENOMEM} when no run that long is free below the limit
     */
    long allocateContiguous(long pages, long limit);

    /**
     * Frees what {@link #allocateContiguous} returned.
     *
     * @param phys the address it returned
     * @param pages the count it was asked for
     * @throws IommuException {@link Errno#EINVAL} unless exactly that run is a live contiguous allocation
     */
    void freeContiguous(long phys, long pages);

    /** @return how many pages memory has */
    long totalPages();

    /** @return how many pages are free now */
    long freePageCount();
}
