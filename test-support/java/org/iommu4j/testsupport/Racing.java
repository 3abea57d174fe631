package org.iommu4j.testsupport;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Threads that race: each gets its own {@link Random} (seeded in thread order from the case's random, so a
 * {@link Seeded} case repeats), all start at once from a barrier, and the first failure of any of them fails the
 * test once all have ended.
 */
public final class Racing {
    private Racing() {
    }

    /** One racing thread's work. */
    @FunctionalInterface
    public interface Body {
        /**
         * @param id the thread's index, from 0
         * @param random its own random
         * @throws Exception a failure
         */
        void run(int id, Random random) throws Exception;
    }

    /**
     * @param threads how many threads race
     * @param random the case's random; one long is drawn from it per thread
     * @param body what each thread does
     * @throws InterruptedException if the test thread is interrupted while waiting
     */
    public static void run(int threads, Random random, Body body) throws InterruptedException {
        AtomicReference<Throwable> failure = new AtomicReference<>();
        CyclicBarrier start = new CyclicBarrier(threads);
        List<Thread> all = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int id = t;
            long seed = random.nextLong();
            all.add(new Thread(() -> {
                try {
                    start.await();
                    body.run(id, new Random(seed));
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            }));
        }
        all.forEach(Thread::start);
        for (Thread th : all) {
            th.join();
        }
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
    }
}
