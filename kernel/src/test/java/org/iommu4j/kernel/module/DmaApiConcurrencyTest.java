package org.iommu4j.kernel.module;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

/**
 * The DMA API's per-device record without a monitor (one spin-lock section per call, slots finished with a
 * release store): several threads map, unmap, sync and unmap bogus addresses on two devices, some of them the
 * same addresses, while another keeps trying to unload the module that made the mappings. Every count stays
 * exact: each refused unload counts what is live, the ops see each real unmap exactly once, and once everything is
 * unmapped the module unloads.
 */
class DmaApiConcurrencyTest {
    private static final String NIC = "0000:06:0d.0";
    private static final String NIC2 = "0000:06:0e.0";
    private static final int THREADS = 4;
    private static final int STEPS = 20_000;

    /** Identity ops that count, per address, how many of their mappings are live; a bogus unmap is a no-op. */
    static final class CountingOps implements DmaOps {
        final Map<Long, AtomicLong> live = new ConcurrentHashMap<>();
        final AtomicLong unmaps = new AtomicLong();

        @Override
        public long map(Device device, long phys, long size, DmaDirection direction) {
            if ((phys & 0x1000) != 0) {
                Thread.yield(); // a slow map now and then: more calls in flight at once
            }
            live.computeIfAbsent(phys, x -> new AtomicLong()).incrementAndGet();
            return phys;
        }

        @Override
        public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
            unmaps.incrementAndGet();
            AtomicLong n = live.get(dmaAddress);
            if (n != null) {
                n.updateAndGet(v -> v > 0 ? v - 1 : v);
            }
        }

        @Override
        public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        }

        @Override
        public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        }

        @Override
        public CoherentBuffer allocateCoherent(Device device, long size) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void freeCoherent(Device device, CoherentBuffer buffer) {
        }

        long liveTotal() {
            return live.values().stream().mapToLong(AtomicLong::get).sum();
        }
    }

    @Test
    void racingCallsOnTwoDevicesKeepEveryCountExactWhileAnUnloadKeepsBeingRefused() throws Exception {
        long seed = System.nanoTime();
        try {
            run(seed);
        } catch (AssertionError | Exception e) {
            throw new AssertionError("seed " + seed + ": " + e, e);
        }
    }

    private static void run(long seed) throws Exception {
        Host host = Host.builder().memory(64L << 20).pciDevice(PciDeviceSpec.of(NIC))
                .pciDevice(PciDeviceSpec.of(NIC2)).build();
        AtomicReference<CountingOps> opsRef = new AtomicReference<>();
        ModuleInfo info = ModuleInfo.builder("counting").version("1.0").description("counting ops").build();
        LoadedModule m = host.modules().insert(new BackendProvider() {
            @Override
            public ModuleInfo info() {
                return info;
            }

            @Override
            public Backend start(KernelServices kernel) {
                CountingOps o = new CountingOps();
                opsRef.set(o);
                kernel.dma().setDefaultOps(o);
                return new Backend() {
                    @Override
                    public void stop() {
                        kernel.dma().clearDefaultOps(o);
                    }
                };
            }
        }, Map.of(), LoadFacts.inTree());
        CountingOps ops = opsRef.get();
        PciDevice[] devices = {host.pci(NIC), host.pci(NIC2)};
        CyclicBarrier start = new CyclicBarrier(THREADS + 1);
        AtomicBoolean done = new AtomicBoolean();
        AtomicLong expectedUnmaps = new AtomicLong();
        List<List<Long>> left = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        for (int t = 0; t < THREADS; t++) {
            int me = t;
            List<Long> mine = new ArrayList<>();
            left.add(mine);
            Thread th = new Thread(() -> {
                try {
                    Random random = new Random(seed + me);
                    PciDevice d = devices[me % 2];
                    // an anchor mapping: the module stays in use for the whole run
                    mine.add(host.dma().map(d, 0x40_0000L + me * 0x2000L, 64, DmaDirection.TO_DEVICE));
                    start.await();
                    for (int step = 0; step < STEPS; step++) {
                        int op = random.nextInt(10);
                        if (op < 4 || mine.size() < 2) {
                            // the same 16 pages for every thread: equal addresses on one device, from several threads
                            long phys = 0x10_0000L + (random.nextInt(16) << 12);
                            mine.add(host.dma().map(d, phys, 64, DmaDirection.TO_DEVICE));
                        } else if (op < 8) {
                            long a = mine.remove(1 + random.nextInt(mine.size() - 1));
                            host.dma().unmap(d, a, 64, DmaDirection.TO_DEVICE);
                            expectedUnmaps.incrementAndGet();
                        } else if (op == 8) {
                            host.dma().syncForCpu(d, mine.get(random.nextInt(mine.size())), 64,
                                    DmaDirection.TO_DEVICE);
                        } else {
                            // never handed out: goes to the ops, counts nothing
                            host.dma().unmap(d, 0x80_0000L + (random.nextInt(16) << 12), 64,
                                    DmaDirection.TO_DEVICE);
                            expectedUnmaps.incrementAndGet();
                        }
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            });
            threads.add(th);
            th.start();
        }
        Thread unloader = new Thread(() -> {
            try {
                start.await();
                while (!done.get()) {
                    assertThatThrownBy(() -> host.modules().remove("counting"))
                            .isInstanceOf(IommuException.class).hasMessage("Module counting is in use")
                            .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
                    assertThat(m.state()).isEqualTo(ModuleState.LIVE);
                    Thread.yield();
                }
            } catch (Throwable e) {
                failure.compareAndSet(null, e);
            }
        });
        unloader.start();
        for (Thread th : threads) {
            th.join(60_000);
        }
        done.set(true);
        unloader.join(60_000);
        if (failure.get() != null) {
            throw new AssertionError(failure.get().toString(), failure.get());
        }
        long stillMapped = left.stream().mapToLong(List::size).sum();
        assertThat(host.dma().liveMappings(m)).isEqualTo(stillMapped);
        assertThat(ops.liveTotal()).isEqualTo(stillMapped);
        assertThat(ops.unmaps.get()).isEqualTo(expectedUnmaps.get());
        for (int t = 0; t < THREADS; t++) {
            for (long a : left.get(t)) {
                host.dma().unmap(devices[t % 2], a, 64, DmaDirection.TO_DEVICE);
            }
        }
        assertThat(host.dma().liveMappings(m)).isZero();
        assertThat(ops.liveTotal()).isZero();
        host.modules().remove("counting");
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
        assertThat(host.dma().opsFor(devices[0])).isSameAs(host.dma().view(ModuleRef.KERNEL).directOps());
    }
}
