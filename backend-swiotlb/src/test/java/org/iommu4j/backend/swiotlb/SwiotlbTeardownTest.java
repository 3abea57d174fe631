package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.DeviceRegistry;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOpsRegistry;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuCore;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelCommandLine;
import org.iommu4j.api.KernelLog;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ModuleParameters;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.SymbolTable;
import org.iommu4j.api.Taint;
import org.iommu4j.api.VfioDriverRegistry;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

/** Issue 11 #10, the pool's side: a torn-down pool never hands out a slot, and no pool goes under a mapping. */
class SwiotlbTeardownTest {
    private static final long HIGH = 6L << 30;
    private final Host host = Host.builder().memory(8L << 30)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32))).build();
    private final PciDevice nic = host.pci("0000:06:0d.0");

    @Test
    void aSlotHeldThroughTheExportedPoolRefusesTeardownAndChangesNothingThenTheFreedPoolHandsOutNothing() {
        long before = host.pageAllocator().freePageCount();
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1"));
        SwiotlbPool pool = swiotlb.pool();
        long loaded = host.pageAllocator().freePageCount();
        long tlb = pool.map(nic, HIGH, 4096, 4096, 0, DmaDirection.TO_DEVICE); // as xen-swiotlb maps

        assertThatThrownBy(() -> swiotlb.backend().stop())
                .isInstanceOf(IommuException.class)
                .hasMessage("swiotlb: 2 slots of the bounce pools are held by live mappings and 0 mappings are being"
                        + " made: unmap them before unloading; nothing was freed")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(loaded);
        SymbolTable symbols = host.symbols().view(swiotlb.module);
        assertThat(symbols.lookup(BounceBufferPool.class)).isSameAs(pool); // the refused stop kept its export
        long bounced = host.dma().map(nic, HIGH + 0x10000, 100, DmaDirection.TO_DEVICE); // the ops are still there
        assertThat(pool.contains(bounced)).isTrue();
        host.dma().unmap(nic, bounced, 100, DmaDirection.TO_DEVICE);
        pool.unmap(nic, tlb, 4096, DmaDirection.TO_DEVICE);

        swiotlb.backend().stop();

        assertThat(host.pageAllocator().freePageCount()).isEqualTo(before);
        assertThatThrownBy(() -> symbols.lookup(BounceBufferPool.class)) // withdrawn by stop(), not left behind
                .hasMessage("swiotlb: Unknown symbol org.iommu4j.api.BounceBufferPool (err -2)");
        assertThatThrownBy(() -> pool.map(nic, HIGH, 4096, 4096, 0, DmaDirection.TO_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("Can not allocate SWIOTLB buffer earlier and can't now provide you with the DMA bounce"
                        + " buffer (the swiotlb pool has been torn down)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(host.log().messages()).contains("pci 0000:06:0d.0: Can not allocate SWIOTLB buffer earlier and"
                + " can't now provide you with the DMA bounce buffer");
        assertThat(pool.stats().usedSlots()).isZero();
    }

    @Test
    void aMapUnderWayWhenTeardownComesKeepsThePoolAndEndsWithItsBytes() throws Exception {
        CountDownLatch inCopy = new CountDownLatch(1);
        CountDownLatch go = new CountDownLatch(1);
        AtomicBoolean armed = new AtomicBoolean();
        BackendProvider pausing = new BackendProvider() {
            private final SwiotlbProvider real = new SwiotlbProvider();

            @Override
            public ModuleInfo info() {
                return real.info();
            }

            @Override
            public Backend start(KernelServices kernel) {
                return real.start(new PausingServices(kernel, armed, inCopy, go));
            }
        };
        long before = host.pageAllocator().freePageCount();
        Backend backend = host.modules().insert(pausing, Map.of("nslabs", "512", "nareas", "1"), "test").backend();
        SwiotlbPool pool = ((SwiotlbBackend) backend).pool();
        long loaded = host.pageAllocator().freePageCount();
        byte[] data = "in flight".getBytes();
        host.memory().write(HIGH, data, 0, data.length);
        AtomicLong dma = new AtomicLong();
        armed.set(true);
        Thread mapper = new Thread(() -> dma.set(host.dma().map(nic, HIGH, 4096, DmaDirection.TO_DEVICE)));
        mapper.start();
        assertThat(inCopy.await(10, TimeUnit.SECONDS)).isTrue();

        // the map has its slots and is copying: nothing is live in the DMA API's count yet
        assertThatThrownBy(backend::stop)
                .hasMessage("swiotlb: 2 slots of the bounce pools are held by live mappings and 1 mappings are being"
                        + " made: unmap them before unloading; nothing was freed")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        go.countDown();
        mapper.join(10_000);

        assertThat(pool.contains(dma.get())).isTrue();
        assertThat(nic.dmaRead(dma.get(), data.length)).isEqualTo(data);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(loaded);
        host.dma().unmap(nic, dma.get(), 4096, DmaDirection.TO_DEVICE);
        backend.stop();
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(before);
    }

    @Test
    void teardownRacingMapsNeverFreesAHeldSlotAndNoSlotIsHandedOutAfterIt() throws Exception {
        long before = host.pageAllocator().freePageCount();
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1"));
        SwiotlbPool pool = swiotlb.pool();
        AtomicBoolean stopped = new AtomicBoolean();
        AtomicBoolean done = new AtomicBoolean();
        AtomicLong afterTeardown = new AtomicLong();
        AtomicLong refused = new AtomicLong();
        java.util.List<Throwable> failures = new java.util.concurrent.CopyOnWriteArrayList<>();
        Thread mapper = new Thread(() -> {
            try {
                while (!done.get()) {
                    long tlb;
                    try {
                        tlb = pool.map(nic, HIGH, 4096, 4096, 0, DmaDirection.TO_DEVICE);
                    } catch (DmaMappingException e) {
                        assertThat(e.getMessage()).startsWith("Can not allocate SWIOTLB buffer earlier");
                        refused.incrementAndGet();
                        continue;
                    }
                    if (stopped.get()) {
                        afterTeardown.incrementAndGet(); // a slot of a pool that was already torn down
                    }
                    pool.unmap(nic, tlb, 4096, DmaDirection.TO_DEVICE);
                }
            } catch (Throwable t) {
                failures.add(t);
            }
        });
        mapper.start();
        int busy = 0;
        for (int attempt = 0; attempt < 100_000 && !stopped.get(); attempt++) {
            try {
                swiotlb.backend().stop();
                stopped.set(true);
            } catch (IommuException e) {
                assertThat(e.errno()).isEqualTo(Errno.EBUSY);
                busy++;
                Thread.yield();
            }
        }
        long refusedAtStop = refused.get();
        while (stopped.get() && refused.get() < refusedAtStop + 100 && failures.isEmpty()) {
            Thread.onSpinWait();
        }
        done.set(true);
        mapper.join(10_000);

        assertThat(failures).isEmpty();
        assertThat(stopped).as("teardown succeeded after %d refusals", busy).isTrue();
        assertThat(afterTeardown.get()).isZero();
        assertThat(pool.stats().usedSlots()).isZero();
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(before);
    }

    /** The module's services with a memory whose first armed copy waits for the test. */
    private static final class PausingServices implements KernelServices {
        private final KernelServices k;
        private final PhysicalMemory memory;

        PausingServices(KernelServices k, AtomicBoolean armed, CountDownLatch inCopy, CountDownLatch go) {
            this.k = k;
            PhysicalMemory real = k.memory();
            this.memory = new PhysicalMemory() {
                @Override
                public long size() {
                    return real.size();
                }

                @Override
                public void read(long phys, byte[] dst, int offset, int length) {
                    real.read(phys, dst, offset, length);
                }

                @Override
                public void write(long phys, byte[] src, int offset, int length) {
                    real.write(phys, src, offset, length);
                }

                @Override
                public void copy(long srcPhys, long dstPhys, long length) {
                    if (armed.compareAndSet(true, false)) {
                        inCopy.countDown();
                        try {
                            go.await(10, TimeUnit.SECONDS);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                    real.copy(srcPhys, dstPhys, length);
                }

                @Override
                public void fill(long phys, long length, byte value) {
                    real.fill(phys, length, value);
                }
            };
        }

        @Override
        public String moduleName() {
            return k.moduleName();
        }

        @Override
        public ModuleParameters parameters() {
            return k.parameters();
        }

        @Override
        public KernelCommandLine commandLine() {
            return k.commandLine();
        }

        @Override
        public PhysicalMemory memory() {
            return memory;
        }

        @Override
        public PageAllocator pageAllocator() {
            return k.pageAllocator();
        }

        @Override
        public DeviceRegistry devices() {
            return k.devices();
        }

        @Override
        public IommuCore iommu() {
            return k.iommu();
        }

        @Override
        public DmaOpsRegistry dma() {
            return k.dma();
        }

        @Override
        public VfioDriverRegistry vfio() {
            return k.vfio();
        }

        @Override
        public Taint taint() {
            return k.taint();
        }

        @Override
        public KernelLog log() {
            return k.log();
        }

        @Override
        public SymbolTable symbols() {
            return k.symbols();
        }

        @Override
        public long uptimeNanos() {
            return k.uptimeNanos();
        }

        @Override
        public int cpuCount() {
            return k.cpuCount();
        }

        @Override
        public int currentCpu() {
            return k.currentCpu();
        }
    }
}
