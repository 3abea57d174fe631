package org.iommu4j.kernel.module;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BusType;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.Test;

/**
 * A translating backend's module and the iommu-dma mappings made for its devices through the DMA API: a
 * hot-removed device's mappings keep the module loaded until they are unmapped, and then it unloads; an unload
 * retires the iommu-dma binding of the module's IOMMU registration, so no map can start through iommu-dma while
 * the module goes.
 */
class IommuDmaLifetimeTest {
    private static final String NIC = "0000:06:0d.0";
    private final Host host = Host.builder().memory(64L << 20).pciDevice(PciDeviceSpec.of(NIC)).build();
    private final PciDevice nic = host.pci(NIC);
    private final AtomicReference<PageTableIommu> iommu = new AtomicReference<>();

    /** A translating backend: registers a page-table IOMMU for PCI at init, unregisters it at exit. */
    private BackendProvider translating(Runnable atExit) {
        ModuleInfo info = ModuleInfo.builder("vtd").version("1.0").description("test IOMMU").build();
        return new BackendProvider() {
            @Override
            public ModuleInfo info() {
                return info;
            }

            @Override
            public Backend start(KernelServices kernel) {
                PageTableIommu ops = new PageTableIommu();
                iommu.set(ops);
                kernel.iommu().registerOps(BusType.PCI, ops);
                return new Backend() {
                    @Override
                    public void stop() {
                        atExit.run();
                        kernel.iommu().unregisterOps(BusType.PCI, ops);
                    }
                };
            }
        };
    }

    private long buffer() {
        return host.pageAllocator().allocatePages(0, Long.MAX_VALUE);
    }

    @Test
    void aHotRemovedDevicesIommuDmaMappingsHoldTheModuleUntilUnmappedThenItUnloads() {
        LoadedModule m = host.modules().insert(translating(() -> { }), Map.of(), LoadFacts.inTree());
        long phys = buffer();
        long free = host.pageAllocator().freePageCount();
        long dma = host.dma().map(nic, phys, 64, DmaDirection.FROM_DEVICE);
        CoherentBuffer ring = host.dma().allocateCoherent(nic, 4096);
        assertThat(dma).isNotEqualTo(phys); // translated: iommu-dma made it
        assertThat(host.dma().liveMappings(m)).isEqualTo(2);

        host.buses().remove(NIC);
        assertThat(host.dma().liveMappings(m)).isEqualTo(2);
        assertThatThrownBy(() -> host.modules().remove("vtd"))
                .hasMessage("Module vtd is in use")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        assertThat(m.state()).isEqualTo(ModuleState.LIVE);

        host.dma().unmap(nic, dma, 64, DmaDirection.FROM_DEVICE);
        assertThat(host.dma().liveMappings(m)).isEqualTo(1);
        assertThatThrownBy(() -> host.modules().remove("vtd")).hasMessage("Module vtd is in use");
        host.dma().freeCoherent(nic, ring);
        assertThat(host.dma().liveMappings(m)).isZero();
        assertThat(host.pageAllocator().freePageCount()).as("the coherent buffer's page came back")
                .isEqualTo(free);

        host.modules().remove("vtd");
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
        assertThat(host.modules().find("vtd")).isEmpty();
    }

    /**
     * Mappers map and unmap through iommu-dma while the module is unloaded again and again until it goes: once
     * the unload has decided (the backend's exit runs), no mapping can be live in its domains nor counted against
     * it, and every later map is dma-direct's identity mapping.
     */
    @Test
    void anUnloadRetiresTheIommuDmaBindingSoNoMapStartsThroughItWhileTheModuleGoes() throws Exception {
        long seed = System.nanoTime();
        System.out.println("IommuDmaLifetimeTest seed=" + seed);
        SplittableRandom random = new SplittableRandom(seed);
        AtomicLong mappedAtExit = new AtomicLong(-1);
        AtomicLong countedAtExit = new AtomicLong(-1);
        AtomicReference<LoadedModule> module = new AtomicReference<>();
        LoadedModule m = host.modules().insert(translating(() -> {
            try {
                Thread.sleep(20); // mappers keep trying while the exit runs
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            mappedAtExit.set(iommu.get().domains().stream().mapToLong(d -> d.mappedPages()).sum());
            countedAtExit.set(host.dma().liveMappings(module.get()));
        }), Map.of(), LoadFacts.inTree());
        module.set(m);
        long phys = buffer();
        AtomicBoolean stop = new AtomicBoolean();
        AtomicBoolean unloaded = new AtomicBoolean();
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicLong translatedAfterUnload = new AtomicLong();
        List<Thread> mappers = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            long pause = random.nextInt(50);
            Thread t = new Thread(() -> {
                try {
                    while (!stop.get()) {
                        boolean after = unloaded.get();
                        long a = host.dma().map(nic, phys, 64, DmaDirection.TO_DEVICE);
                        if (after && a != phys) {
                            translatedAfterUnload.incrementAndGet();
                        }
                        for (long k = 0; k < pause; k++) {
                            Thread.onSpinWait();
                        }
                        host.dma().unmap(nic, a, 64, DmaDirection.TO_DEVICE);
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e);
                }
            });
            mappers.add(t);
            t.start();
        }
        long deadline = System.nanoTime() + 5_000_000_000L;
        try {
            while (System.nanoTime() - deadline < 0) {
                Thread.sleep(random.nextInt(3));
                try {
                    host.modules().remove("vtd");
                    unloaded.set(true);
                    break;
                } catch (IommuException e) {
                    assertThat(e).as("seed %d", seed).hasMessage("Module vtd is in use");
                    assertThat(m.state()).as("seed %d", seed).isEqualTo(ModuleState.LIVE);
                }
            }
            Thread.sleep(5);
        } finally {
            stop.set(true);
            for (Thread t : mappers) {
                t.join(10_000);
            }
        }
        assertThat(failure.get()).as("seed %d", seed).isNull();
        assertThat(unloaded).as("seed %d: the unload never got a window between mappings", seed).isTrue();
        assertThat(mappedAtExit.get()).as("seed %d: pages mapped in its domains at exit", seed).isZero();
        assertThat(countedAtExit.get()).as("seed %d: mappings counted against it at exit", seed).isZero();
        assertThat(translatedAfterUnload.get()).as("seed %d", seed).isZero();
        assertThat(host.dma().liveMappings(m)).isZero();
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
    }
}
