package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.iommu4j.api.KernelServices;
import org.junit.jupiter.api.Test;
import org.mockito.Mockito;

/** The per-thread CPU cache answers what the kernel answers, for more threads than it has entries. */
class CpuCacheTest {
    private final AtomicInteger next = new AtomicInteger();
    private final AtomicInteger asked = new AtomicInteger();
    private final ThreadLocal<Integer> cpuOf = ThreadLocal.withInitial(() -> next.getAndIncrement() % 7);
    private final KernelServices kernel = Mockito.mock(KernelServices.class);

    CpuCacheTest() {
        Mockito.when(kernel.currentCpu()).thenAnswer(i -> {
            asked.incrementAndGet();
            return cpuOf.get();
        });
    }

    @Test
    void aThreadIsToldItsOwnCpuAndTheKernelIsAskedOnce() {
        CpuCache cache = new CpuCache(kernel);
        int cpu = cpuOf.get();
        for (int i = 0; i < 1000; i++) {
            assertThat(cache.currentCpu()).isEqualTo(cpu);
        }
        assertThat(asked.get()).isEqualTo(1);
    }

    @Test
    void twoHundredThreadsSharingSixtyFourEntriesEachGetTheirOwnCpu() throws Exception {
        CpuCache cache = new CpuCache(kernel);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 200; t++) {
            Thread th = new Thread(() -> {
                try {
                    int mine = cpuOf.get();
                    for (int i = 0; i < 2000; i++) {
                        assertThat(cache.currentCpu()).isEqualTo(mine);
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            });
            threads.add(th);
            th.start();
        }
        for (Thread th : threads) {
            th.join(30_000);
        }
        assertThat(failure.get()).isNull();
    }
}
