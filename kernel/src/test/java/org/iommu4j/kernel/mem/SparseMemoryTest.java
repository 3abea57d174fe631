package org.iommu4j.kernel.mem;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

class SparseMemoryTest {
    private static final int C = SparseMemory.CHUNK_SIZE;

    @Test
    void unwrittenMemoryReadsAsZerosAndCostsNothing() {
        SparseMemory m = new SparseMemory(64L << 30);
        byte[] buf = new byte[100];
        buf[0] = 9;
        m.read(40L << 30, buf, 0, buf.length);
        m.fill(10L << 30, 1 << 20, (byte) 0);
        m.copy(1L << 30, 2L << 30, 1 << 20);
        assertThat(buf).containsOnly(0);
        assertThat(m.residentBytes()).isZero();
    }

    @Test
    void writesAcrossAChunkBoundaryReadBack() {
        SparseMemory m = new SparseMemory(16L << 20);
        byte[] data = pattern(5000, 3);
        m.write(C - 2000, data, 0, data.length);
        byte[] back = new byte[data.length];
        m.read(C - 2000, back, 0, back.length);
        assertThat(back).isEqualTo(data);
        assertThat(m.residentBytes()).isEqualTo(2L * C);
    }

    @Test
    void overlappingCopiesAcrossChunksBehaveLikeMemmove() {
        SparseMemory m = new SparseMemory(16L << 20);
        byte[] reference = new byte[16 << 20];
        byte[] data = pattern(3 * C / 2, 7);
        m.write(C / 2, data, 0, data.length);
        System.arraycopy(data, 0, reference, C / 2, data.length);

        m.copy(C / 2, C / 2 + 1000, data.length);           // forward overlap: destination above
        System.arraycopy(reference, C / 2, reference, C / 2 + 1000, data.length);
        m.copy(C / 2 + 1000, C / 2 - 3000, data.length);    // backward overlap: destination below
        System.arraycopy(reference, C / 2 + 1000, reference, C / 2 - 3000, data.length);

        byte[] all = new byte[reference.length];
        m.read(0, all, 0, all.length);
        assertThat(all).isEqualTo(reference);
    }

    @Test
    void outOfRangeAccessesAreEfaultAndTouchNothing() {
        SparseMemory m = new SparseMemory(1L << 30);
        byte[] data = new byte[0x2000];
        assertThatThrownBy(() -> m.write((1L << 30) - 0x1000, data, 0, data.length))
                .isInstanceOf(IommuException.class)
                .hasMessage("physical range 0x3ffff000+0x2000 is outside memory of 0x40000000 bytes")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThatThrownBy(() -> m.read(-1, data, 0, 1))
                .hasMessage("physical range 0xffffffffffffffff+0x1 is outside memory of 0x40000000 bytes");
        assertThatThrownBy(() -> m.copy(0, (1L << 30) - 1, 2))
                .hasMessage("physical range 0x3fffffff+0x2 is outside memory of 0x40000000 bytes");
        assertThatThrownBy(() -> m.fill(1L << 30, 1, (byte) 1))
                .hasMessage("physical range 0x40000000+0x1 is outside memory of 0x40000000 bytes");
        assertThat(m.residentBytes()).isZero();
        assertThatThrownBy(() -> new SparseMemory(1000))
                .hasMessage("memory size 1000 is invalid: expected a positive multiple of 4 KiB");
    }

    @Test
    void concurrentWritersToDistinctChunksNeverLoseAChunk() throws Exception {
        SparseMemory m = new SparseMemory(64L << 20);
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int id = t;
            threads.add(new Thread(() -> {
                for (int chunk = id; chunk < 32; chunk += 4) {
                    m.write((long) chunk * C + 17, new byte[] {(byte) chunk}, 0, 1);
                }
            }));
        }
        threads.forEach(Thread::start);
        for (Thread t : threads) {
            t.join();
        }
        for (int chunk = 0; chunk < 32; chunk++) {
            byte[] b = new byte[1];
            m.read((long) chunk * C + 17, b, 0, 1);
            assertThat(b[0]).isEqualTo((byte) chunk);
        }
    }

    /** Every chunk boundary of 80 MiB, including the 64 MiB section boundary, crossed by every accessor. */
    @Test
    void everyChunkBoundaryIsCrossedByWritesReadsCopiesAndFillsLikeAFlatArray() {
        int size = 80 << 20;
        SparseMemory m = new SparseMemory(size);
        byte[] flat = new byte[size];
        int boundaries = size / C - 1;
        for (int k = 1; k <= boundaries; k++) {
            int at = k * C - 1 - (k * 37 % 4095);     // 1 to 4095 bytes before the boundary: every split of a page
            byte[] d = pattern(4096, k);
            m.write(at, d, 0, d.length);
            System.arraycopy(d, 0, flat, at, d.length);
        }
        for (int k = 1; k * C - 1000 + (256 << 10) <= size; k += 3) {
            int from = k * C - 1000;                   // 256 KiB: four boundaries, five pieces
            int to = Math.min(k * C + 5 * C + 333, size - (256 << 10));
            m.copy(from, to, 256 << 10);
            System.arraycopy(flat, from, flat, to, 256 << 10);
            int back = k * C - 3 * C - 77;              // 64 KiB across a boundary to a lower address, across another
            if (back >= 0) {
                m.copy(k * C - 4000, back, C);
                System.arraycopy(flat, k * C - 4000, flat, back, C);
            }
        }
        for (int k = 2; k <= boundaries; k += 5) {
            byte value = (byte) (k % 3 == 0 ? 0 : k);  // zero fills too: they must clear resident chunks
            m.fill(k * C - 5, 10, value);
            java.util.Arrays.fill(flat, k * C - 5, k * C + 5, value);
        }
        byte[] piece = new byte[8192];
        for (int k = 1; k <= boundaries; k++) {
            m.read(k * C - 4096, piece, 0, piece.length);
            assertThat(java.util.Arrays.mismatch(piece, 0, piece.length, flat, k * C - 4096, k * C + 4096))
                    .as("first byte that differs around boundary %d (0x%x)", k, k * C).isEqualTo(-1);
        }
        byte[] all = new byte[size];
        m.read(0, all, 0, size);
        assertThat(java.util.Arrays.mismatch(all, flat)).as("first byte that differs").isEqualTo(-1);
        assertThat(m.residentBytes()).isEqualTo(size);
    }

    /**
     * A page's bytes in storage are a cache line away from its neighbours' and from its chunk's array header: two
     * CPUs working on neighbouring pages share no line, as in real memory (an array is only 8-byte aligned, so
     * without the gaps the line across every page boundary held the end of one page and the start of the next).
     */
    @Test
    void neighbouringPagesShareNoCacheLineInStorage() {
        int pages = C / 4096;
        assertThat(SparseMemory.element(0)).as("first byte of a chunk, after a 16-byte array header")
                .isGreaterThanOrEqualTo(64);
        for (int p = 1; p < pages; p++) {
            int lastOfPrevious = SparseMemory.element(p * 4096L - 1);
            int first = SparseMemory.element(p * 4096L);
            assertThat(first - lastOfPrevious).as("elements from the end of page %d to the start of page %d", p - 1, p)
                    .isGreaterThan(64);
            assertThat(SparseMemory.element(p * 4096L + 4095) - first).as("page %d is contiguous", p).isEqualTo(4095);
        }
        assertThat(SparseMemory.element(C + 4096L) - SparseMemory.element(C)).as("the next chunk starts over")
                .isEqualTo(SparseMemory.element(4096) - SparseMemory.element(0));
    }

    @Test
    void theIndexOfAnIdleMemoryIsItsSectionTableAndGrowsBySectionsWritten() {
        SparseMemory m = new SparseMemory(64L << 30);
        // 1024 sections of 64 MiB, 8 bytes a reference at most
        assertThat(m.indexBytes()).isEqualTo(16 + 8 * 1024);
        m.write(3L << 30, new byte[] {1}, 0, 1);
        m.write((3L << 30) + C, new byte[] {2}, 0, 1);            // the same section, another chunk
        m.write((64L << 30) - 1, new byte[] {3}, 0, 1);           // the last section
        assertThat(m.indexBytes()).isEqualTo(16 + 8 * 1024 + 2 * (16 + 8 * 1024));
        assertThat(m.residentBytes()).isEqualTo(3L * C);
        assertThat(new SparseMemory(1L << 40).indexBytes()).isEqualTo(16 + 8 * 16384);
        // below half the smallest G1 region (1 MiB) with its array header, so never a humongous object
        assertThat(C + 16).isLessThan(512 << 10);
    }

    @Test
    void aSixtyFourGibibyteMemoryAllocatesLessThanSixteenKibibytesWhenMade() {
        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().getId();
        long allocated = Long.MAX_VALUE;
        for (int round = 0; round < 5; round++) {      // the least of five: a JIT compilation may allocate in one
            long before = threads.getThreadAllocatedBytes(tid);
            SparseMemory m = new SparseMemory(64L << 30);
            allocated = Math.min(allocated, threads.getThreadAllocatedBytes(tid) - before);
            assertThat(m.size()).isEqualTo(64L << 30);
        }
        assertThat(allocated).as("bytes allocated making a 64 GiB memory").isLessThan(16 << 10);
    }

    @Test
    void readsWritesAndCopiesOfWrittenMemoryAllocateNothing() {
        SparseMemory m = new SparseMemory(256L << 20);
        byte[] buf = pattern(256 << 10, 5);
        long a = 3L * C - 2048;                         // both sides cross chunk boundaries
        long b = (64L << 20) - 3000;                    // and a section boundary
        m.write(a, buf, 0, buf.length);
        m.write(b, buf, 0, buf.length);
        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().getId();
        long allocated = Long.MAX_VALUE;
        for (int round = 0; round < 5 && allocated > 0; round++) {
            long before = threads.getThreadAllocatedBytes(tid);
            for (int i = 0; i < 2000; i++) {
                m.write(a + i, buf, 0, 4096);
                m.read(b + i, buf, 0, 4096);
                m.copy(a, b, 64 << 10);
                m.deviceView().copy(b, a + 1, 64 << 10);
            }
            allocated = Math.min(allocated, threads.getThreadAllocatedBytes(tid) - before);
        }
        assertThat(allocated).as("bytes allocated by 2000 rounds of accesses").isZero();
    }

    @Test
    void threadsRacingToCreateTheSameChunksAndSectionsLoseNoWrite() {
        Seeded.forEach("SparseMemoryTest.race", 5, r -> threadsRacingToCreateTheSameChunksAndSectionsLoseNoWrite(
                r.nextLong()));
    }

    private static void threadsRacingToCreateTheSameChunksAndSectionsLoseNoWrite(long seed) throws Exception {
        int threadCount = 4;
        int chunks = 3 * 1024 + 7;                      // a little over three sections
        SparseMemory m = new SparseMemory((long) chunks * C);
        List<Thread> threads = new ArrayList<>();
        java.util.concurrent.CyclicBarrier start = new java.util.concurrent.CyclicBarrier(threadCount);
        for (int t = 0; t < threadCount; t++) {
            int id = t;
            Random order = new Random(seed + t);
            threads.add(new Thread(() -> {
                int[] perm = new int[chunks];
                for (int i = 0; i < chunks; i++) {
                    perm[i] = i;
                }
                for (int i = chunks - 1; i > 0; i--) {  // each thread visits every chunk in its own order
                    int j = order.nextInt(i + 1);
                    int x = perm[i];
                    perm[i] = perm[j];
                    perm[j] = x;
                }
                try {
                    start.await();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
                for (int chunk : perm) {
                    m.write((long) chunk * C + 100 * id, new byte[] {(byte) (id + 1)}, 0, 1);
                }
            }));
        }
        threads.forEach(Thread::start);
        for (Thread t : threads) {
            t.join();
        }
        byte[] b = new byte[1];
        for (int chunk = 0; chunk < chunks; chunk++) {
            for (int id = 0; id < threadCount; id++) {
                m.read((long) chunk * C + 100 * id, b, 0, 1);
                assertThat(b[0]).as("chunk %d, thread %d", chunk, id).isEqualTo((byte) (id + 1));
            }
        }
        assertThat(m.residentBytes()).isEqualTo((long) chunks * C);
        assertThat(m.indexBytes()).isEqualTo(16 + 8 * 4 + 4 * (16 + 8 * 1024));
    }

    record Op(int kind, int a, int b, int length, byte value) {
    }

    static List<Op> ops(Random r) {
        int size = 8 << 20;
        int n = r.nextInt(13);
        List<Op> ops = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int a = r.nextInt(size);
            int b = r.nextInt(size);
            int l = r.nextInt(3 * C / 2 + 1);
            ops.add(new Op(r.nextInt(3), a, b, Math.min(l, size - Math.max(a, b)), (byte) r.nextInt()));
        }
        return ops;
    }

    @Test
    void agreesWithAFlatArrayByteForByte() {
        Seeded.forEach("SparseMemoryTest.flatArray", 60, r -> agreesWithAFlatArrayByteForByte(ops(r)));
    }

    private static void agreesWithAFlatArrayByteForByte(List<Op> ops) {
        int size = 8 << 20;
        SparseMemory m = new SparseMemory(size);
        byte[] flat = new byte[size];
        for (Op op : ops) {
            switch (op.kind()) {
                case 0 -> {
                    byte[] d = pattern(op.length(), op.value());
                    m.write(op.a(), d, 0, d.length);
                    System.arraycopy(d, 0, flat, op.a(), d.length);
                }
                case 1 -> {
                    m.copy(op.a(), op.b(), op.length());
                    System.arraycopy(flat, op.a(), flat, op.b(), op.length());
                }
                default -> {
                    m.fill(op.a(), op.length(), op.value());
                    java.util.Arrays.fill(flat, op.a(), op.a() + op.length(), op.value());
                }
            }
        }
        byte[] all = new byte[size];
        m.read(0, all, 0, size);
        assertThat(all).isEqualTo(flat);
    }

    private static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (i * 31 + seed);
        }
        return b;
    }
}
