package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicReference;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.module.ModuleState;
import org.junit.jupiter.api.Test;

/** Issue 11 #3 and #10 through swiotlb: its pool is never freed under a live or in-flight bounced mapping. */
class SwiotlbDmaLifetimeTest {
    private static final long HIGH = 6L << 30;
    private final Host host = Host.builder().memory(8L << 30)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32))).build();
    private final PciDevice nic = host.pci("0000:06:0d.0");

    @Test
    void aBogusUnmapCannotLetSwiotlbUnloadUnderABouncedMappingNorLeakItsPool() {
        long free = host.pageAllocator().freePageCount();
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of());
        long a = host.dma().map(nic, HIGH, 512, DmaDirection.FROM_DEVICE);
        assertThat(swiotlb.pool().contains(a)).isTrue();
        host.dma().unmap(nic, 0xdead000L, 64, DmaDirection.FROM_DEVICE);
        assertThatThrownBy(() -> host.modules().remove("swiotlb")).hasMessage("Module swiotlb is in use")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        assertThat(swiotlb.module.state()).isEqualTo(ModuleState.LIVE);
        assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("1");

        host.dma().unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
        host.modules().remove("swiotlb");
        assertThat(host.pageAllocator().freePageCount()).as("the pool went back").isEqualTo(free);
    }

    @Test
    void unloadRacingBouncedMapsNeverFreesAPoolAMapStillUses() throws Exception {
        long seed = System.nanoTime();
        Random random = new Random(seed);
        long free = host.pageAllocator().freePageCount();
        new SwiotlbFixture(host, Map.of("nslabs", "1024"));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread mapper = new Thread(() -> {
            byte[] data = new byte[256];
            try {
                for (int i = 0; i < 3000 && failure.get() == null; i++) {
                    try {
                        long a = host.dma().map(nic, HIGH + 4096L * (i % 64), 256, DmaDirection.TO_DEVICE);
                        LoadedModule m = host.modules().find("swiotlb").orElse(null);
                        if (a >= 1L << 32) {
                            throw new AssertionError("a bounced address above the device's reach");
                        }
                        nic.dmaRead(a, data, 0, data.length);
                        host.dma().unmap(nic, a, 256, DmaDirection.TO_DEVICE);
                        if (m != null && m.state() == ModuleState.UNLOADED && host.dma().liveMappings(m) != 0) {
                            throw new AssertionError("mapping live through an unloaded module");
                        }
                    } catch (DmaMappingException e) {
                        // no swiotlb loaded at that moment: dma-direct refuses the high buffer, fine
                    }
                }
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            }
        });
        mapper.start();
        int unloads = 0;
        while (mapper.isAlive()) {
            try {
                host.modules().remove("swiotlb");
                unloads++;
                assertThat(host.modules().find("swiotlb")).isEmpty();
                Thread.sleep(random.nextInt(2));
                new SwiotlbFixture(host, Map.of("nslabs", "1024"));
            } catch (IommuException e) {
                assertThat(e.errno()).as("seed %d", seed).isEqualTo(Errno.EAGAIN);
                assertThat(host.modules().find("swiotlb")).as("a refused unload keeps the module").isPresent();
            }
        }
        mapper.join();
        assertThat(failure.get()).as("seed %d", seed).isNull();
        host.modules().find("swiotlb").ifPresent(m -> host.modules().remove("swiotlb"));
        assertThat(host.pageAllocator().freePageCount()).as("seed %d: no pool leaked after %d unloads", seed,
                unloads).isEqualTo(free);
    }
}
