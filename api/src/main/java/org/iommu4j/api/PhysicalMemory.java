package org.iommu4j.api;

/**
 * The host's physical memory, byte-addressed from 0 to {@link #size()}. Memory that was never written reads
 * as zeros and costs nothing. All methods are safe to call from many threads; accesses to the same bytes from
 * different threads race as they would on hardware. An offset or length outside the Java array given is an
 * {@link IndexOutOfBoundsException}, checked before anything else.
 */
public interface PhysicalMemory {

    /** The page size: the unit of allocation, pinning and translation. */
    int PAGE_SIZE = 4096;
    /** log2 of {@link #PAGE_SIZE}. */
    int PAGE_SHIFT = 12;
    /** The bits of an address inside its page. */
    long PAGE_OFFSET_MASK = PAGE_SIZE - 1;

    /** @return the number of bytes, a multiple of the page size */
    long size();

    /**
     * Reads {@code length} bytes at {@code phys} into {@code dst[offset..]}.
     *
     * @param phys first physical address
     * @param dst destination array
     * @param offset first index in {@code dst}
     * @param length bytes to read
     * @throws IommuException {@link Errno#EFAULT} if the range is outside memory (nothing is read)
     */
    void read(long phys, byte[] dst, int offset, int length);

    /**
     * Writes {@code length} bytes from {@code src[offset..]} at {@code phys}.
     *
     * @param phys first physical address
     * @param src source array
     * @param offset first index in {@code src}
     * @param length bytes to write
     * @throws IommuException {@link Errno#EFAULT} if the range is outside memory (nothing is written)
     */
    void write(long phys, byte[] src, int offset, int length);

    /**
     * Copies {@code length} bytes from {@code srcPhys} to {@code dstPhys}, correctly even if they overlap.
     *
     * @param srcPhys source physical address
     * @param dstPhys destination physical address
     * @param length bytes to copy
     * @throws IommuException {@link Errno#EFAULT} if either range is outside memory (nothing is copied)
     */
    void copy(long srcPhys, long dstPhys, long length);

    /**
     * Sets {@code length} bytes at {@code phys} to {@code value}.
     *
     * @param phys first physical address
     * @param length bytes to set
     * @param value the byte
     * @throws IommuException {@link Errno#EFAULT} if the range is outside memory (nothing is written)
     */
    void fill(long phys, long length, byte value);

    /**
     * @param phys a physical address
     * @return the address of the page containing it
     */
    static long pageAlignDown(long phys) {
        return phys & ~PAGE_OFFSET_MASK;
    }

    /**
     * @param bytes a size or address
     * @return the smallest multiple of the page size not below it
     */
    static long pageAlignUp(long bytes) {
        return (bytes + PAGE_OFFSET_MASK) & ~PAGE_OFFSET_MASK;
    }
}
