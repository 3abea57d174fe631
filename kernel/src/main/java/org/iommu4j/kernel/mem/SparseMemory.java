package org.iommu4j.kernel.mem;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicReferenceArray;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PhysicalMemory;

/**
 * Physical memory stored sparsely: 2 MiB chunks allocated on first write, so that a 64 GiB host costs only
 * its chunk table until used. The page (4 KiB) stays the unit of allocation and translation; the chunk is
 * only the unit of storage, large enough that copies run at flat {@code System.arraycopy} speed (see the
 * performance notes in DESIGN.md).
 */
public final class SparseMemory implements HostMemory {
    /** Bytes per storage chunk. */
    public static final int CHUNK_SIZE = 2 << 20;
    private static final int CHUNK_SHIFT = 21;
    private static final long CHUNK_MASK = CHUNK_SIZE - 1;

    private final long size;
    private final AtomicReferenceArray<byte[]> chunks;
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
        if (size <= 0 || (size & PAGE_OFFSET_MASK) != 0 || (size - 1) >>> CHUNK_SHIFT >= Integer.MAX_VALUE) {
            throw new IllegalArgumentException("memory size " + size + " is invalid: expected a positive multiple"
                    + " of 4 KiB");
        }
        this.size = size;
        this.chunks = new AtomicReferenceArray<>((int) ((size + CHUNK_MASK) >>> CHUNK_SHIFT));
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
        for (int i = 0; i < chunks.length(); i++) {
            if (chunks.get(i) != null) {
                n += CHUNK_SIZE;
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
            int in = (int) (phys & CHUNK_MASK);
            int n = Math.min(length, CHUNK_SIZE - in);
            byte[] chunk = chunks.get((int) (phys >>> CHUNK_SHIFT));
            if (chunk == null) {
                java.util.Arrays.fill(dst, offset, offset + n, (byte) 0);
            } else {
                System.arraycopy(chunk, in, dst, offset, n);
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
            int in = (int) (phys & CHUNK_MASK);
            int n = Math.min(length, CHUNK_SIZE - in);
            System.arraycopy(src, offset, chunkForWrite((int) (phys >>> CHUNK_SHIFT)), in, n);
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
                int n = (int) Math.min(length - done, Math.min(chunkOffsetEnd(srcEnd), chunkOffsetEnd(dstEnd)));
                copyPiece(srcEnd - n, dstEnd - n, n);
                done += n;
            }
            return;
        }
        long done = 0;
        while (done < length) {
            long s = srcPhys + done;
            long d = dstPhys + done;
            int n = (int) Math.min(length - done,
                    Math.min(CHUNK_SIZE - (s & CHUNK_MASK), CHUNK_SIZE - (d & CHUNK_MASK)));
            copyPiece(s, d, n);
            done += n;
        }
    }

    /** Bytes from the start of the chunk holding {@code end - 1} up to {@code end}. */
    private static long chunkOffsetEnd(long end) {
        return ((end - 1) & CHUNK_MASK) + 1;
    }

    /** Copies a piece that lies inside one chunk on each side. */
    private void copyPiece(long s, long d, int n) {
        byte[] src = chunks.get((int) (s >>> CHUNK_SHIFT));
        int dIndex = (int) (d >>> CHUNK_SHIFT);
        if (src == null) {
            byte[] dst = chunks.get(dIndex);
            if (dst != null) {
                java.util.Arrays.fill(dst, (int) (d & CHUNK_MASK), (int) (d & CHUNK_MASK) + n, (byte) 0);
            }
            return;
        }
        System.arraycopy(src, (int) (s & CHUNK_MASK), chunkForWrite(dIndex), (int) (d & CHUNK_MASK), n);
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
            int in = (int) (phys & CHUNK_MASK);
            int n = (int) Math.min(length, CHUNK_SIZE - in);
            int index = (int) (phys >>> CHUNK_SHIFT);
            byte[] chunk = value == 0 ? chunks.get(index) : chunkForWrite(index);
            if (chunk != null) {
                java.util.Arrays.fill(chunk, in, in + n, value);
            }
            phys += n;
            length -= n;
        }
    }

    private byte[] chunkForWrite(int index) {
        byte[] chunk = chunks.get(index);
        if (chunk == null) {
            byte[] fresh = new byte[CHUNK_SIZE];
            chunk = chunks.compareAndExchange(index, null, fresh);
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
