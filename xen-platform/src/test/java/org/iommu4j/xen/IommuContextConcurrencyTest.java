package org.iommu4j.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.XenHypercalls;
import org.junit.jupiter.api.Test;

/**
 * A context's map and unmap take no lock: the reference count and the translation of a frame change together
 * in one compare-and-set. Several threads mapping and unmapping the same frames must leave exactly the
 * references they left, and a frame one of them holds must translate all the while.
 */
class IommuContextConcurrencyTest {
    private static final int THREADS = 4;
    private static final int RW = IommuProt.READ | IommuProt.WRITE;

    private final XenPlatform platform = XenPlatform.builder().machineMemory(1L << 30).dom0Memory(64L << 20)
            .build();
    private final XenDomain guest = platform.createGuest("a", 64L << 20, "", P2mLayout.contiguous(),
            UnaryOperator.identity());
    private final XenHypercalls.IommuContext context = guest.hypercalls().createIommuContext();

    private static void run(List<java.util.concurrent.Callable<Void>> tasks) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(tasks.size());
        try {
            List<Future<Void>> done = new ArrayList<>();
            for (var t : tasks) {
                done.add(pool.submit(t));
            }
            for (Future<Void> f : done) {
                f.get(60, TimeUnit.SECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void racingMapsOfOneFrameEachAddAReferenceAndOnlyTheLastUnmapUnmapsIt() throws Exception {
        long mfn = guest.mfn(5);
        int rounds = 20_000;
        CyclicBarrier start = new CyclicBarrier(THREADS);
        List<java.util.concurrent.Callable<Void>> tasks = new ArrayList<>();
        for (int t = 0; t < THREADS; t++) {
            tasks.add(() -> {
                start.await();
                for (int i = 0; i < rounds; i++) {
                    context.map(mfn, mfn, 1, RW);
                }
                return null;
            });
        }
        run(tasks);
        for (int i = 1; i < THREADS * rounds; i++) {
            assertThat(context.unmap(mfn, 1)).as("unmap %d", i).isZero();
        }
        assertThat(context.translate(mfn << 12, IommuProt.WRITE)).isEqualTo(mfn << 12);
        assertThat(context.unmap(mfn, 1)).isEqualTo(1);
        assertThat(context.translate(mfn << 12, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
    }

    @Test
    void framesAThreadHoldsTranslateWhileOthersMapAndUnmapThemAndNothingIsLeftAfter() throws Exception {
        long seed = System.nanoTime();
        int frames = 24;
        long[] mfns = new long[frames];
        for (int i = 0; i < frames; i++) {
            mfns[i] = guest.mfn(i);
        }
        AtomicLong unmapped = new AtomicLong();
        CyclicBarrier start = new CyclicBarrier(THREADS);
        List<java.util.concurrent.Callable<Void>> tasks = new ArrayList<>();
        for (int t = 0; t < THREADS; t++) {
            Random random = new Random(seed + t);
            tasks.add(() -> {
                start.await();
                for (int i = 0; i < 20_000; i++) {
                    int first = random.nextInt(frames - 3);
                    int count = 1 + random.nextInt(3);
                    long mfn = mfns[first];
                    context.map(mfn, mfn, count, RW);
                    for (int k = 0; k < count; k++) {
                        long at = (mfn + k) << 12;
                        if (context.translate(at + 8, IommuProt.WRITE) != at + 8) {
                            throw new AssertionError("seed " + seed + ": a frame held was not mapped: 0x"
                                    + Long.toHexString(mfn + k));
                        }
                    }
                    unmapped.addAndGet(context.unmap(mfn, count));
                }
                return null;
            });
        }
        try {
            run(tasks);
        } catch (Exception | AssertionError e) {
            throw new AssertionError("seed " + seed, e);
        }
        for (long mfn : mfns) {
            assertThat(context.translate(mfn << 12, 0)).as("seed %d, mfn 0x%x", seed, mfn)
                    .isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        }
        assertThat(unmapped.get()).as("seed %d", seed).isPositive();
        context.map(mfns[0], mfns[0], 1, RW);
        assertThat(context.unmap(mfns[0], 1)).as("seed %d: the count came back to zero exactly", seed).isEqualTo(1);
    }

    @Test
    void aRacingMapOfAFrameToAnotherMachineFrameIsEexistAndUndoesOnlyItsOwnReferences() throws Exception {
        long a = guest.mfn(1);
        long b = guest.mfn(2);
        long bus = guest.mfn(3);
        context.map(bus, a, 1, RW);
        CyclicBarrier start = new CyclicBarrier(THREADS);
        List<java.util.concurrent.Callable<Void>> tasks = new ArrayList<>();
        int rounds = 5_000;
        for (int t = 0; t < THREADS; t++) {
            boolean wrong = t % 2 == 0;
            tasks.add(() -> {
                start.await();
                for (int i = 0; i < rounds; i++) {
                    if (wrong) {
                        try {
                            context.map(bus, b, 1, RW);
                            throw new AssertionError("mapped bus frame 0x" + Long.toHexString(bus) + " twice");
                        } catch (IommuException e) {
                            if (e.errno() != Errno.EEXIST) {
                                throw e;
                            }
                        }
                    } else {
                        context.map(bus, a, 1, RW);
                    }
                }
                return null;
            });
        }
        run(tasks);
        for (int i = 0; i < THREADS / 2 * rounds; i++) {
            assertThat(context.unmap(bus, 1)).isZero();
        }
        assertThat(context.translate(bus << 12, IommuProt.READ)).isEqualTo(a << 12);
        assertThat(context.unmap(bus, 1)).isEqualTo(1);
    }

    @Test
    void aFrameCountsAtMostMaxRefsAndTheMapPastThemIsEnospcAndChangesNothing() {
        long mfn = guest.mfn(7);
        for (long i = 0; i < ContextTable.MAX_REFS; i++) {
            context.map(mfn, mfn, 1, RW);
        }
        // the contiguous layout puts pfn 6 on mfn - 1: the two-frame map maps that one, then undoes it
        assertThat(guest.mfn(6)).isEqualTo(mfn - 1);
        assertThatThrownBy(() -> context.map(mfn - 1, mfn - 1, 2, RW))
                .hasMessage(String.format("xen: bfn 0x%x has %d references already: the hypervisor counts no more",
                        mfn, ContextTable.MAX_REFS))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOSPC);
        assertThat(context.translate((mfn - 1) << 12, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        for (long i = 1; i < ContextTable.MAX_REFS; i++) {
            if (context.unmap(mfn, 1) != 0) {
                throw new AssertionError("unmapped after " + i + " of " + ContextTable.MAX_REFS + " references");
            }
        }
        assertThat(context.unmap(mfn, 1)).isEqualTo(1);
    }
}
