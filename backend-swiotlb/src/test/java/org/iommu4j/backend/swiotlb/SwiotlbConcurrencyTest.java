package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

class SwiotlbConcurrencyTest {

    /**
     * Two threads map and unmap a million times between them. A slot handed out twice is caught whichever way
     * the threads interleave: each thread claims the slots of its mapping in a shared owner table right after
     * the map (a claim on a slot the other thread holds fails), stamps a value unique to the thread and the
     * iteration into every slot of its bounce buffer through the device, and just before the unmap re-reads
     * its stamps and gives its claims back (a stamp overwritten, or a claim taken, fails).
     */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0} area(s)")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"1", "2"})
    void twoThreadsMillionMapUnmapPairsNoSlotTwiceNoneLost(String nareas) throws Exception {
        Host host = Host.builder().cpus(2).pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        SwiotlbPool pool = new SwiotlbFixture(host, Map.of("nslabs", "1024", "nareas", nareas)).pool();
        assertThat(pool.nareas()).isEqualTo(Integer.parseInt(nareas));
        PciDevice dev = host.pci("0000:06:0d.0");
        int pairsPerThread = 500_000;
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicLong clashes = new AtomicLong();
        AtomicLong pairs = new AtomicLong();
        AtomicIntegerArray owner = new AtomicIntegerArray(pool.nslabs());
        List<String> overlaps = java.util.Collections.synchronizedList(new ArrayList<>());
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 2; t++) {
            int me = t + 1;
            long orig = 0x1000_0000L * (t + 1);
            byte tag = (byte) (0x40 + t);
            host.memory().fill(orig, 4096, tag);
            threads.add(new Thread(() -> {
                byte[] seen = new byte[64];
                byte[] stamp = new byte[8];
                byte[] back = new byte[8];
                ByteBuffer stampBuf = ByteBuffer.wrap(stamp);
                ByteBuffer backBuf = ByteBuffer.wrap(back);
                try {
                    for (int i = 0; i < pairsPerThread; i++) {
                        int size = 64 + (i & 3) * 1024;
                        long tlb = pool.map(dev, orig, size, size, 0, DmaDirection.TO_DEVICE);
                        int first = (int) ((tlb - pool.start()) >>> SwiotlbPool.IO_TLB_SHIFT);
                        int last = (int) ((tlb + size - 1 - pool.start()) >>> SwiotlbPool.IO_TLB_SHIFT);
                        for (int s = first; s <= last; s++) {
                            int held = owner.compareAndExchange(s, 0, me);
                            if (held != 0 && overlaps.size() < 10) {
                                overlaps.add(String.format("thread %d pair %d got slot %d (0x%x), which thread %d"
                                        + " still holds", me, i, s, tlb, held));
                            }
                        }
                        dev.dmaRead(tlb, seen, 0, 64);
                        for (byte b : seen) {
                            if (b != tag) {
                                clashes.incrementAndGet();
                                break;
                            }
                        }
                        long value = ((long) me << 32) | i;
                        stampBuf.putLong(0, value);
                        for (int s = first; s <= last; s++) {
                            dev.dmaWrite(Math.max(tlb, pool.start() + ((long) s << SwiotlbPool.IO_TLB_SHIFT)),
                                    stamp, 0, 8);
                        }
                        dev.dmaWrite(tlb + size - 8, stamp, 0, 8);
                        // just before the unmap: the stamps and the claims must still be ours
                        for (int s = first; s <= last + 1; s++) {
                            long at = s > last ? tlb + size - 8
                                    : Math.max(tlb, pool.start() + ((long) s << SwiotlbPool.IO_TLB_SHIFT));
                            dev.dmaRead(at, back, 0, 8);
                            long found = backBuf.getLong(0);
                            if (found != value && overlaps.size() < 10) {
                                overlaps.add(String.format("thread %d pair %d: its stamp 0x%x at 0x%x became 0x%x",
                                        me, i, value, at, found));
                            }
                        }
                        for (int s = first; s <= last; s++) {
                            int held = owner.compareAndExchange(s, me, 0);
                            if (held != me && overlaps.size() < 10) {
                                overlaps.add(String.format("thread %d pair %d: slot %d is claimed by %d at unmap",
                                        me, i, s, held));
                            }
                        }
                        pool.unmap(dev, tlb, size, DmaDirection.TO_DEVICE);
                        pairs.incrementAndGet();
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            }));
        }
        threads.forEach(Thread::start);
        for (Thread t : threads) {
            t.join();
        }
        assertThat(overlaps).isEmpty();
        assertThat(failure.get()).isNull();
        assertThat(pairs.get()).isEqualTo(1_000_000L);
        assertThat(clashes.get()).isZero();
        assertThat(pool.stats().usedSlots()).isZero();
        assertThat(pool.stats().highWaterSlots()).isBetween(1L, 8L);
        // every slot is free again: the whole pool maps in segment-sized pieces
        List<Long> all = new ArrayList<>();
        for (int i = 0; i < 1024 / 128; i++) {
            all.add(pool.map(dev, 0x100000, 262144, 262144, 0, DmaDirection.TO_DEVICE));
        }
        assertThat(all).doesNotHaveDuplicates();
        assertThat(pool.stats().usedSlots()).isEqualTo(1024);
    }

    @Test
    void ofTwoRacingUnmapsOfOneMappingExactlyOneWins() throws Exception {
        Host host = Host.builder().cpus(2).pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        SwiotlbPool pool = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1")).pool();
        PciDevice dev = host.pci("0000:06:0d.0");
        int rounds = 20_000;
        int size = 64 * 1024;
        CyclicBarrier go = new CyclicBarrier(2);
        CyclicBarrier done = new CyclicBarrier(2);
        AtomicLong shared = new AtomicLong();
        AtomicInteger wins = new AtomicInteger();
        AtomicInteger refusals = new AtomicInteger();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<String> badRounds = java.util.Collections.synchronizedList(new ArrayList<>());
        Runnable unmap = () -> {
            long tlb = shared.get();
            try {
                pool.unmap(dev, tlb, size, DmaDirection.FROM_DEVICE); // copies back: a wide window for a race
                wins.incrementAndGet();
            } catch (IommuException e) {
                if (!e.getMessage().equals(String.format("swiotlb: unmap of 0x%x, which is not the start of a live"
                        + " bounce mapping; nothing was changed", tlb))) {
                    failure.compareAndSet(null, e);
                }
                refusals.incrementAndGet();
            }
        };
        Thread mapper = new Thread(() -> {
            try {
                for (int r = 0; r < rounds; r++) {
                    wins.set(0);
                    refusals.set(0);
                    shared.set(pool.map(dev, 0x1000_0000L, size, size, 0, DmaDirection.FROM_DEVICE));
                    go.await();
                    unmap.run();
                    done.await();
                    long used = pool.stats().usedSlots();
                    if (wins.get() != 1 || refusals.get() != 1 || used != 0) {
                        badRounds.add("round " + r + ": " + wins.get() + " won, " + refusals.get() + " refused, "
                                + used + " slots used");
                    }
                }
            } catch (Throwable e) {
                failure.compareAndSet(null, e);
                go.reset();
                done.reset();
            }
        });
        Thread other = new Thread(() -> {
            try {
                for (int r = 0; r < rounds; r++) {
                    go.await();
                    unmap.run();
                    done.await();
                }
            } catch (Throwable e) {
                failure.compareAndSet(null, e);
                go.reset();
                done.reset();
            }
        });
        mapper.start();
        other.start();
        mapper.join();
        other.join();
        assertThat(failure.get()).isNull();
        assertThat(badRounds).isEmpty();
        assertThat(pool.stats().usedSlots()).isZero();
        // the free lists are intact: the whole pool maps in segment-sized pieces
        for (int i = 0; i < 512 / 128; i++) {
            pool.map(dev, 0x2000_0000L, 262144, 262144, 0, DmaDirection.TO_DEVICE);
        }
        assertThat(pool.stats().usedSlots()).isEqualTo(512);
    }

    @Test
    void usedSlotsAlwaysMatchTheLiveMappingsAndBounceBuffersNeverOverlap() {
        Seeded.forEach("SwiotlbConcurrencyTest.usedSlots", 50, r -> {
            List<Integer> sizes = new ArrayList<>();
            List<Integer> unmapPicks = new ArrayList<>();
            for (int i = r.nextInt(61); i > 0; i--) {
                sizes.add(1 + r.nextInt(70_000));
            }
            for (int i = r.nextInt(61); i > 0; i--) {
                unmapPicks.add(r.nextInt(101));
            }
            usedSlotsAlwaysMatchTheLiveMappings(sizes, unmapPicks);
        });
    }

    private static void usedSlotsAlwaysMatchTheLiveMappings(List<Integer> sizes, List<Integer> unmapPicks) {
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        SwiotlbPool pool = new SwiotlbFixture(host, Map.of("nslabs", "1024", "nareas", "1")).pool();
        PciDevice dev = host.pci("0000:06:0d.0");
        List<long[]> live = new ArrayList<>();
        for (int i = 0; i < sizes.size(); i++) {
            try {
                long tlb = pool.map(dev, 0x200000, sizes.get(i), sizes.get(i), 0, DmaDirection.TO_DEVICE);
                live.add(new long[] {tlb, sizes.get(i)});
            } catch (IommuException full) {
                assertThat(full.getMessage()).startsWith("swiotlb buffer is full");
            }
            if (i < unmapPicks.size() && !live.isEmpty() && unmapPicks.get(i) % 3 == 0) {
                long[] m = live.remove(unmapPicks.get(i) % live.size());
                pool.unmap(dev, m[0], m[1], DmaDirection.TO_DEVICE);
            }
            long slots = live.stream().mapToLong(m -> (m[1] + 2047) / 2048).sum();
            assertThat(pool.stats().usedSlots()).isEqualTo(slots);
            live.sort((a, b) -> Long.compare(a[0], b[0]));
            for (int k = 1; k < live.size(); k++) {
                assertThat(live.get(k)[0]).isGreaterThanOrEqualTo(live.get(k - 1)[0] + live.get(k - 1)[1]);
            }
        }
    }
}
