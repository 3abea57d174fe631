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
