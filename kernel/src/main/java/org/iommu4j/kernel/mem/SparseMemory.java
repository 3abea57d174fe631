package org.iommu4j.kernel.mem;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.Objects;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PhysicalMemory;

/**
 * Physical memory stored sparsely: 64 KiB chunks allocated on first write, found through a two-level index (a
 * table of 64 MiB sections, each section's chunk table allocated on its first write), so that a 64 GiB host
 * costs a 4 KiB section table until used. The page (4 KiB) stays the unit of allocation and translation; the
 * chunk is only the unit of storage; inside it every page has a cache line of its own on each side (see
 * {@link #GAP}), so an access is cut at page boundaries, one {@code System.arraycopy} a page. The chunk is small
 * enough that no garbage collector treats it as a large object:
 * G1 makes an object of half a region or more (regions are 1 MiB at the least) <em>humongous</em> and gives it
 * whole regions of its own, which made the 2 MiB chunks of earlier versions cost twice the bytes written (see
 * docs/performance.md).
 */
public final class SparseMemory implements HostMemory {
    /** Bytes per storage chunk. */
    public static final int CHUNK_SIZE = 64 << 10;
    private static final int CHUNK_SHIFT = 16;
    private static final long CHUNK_MASK = CHUNK_SIZE - 1;
    /**
     * Unused bytes before each page of a chunk and after its last one, a cache line: page {@code p} of a chunk
     * starts at element {@code GAP + p * PAGE_STRIDE}. An array's elements are only 8-byte aligned in the JVM's
     * heap, so without them the cache line across every page boundary would hold the end of one page and the
     * start of the next, and the first page's line the array's header too, whose length every
     * {@code System.arraycopy} reads. With only the header padded, two threads writing the starts of pages
     * 0x100000 and 0x101000 ran 3× slower each than one. In real memory a page is a whole number of cache lines and
     * shares none with its neighbours; 64 bytes a page (1.6 %) keep the model's memory like it. What the gaps
     * cannot stop is the hardware prefetchers, which stop only at a real 4 KiB page, running on from one model
     * page into the next (the bench gives each thread's buffer a chunk of its own for that).
     */
    private static final int GAP = 64;
    /** Elements from one page's first byte to the next page's in a chunk. */
    private static final int PAGE_STRIDE = (int) PAGE_SIZE + GAP;
    /** Pages per chunk. */
    private static final int CHUNK_PAGES = CHUNK_SIZE / (int) PAGE_SIZE;
    /** Elements of a chunk's array. */
    private static final int CHUNK_ELEMENTS = GAP + CHUNK_PAGES * PAGE_STRIDE;
    /** Chunks per section: 1024 of 64 KiB, 64 MiB a section. */
    private static final int SECTION_CHUNKS_SHIFT = 10;
    private static final int SECTION_SHIFT = CHUNK_SHIFT + SECTION_CHUNKS_SHIFT;
    private static final int SECTION_CHUNKS = 1 << SECTION_CHUNKS_SHIFT;
    private static final int SECTION_CHUNKS_MASK = SECTION_CHUNKS - 1;
    /** Bytes a reference takes at most (uncompressed). */
    private static final int REFERENCE_BYTES = 8;
    private static final int ARRAY_HEADER_BYTES = 16;
    private static final VarHandle SECTION = MethodHandles.arrayElementVarHandle(byte[][][].class);
    private static final VarHandle CHUNK = MethodHandles.arrayElementVarHandle(byte[][].class);

    private final long size;
    /** Section table: each element null until a chunk in its 64 MiB is written, then that section's chunks. */
    private final byte[][][] sections;
    /** Told of every CPU access when DMA-API debugging watches them; null (one volatile read) otherwise. */
    private volatile CpuAccessWatcher watcher;
    private final PhysicalMemory deviceView = new PhysicalMemory() {
        @Override
        public long size() {
            return size;
        }

        @Override
        public void read(long phys, byte[] dst, int offset, int length) {
            readRaw(phys, dst, offset, length);
        }

        @Override
        public void write(long phys, byte[] src, int offset, int length) {
            writeRaw(phys, src, offset, length);
        }

        @Override
        public void copy(long srcPhys, long dstPhys, long length) {
            copyRaw(srcPhys, dstPhys, length);
        }

        @Override
        public void fill(long phys, long length, byte value) {
            fillRaw(phys, length, value);
        }
    };

    /**
     * @param size bytes, a positive multiple of the page size
     * @throws IllegalArgumentException for any other size
     */
    public SparseMemory(long size) {
        if (size <= 0 || (size & PAGE_OFFSET_MASK) != 0 || (size - 1) >>> SECTION_SHIFT >= Integer.MAX_VALUE) {
            throw new IllegalArgumentException("memory size " + size + " is invalid: expected a positive multiple"
                    + " of 4 KiB");
        }
        this.size = size;
        this.sections = new byte[(int) (((size - 1) >>> SECTION_SHIFT) + 1)][][];
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public PhysicalMemory deviceView() {
        return deviceView;
    }

    /**
     * Shows every CPU access ({@link #read}, {@link #write}, {@link #copy}, {@link #fill}, and so a process's
     * memory, which is this memory) to a watcher. Without one the accessors read one volatile field and do
     * nothing else.
     *
     * @param w the watcher, or null for none
     */
    @Override
    public void watchCpuAccess(CpuAccessWatcher w) {
        this.watcher = w;
    }

    /** @return bytes of storage actually allocated */
    @Override
    public long residentBytes() {
        long n = 0;
        for (int i = 0; i < sections.length; i++) {
            byte[][] section = section(i);
            if (section != null) {
                for (int c = 0; c < SECTION_CHUNKS; c++) {
                    if (CHUNK.getAcquire(section, c) != null) {
                        n += CHUNK_SIZE;
                    }
                }
            }
        }
        return n;
    }

    /**
     * @return bytes the chunk index takes (the section table and every section's chunk table allocated), counting
     *     a reference as 8 bytes: an upper bound, the storage itself ({@link #residentBytes}) aside
     */
    public long indexBytes() {
        long n = ARRAY_HEADER_BYTES + (long) REFERENCE_BYTES * sections.length;
        for (int i = 0; i < sections.length; i++) {
            if (section(i) != null) {
                n += ARRAY_HEADER_BYTES + (long) REFERENCE_BYTES * SECTION_CHUNKS;
            }
        }
        return n;
    }

    @Override
    public void read(long phys, byte[] dst, int offset, int length) {
        readRaw(phys, dst, offset, length);
        CpuAccessWatcher w = watcher;
        if (w != null) {
            w.cpuRead(phys, length);
        }
    }

    private void readRaw(long phys, byte[] dst, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, dst.length);
        checkRange(phys, length);
        while (length > 0) {
            int n = Math.min(length, pageRest(phys));
            byte[] chunk = chunk(phys);
            if (chunk == null) {
                java.util.Arrays.fill(dst, offset, offset + n, (byte) 0);
            } else {
                System.arraycopy(chunk, element(phys), dst, offset, n);
            }
            phys += n;
            offset += n;
            length -= n;
        }
    }

    @Override
    public void write(long phys, byte[] src, int offset, int length) {
        writeRaw(phys, src, offset, length);
        CpuAccessWatcher w = watcher;
        if (w != null) {
            w.cpuWrite(phys, length);
        }
    }

    private void writeRaw(long phys, byte[] src, int offset, int length) {
        Objects.checkFromIndexSize(offset, length, src.length);
        checkRange(phys, length);
        while (length > 0) {
            int n = Math.min(length, pageRest(phys));
            System.arraycopy(src, offset, chunkForWrite(phys), element(phys), n);
            phys += n;
            offset += n;
            length -= n;
        }
    }

    @Override
    public void copy(long srcPhys, long dstPhys, long length) {
        copyRaw(srcPhys, dstPhys, length);
        CpuAccessWatcher w = watcher;
        if (w != null) {
            w.cpuRead(srcPhys, length);
            w.cpuWrite(dstPhys, length);
        }
    }

    private void copyRaw(long srcPhys, long dstPhys, long length) {
        checkRange(srcPhys, length);
        checkRange(dstPhys, length);
        if (length == 0 || srcPhys == dstPhys) {
            return;
        }
        if (dstPhys > srcPhys && dstPhys < srcPhys + length) {
            // overlapping with the destination above: copy from the end so no source byte is overwritten first
            long done = 0;
            while (done < length) {
                long srcEnd = srcPhys + length - done;
                long dstEnd = dstPhys + length - done;
                int n = (int) Math.min(length - done, Math.min(pageOffsetEnd(srcEnd), pageOffsetEnd(dstEnd)));
                copyPiece(srcEnd - n, dstEnd - n, n);
                done += n;
            }
            return;
        }
        long done = 0;
        while (done < length) {
            long s = srcPhys + done;
            long d = dstPhys + done;
            int n = (int) Math.min(length - done, Math.min(pageRest(s), pageRest(d)));
            copyPiece(s, d, n);
            done += n;
        }
    }

    /** Bytes from the start of the page holding {@code end - 1} up to {@code end}. */
    private static long pageOffsetEnd(long end) {
        return ((end - 1) & PAGE_OFFSET_MASK) + 1;
    }

    /** @return bytes from {@code phys} to the end of its page */
    private static int pageRest(long phys) {
        return (int) (PAGE_SIZE - (phys & PAGE_OFFSET_MASK));
    }

    /** @return the element of its chunk's array that holds byte {@code phys} (package-private for a test) */
    static int element(long phys) {
        return GAP + (int) ((phys & CHUNK_MASK) >>> PAGE_SHIFT) * PAGE_STRIDE + (int) (phys & PAGE_OFFSET_MASK);
    }

    /** Copies a piece that lies inside one page on each side. */
    private void copyPiece(long s, long d, int n) {
        byte[] src = chunk(s);
        if (src == null) {
            byte[] dst = chunk(d);
            if (dst != null) {
                int at = element(d);
                java.util.Arrays.fill(dst, at, at + n, (byte) 0);
            }
            return;
        }
        System.arraycopy(src, element(s), chunkForWrite(d), element(d), n);
    }

    @Override
    public void fill(long phys, long length, byte value) {
        fillRaw(phys, length, value);
        CpuAccessWatcher w = watcher;
        if (w != null) {
            w.cpuWrite(phys, length);
        }
    }

    private void fillRaw(long phys, long length, byte value) {
        checkRange(phys, length);
        while (length > 0) {
            int n = (int) Math.min(length, pageRest(phys));
            byte[] chunk = value == 0 ? chunk(phys) : chunkForWrite(phys);
            if (chunk != null) {
                int at = element(phys);
                java.util.Arrays.fill(chunk, at, at + n, value);
            }
            phys += n;
            length -= n;
        }
    }

    private byte[][] section(int index) {
        return (byte[][]) SECTION.getAcquire(sections, index);
    }

    /**
     * A plain read of both levels, as a racing CPU would read memory: a chunk (or section) being created by another
     * thread is seen either as null, and so read as zeros, or as the new array, whose elements are at least their
     * default zeros (JLS 17.4.4); its creation is published with a compare-and-exchange.
     *
     * @return the chunk holding {@code phys}, or null if none was written
     */
    private byte[] chunk(long phys) {
        byte[][] section = sections[(int) (phys >>> SECTION_SHIFT)];
        return section == null ? null : section[(int) (phys >>> CHUNK_SHIFT) & SECTION_CHUNKS_MASK];
    }

    /** @return the chunk holding {@code phys}, allocated (with its section's table) if it was not */
    private byte[] chunkForWrite(long phys) {
        byte[][] section = sections[(int) (phys >>> SECTION_SHIFT)];
        if (section != null) {
            byte[] chunk = section[(int) (phys >>> CHUNK_SHIFT) & SECTION_CHUNKS_MASK];
            if (chunk != null) {
                return chunk;
            }
        }
        return createChunk(phys);
    }

    private byte[] createChunk(long phys) {
        int s = (int) (phys >>> SECTION_SHIFT);
        byte[][] section = section(s);
        if (section == null) {
            byte[][] fresh = new byte[SECTION_CHUNKS][];
            section = (byte[][]) SECTION.compareAndExchange(sections, s, (byte[][]) null, fresh);
            if (section == null) {
                section = fresh;
            }
        }
        int c = (int) (phys >>> CHUNK_SHIFT) & SECTION_CHUNKS_MASK;
        byte[] chunk = (byte[]) CHUNK.getAcquire(section, c);
        if (chunk == null) {
            byte[] fresh = new byte[CHUNK_ELEMENTS];
            chunk = (byte[]) CHUNK.compareAndExchange(section, c, (byte[]) null, fresh);
            if (chunk == null) {
                chunk = fresh;
            }
        }
        return chunk;
    }

    private void checkRange(long phys, long length) {
        if (phys < 0 || length < 0 || phys + length > size || phys + length < phys) {
            throw new IommuException(Errno.EFAULT, String.format(
                    "physical range 0x%x+0x%x is outside memory of 0x%x bytes", phys, length, size));
        }
    }
}
