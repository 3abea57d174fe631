package org.iommu4j.api;

import java.util.concurrent.ConcurrentHashMap;

/**
 * A page table for an {@link IommuDomain}, the kernel's io-pgtable library in miniature: iova pages to frames
 * with protection bits, 4 KiB granules. A backend whose hardware translates can keep one per domain and answer
 * {@link IommuDomain#map}, {@link IommuDomain#unmap} and {@link IommuDomain#translate} from it.
 *
 * <p>{@link #lookup} takes no lock and allocates nothing; {@link #map} and {@link #unmap} serialise on the table.
 */
public final class IoPageTable {
    private final ConcurrentHashMap<Long, long[]> entries = new ConcurrentHashMap<>();

    /**
     * Maps {@code size} bytes from {@code iova} to consecutive frames from {@code phys}.
     *
     * @param iova page-aligned bus address
     * @param phys page-aligned address the entries point at
     * @param size a positive multiple of the page size
     * @param prot {@link IommuProt} bits
     * @throws IommuException {@link Errno#EEXIST} naming the first page already mapped; nothing is changed
     */
    public synchronized void map(long iova, long phys, long size, int prot) {
        long first = iova >>> PhysicalMemory.PAGE_SHIFT;
        long pages = size >>> PhysicalMemory.PAGE_SHIFT;
        for (long i = 0; i < pages; i++) {
            if (entries.containsKey(first + i)) {
                throw new IommuException(Errno.EEXIST, String.format("iova 0x%x is already mapped",
                        (first + i) << PhysicalMemory.PAGE_SHIFT));
            }
        }
        for (long i = 0; i < pages; i++) {
            entries.put(first + i, new long[] {phys + (i << PhysicalMemory.PAGE_SHIFT), prot});
        }
    }

    /**
     * Removes whatever is mapped in the range.
     *
     * @param iova page-aligned bus address
     * @param size a positive multiple of the page size
     * @return bytes that were mapped
     */
    public synchronized long unmap(long iova, long size) {
        long n = 0;
        for (long off = 0; off < size; off += PhysicalMemory.PAGE_SIZE) {
            if (entries.remove((iova + off) >>> PhysicalMemory.PAGE_SHIFT) != null) {
                n += PhysicalMemory.PAGE_SIZE;
            }
        }
        return n;
    }

    /**
     * Looks one address up for an access.
     *
     * @param iova a bus address
     * @param access {@link IommuProt#READ}, {@link IommuProt#WRITE}, or 0 to ask only where it points
     * @return the address the entry points at plus the offset in the page, or
     *     {@link IommuDomain#FAULT_NOT_MAPPED} or {@link IommuDomain#FAULT_PERMISSION}
     */
    public long lookup(long iova, int access) {
        long[] e = entries.get(iova >>> PhysicalMemory.PAGE_SHIFT);
        if (e == null) {
            return IommuDomain.FAULT_NOT_MAPPED;
        }
        if ((access & ~(int) e[1] & (IommuProt.READ | IommuProt.WRITE)) != 0) {
            return IommuDomain.FAULT_PERMISSION;
        }
        return e[0] + (iova & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /** @return how many pages are mapped */
    public int mappedPages() {
        return entries.size();
    }
}
