package org.iommu4j.api;

/**
 * A range of a user process's virtual memory, pinned for DMA: the physical frame behind each page, which
 * stays put until the kernel unpins it. The kernel builds one for every VFIO map request and hands it to the
 * backend; the backend must not keep it past {@link VfioIommu#unmap}.
 */
public final class PinnedPages {
    private final long vaddr;
    private final long length;
    private final long[] frames;

    /**
     * @param vaddr the first virtual address (any alignment)
     * @param length bytes from there, positive
     * @param frames the page-aligned physical address of every page the range touches, in order; not copied,
     *     and not to be changed afterwards
     * @throws IllegalArgumentException if the frame count does not match the range or a frame is not aligned
     */
    public PinnedPages(long vaddr, long length, long[] frames) {
        long first = PhysicalMemory.pageAlignDown(vaddr);
        long pages = (PhysicalMemory.pageAlignUp(vaddr + length) - first) >>> PhysicalMemory.PAGE_SHIFT;
        if (length <= 0 || frames.length != pages) {
            throw new IllegalArgumentException("pinned range 0x" + Long.toHexString(vaddr) + "+0x"
                    + Long.toHexString(length) + " spans " + pages + " pages but " + frames.length
                    + " frames were given");
        }
        for (long frame : frames) {
            if ((frame & PhysicalMemory.PAGE_OFFSET_MASK) != 0) {
                throw new IllegalArgumentException("frame 0x" + Long.toHexString(frame) + " is not page-aligned");
            }
        }
        this.vaddr = vaddr;
        this.length = length;
        this.frames = frames;
    }

    /** @return the first virtual address */
    public long vaddr() {
        return vaddr;
    }

    /** @return bytes in the range */
    public long length() {
        return length;
    }

    /** @return the offset of {@link #vaddr()} inside its page */
    public int pageOffset() {
        return (int) (vaddr & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /** @return how many pages the range touches */
    public int pageCount() {
        return frames.length;
    }

    /**
     * @param index 0 to {@link #pageCount()} - 1
     * @return the page-aligned physical address of that page
     */
    public long frame(int index) {
        return frames[index];
    }

    /**
     * @param offset bytes from {@link #vaddr()}, 0 to {@link #length()} - 1
     * @return the physical address of that byte
     */
    public long physAt(long offset) {
        if (offset < 0 || offset >= length) {
            throw new IndexOutOfBoundsException("offset " + offset + " outside pinned range of " + length + " bytes");
        }
        long byteInFirstPage = pageOffset() + offset;
        return frames[(int) (byteInFirstPage >>> PhysicalMemory.PAGE_SHIFT)]
                + (byteInFirstPage & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /**
     * The first page that does not follow its predecessor in physical memory.
     *
     * @return its index (1 or more), or -1 when the whole range is physically contiguous
     */
    public int firstDiscontinuity() {
        for (int i = 1; i < frames.length; i++) {
            if (frames[i] != frames[i - 1] + PhysicalMemory.PAGE_SIZE) {
                return i;
            }
        }
        return -1;
    }

    /** @return whether the range is one run of physical memory */
    public boolean isContiguous() {
        return firstDiscontinuity() < 0;
    }
}
