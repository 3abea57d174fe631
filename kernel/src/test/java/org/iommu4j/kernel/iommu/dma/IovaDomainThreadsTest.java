package org.iommu4j.kernel.iommu.dma;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.iommu4j.testsupport.Racing;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Four threads on two CPUs (two threads per CPU, so each CPU's magazines and their spin lock are shared by two
 * threads at once, as when a host has more threads than CPUs) allocate and free ranges of 1 to 8 pages from one
 * IOVA space small enough that the magazines fill, spill to the depot and run dry. No frame may ever be handed
 * to two live ranges; at the end, with every range freed and the caches flushed, the tree must be empty.
 * Seeded: a failure names its seed.
 */
class IovaDomainThreadsTest {
    private static final int THREADS = 4;
    private static final int CPUS = 2;
    private static final int STEPS = 20_000;
    private static final long LIMIT_PFN = 0x3fff;

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void threadsSharingACpusCachesNeverGetTheSameFrameAndEveryRangeComesBack() {
        Seeded.forEach("IovaDomainThreadsTest.threads", Seeded.count("iommu4j.test.iovathreads", 4), random -> {
            IovaDomain iovad = new IovaDomain(1, CPUS);
            AtomicIntegerArray owner = new AtomicIntegerArray((int) LIMIT_PFN + 1); // 0 free, else thread + 1
            long[] allocated = new long[THREADS];
            Racing.run(THREADS, random, (id, r) -> allocated[id] = run(iovad, id, r, owner));
            for (int pfn = 0; pfn <= LIMIT_PFN; pfn++) {
                assertThat(owner.get(pfn)).as("frame 0x%x", pfn).isZero();
            }
            assertThat(Arrays.stream(allocated).min().getAsLong()).isPositive();
            iovad.flushCaches();
            assertThat(iovad.allocatedRanges()).isZero();
        });
    }

    /** @return how many ranges the thread was given */
    private static long run(IovaDomain iovad, int id, Random random, AtomicIntegerArray owner) {
        int cpu = id % CPUS;
        ArrayDeque<long[]> live = new ArrayDeque<>();
        long given = 0;
        for (int step = 0; step < STEPS; step++) {
            if (live.size() < 300 && (live.isEmpty() || random.nextInt(100) < 55)) {
                long pages = 1 + random.nextInt(8);
                long pfn = iovad.allocFast(cpu, pages, LIMIT_PFN, true);
                if (pfn == 0) {
                    continue; // full for now: the others hold the rest
                }
                long span = Long.highestOneBit(pages - 1) << 1 | (pages == 1 ? 1 : 0); // the rounded-up size
                assertThat(pfn + span - 1).isLessThanOrEqualTo(LIMIT_PFN);
                for (long p = pfn; p < pfn + span; p++) {
                    if (!owner.compareAndSet((int) p, 0, id + 1)) {
                        throw new AssertionError(String.format("thread %d got frame 0x%x of [0x%x, +%d), which"
                                + " thread %d holds", id, p, pfn, span, owner.get((int) p) - 1));
                    }
                }
                live.add(new long[] {pfn, pages, span});
                given++;
            } else {
                long[] r = random.nextBoolean() ? live.pollFirst() : live.pollLast();
                for (long p = r[0]; p < r[0] + r[2]; p++) {
                    owner.set((int) p, 0);
                }
                iovad.freeFast(cpu, r[0], r[1]);
            }
        }
        for (long[] r : live) {
            for (long p = r[0]; p < r[0] + r[2]; p++) {
                owner.set((int) p, 0);
            }
            iovad.freeFast(cpu, r[0], r[1]);
        }
        return given;
    }
}
