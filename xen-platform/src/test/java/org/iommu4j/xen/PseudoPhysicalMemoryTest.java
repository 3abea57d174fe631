package org.iommu4j.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Random;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PhysicalMemory;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A guest's pseudo-physical memory, whose pages are scattered over machine frames and moved by exchanges,
 * behaves as one flat memory: seeded random reads, writes, fills and (overlapping) copies against a flat
 * array. The seed is in every assertion's description.
 */
class PseudoPhysicalMemoryTest {
    private static final int SIZE = 16 << 20;

    @ParameterizedTest(name = "seed {0}")
    @ValueSource(longs = {1, 2, 3, 42, 20261201})
    void randomAccessesMatchAFlatMemoryAcrossExchanges(long seed) {
        XenPlatform p = XenPlatform.builder().machineMemory(256L << 20).dom0Memory(16L << 20)
                .layout(P2mLayout.scattered(seed)).build();
        XenDomain guest = p.createGuest("guest", SIZE, "");
        PhysicalMemory memory = guest.host().memory();
        byte[] flat = new byte[SIZE];
        Random random = new Random(seed);
        for (int op = 0; op < 400; op++) {
            int at = random.nextInt(SIZE);
            int length = Math.min(SIZE - at, random.nextInt(3 * PhysicalMemory.PAGE_SIZE));
            switch (random.nextInt(5)) {
                case 0 -> {
                    byte[] data = new byte[length];
                    random.nextBytes(data);
                    memory.write(at, data, 0, length);
                    System.arraycopy(data, 0, flat, at, length);
                }
                case 1 -> {
                    byte value = (byte) random.nextInt(3);
                    memory.fill(at, length, value);
                    java.util.Arrays.fill(flat, at, at + length, value);
                }
                case 2 -> {
                    int to = Math.max(0, Math.min(SIZE - length, at + random.nextInt(8193) - 4096));
                    memory.copy(at, to, length);
                    System.arraycopy(flat, at, flat, to, length);
                }
                case 3 -> {
                    // an exchange does not keep contents: the guest's copy is gone, as after the kernel's zap
                    long pfn = (random.nextInt(SIZE >>> PhysicalMemory.PAGE_SHIFT) >>> 3) << 3;
                    guest.hypercalls().exchange(pfn, 3, 32);
                    java.util.Arrays.fill(flat, (int) (pfn << 12), (int) ((pfn + 8) << 12), (byte) 0);
                }
                default -> {
                    byte[] got = new byte[length];
                    memory.read(at, got, 0, length);
                    assertThat(got).as("seed %d, op %d: read 0x%x+%d", seed, op, at, length)
                            .isEqualTo(java.util.Arrays.copyOfRange(flat, at, at + length));
                }
            }
        }
        byte[] all = new byte[SIZE];
        memory.read(0, all, 0, SIZE);
        assertThat(all).as("seed %d: the whole memory at the end", seed).isEqualTo(flat);
        assertThatThrownBy(() -> memory.read(SIZE - 1, new byte[2], 0, 2))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
    }
}
