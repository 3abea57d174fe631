package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Lock-free lookups against a writer that keeps mapping and unmapping the pages around a page that stays
 * mapped, so that the tables next to it are allocated and freed again and again.
 */
class IoPageTableConcurrencyTest {
    private static final int ITERATIONS = 200_000;
    private static final long BOUNDARY = 1L << 30;
    /** The last page below a 1 GiB boundary: the leaf and the level-4 table after it come and go. */
    private static final long STABLE = BOUNDARY - 0x1000;
    private static final long STABLE_PHYS = 0x7654_3000L;
    private static final long BELOW = BOUNDARY - 0x10000;
    private static final long BELOW_PHYS = 0x100_0000L;
    private static final long ABOVE_PHYS = 0x200_0000L;

    @Test
    @Timeout(value = 30, unit = TimeUnit.SECONDS)
    void aPageThatStaysMappedAlwaysTranslatesWhileItsNeighboursComeAndGo() throws InterruptedException {
        IoPageTable table = new IoPageTable();
        table.map(STABLE, STABLE_PHYS, 0x1000, IommuProt.READ);
        CountDownLatch started = new CountDownLatch(1);
        AtomicReference<String> failure = new AtomicReference<>();
        long[] lookups = new long[1];
        Thread writer = new Thread(() -> {
            try {
                started.await();
                for (int i = 0; i < ITERATIONS; i++) {
                    table.map(BELOW, BELOW_PHYS, STABLE - BELOW, IommuProt.READ | IommuProt.WRITE);
                    table.map(BOUNDARY, ABOVE_PHYS, 0x10000, IommuProt.READ);
                    if (table.unmap(BELOW, STABLE - BELOW) != STABLE - BELOW
                            || table.unmap(BOUNDARY, 0x10000) != 0x10000) {
                        failure.compareAndSet(null, "unmap returned a wrong count at iteration " + i);
                        return;
                    }
                }
            } catch (RuntimeException | InterruptedException e) {
                failure.compareAndSet(null, "writer failed: " + e);
            }
        }, "pgtable-writer");
        Thread reader = new Thread(() -> {
            started.countDown();
            long n = 0;
            while (writer.isAlive() && failure.get() == null) {
                long offset = n * 8 & PhysicalMemory.PAGE_OFFSET_MASK;
                long got = table.lookup(STABLE + offset, IommuProt.READ);
                if (got != STABLE_PHYS + offset) {
                    failure.compareAndSet(null, String.format("stable page translated to 0x%x at lookup %d", got, n));
                }
                check(failure, table.lookup(STABLE - 0x1000 + offset, IommuProt.WRITE),
                        BELOW_PHYS + (STABLE - 0x1000 - BELOW) + offset);
                check(failure, table.lookup(BOUNDARY + offset, IommuProt.READ), ABOVE_PHYS + offset);
                n++;
            }
            lookups[0] = n;
        }, "pgtable-reader");
        writer.start();
        reader.start();
        writer.join();
        reader.join();
        assertThat(failure.get()).isNull();
        assertThat(lookups[0]).isPositive();
        assertThat(table.mappedPages()).isEqualTo(1);
        assertThat(table.lookup(STABLE, IommuProt.READ)).isEqualTo(STABLE_PHYS);
    }

    /** A neighbour is either unmapped or translates to the right frame, never anything else. */
    private static void check(AtomicReference<String> failure, long got, long expected) {
        if (got != IommuDomain.FAULT_NOT_MAPPED && got != expected) {
            failure.compareAndSet(null, String.format("a neighbour translated to 0x%x, expected 0x%x", got, expected));
        }
    }
}
