package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

/** CONFIG_SWIOTLB_DYNAMIC (v6.6+): transient pools for the mapping that found no room, pools added by the worker. */
class SwiotlbDynamicPoolTest {
    private static final long HIGH = 6L << 30;
    private final Host host = Host.builder().memory(8L << 30)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32))).build();
    private final PciDevice nic = host.pci("0000:06:0d.0");

    private static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 7 + seed);
        }
        return b;
    }

    private void fill(int segments) {
        for (int i = 0; i < segments; i++) {
            host.dma().map(nic, HIGH + i * 0x100000L, 262144, DmaDirection.TO_DEVICE);
        }
    }

    @Test
    void aMappingThatFindsNoRoomGetsATransientPoolThatGoesWithItAndTheWorkerAddsAPool() {
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1"));
        SwiotlbMem mem = ((SwiotlbBackend) swiotlb.backend()).mem();
        fill(4);
        assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("512");
        long orig = HIGH + 0x1000_0000L;
        host.memory().write(orig, pattern(65536, 1), 0, 65536);
        long free = host.pageAllocator().freePageCount();

        long dma = host.dma().map(nic, orig, 65536, DmaDirection.BIDIRECTIONAL);

        assertThat(mem.transientPools()).hasSize(1);
        SwiotlbPool transientPool = mem.transientPools().get(0);
        assertThat(transientPool.contains(dma)).isTrue();
        assertThat(transientPool.nslabs()).isEqualTo(32);
        assertThat(dma + 65536).isLessThanOrEqualTo(1L << 32); // below the device's DMA mask
        assertThat(nic.dmaRead(dma, 65536)).isEqualTo(pattern(65536, 1));
        assertThat(swiotlb.attribute("io_tlb_transient_nslabs")).isEqualTo("32");
        assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("544");
        // the worker, run before the map returned: one pool of the default size, at the head of the list
        assertThat(mem.pools()).hasSize(2);
        SwiotlbPool added = mem.pools().get(0);
        assertThat(added.nslabs()).isEqualTo(512);
        assertThat(swiotlb.attribute("io_tlb_nslabs")).isEqualTo("1024");
        assertThat(swiotlb.attribute("io_tlb_pools").lines()).containsExactly(
                String.format("[mem 0x%016x-0x%016x] 32 slots 1 areas 32 used transient", transientPool.start(),
                        transientPool.end()),
                String.format("[mem 0x%016x-0x%016x] 512 slots 1 areas 0 used dynamic", added.start(), added.end()),
                String.format("[mem 0x%016x-0x%016x] 512 slots 1 areas 512 used default", swiotlb.pool().start(),
                        swiotlb.pool().end()));
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free - 16 - 256);
        assertThat(host.log().messages()).noneMatch(m -> m.contains("buffer is full"));

        long next = host.dma().map(nic, HIGH + 0x2000_0000L, 4096, DmaDirection.TO_DEVICE);
        assertThat(added.contains(next)).isTrue();
        assertThat(mem.transientPools()).hasSize(1);

        nic.dmaWrite(dma + 100, "from the device".getBytes());
        host.dma().syncForCpu(nic, dma, 65536, DmaDirection.BIDIRECTIONAL);
        byte[] seen = new byte[15];
        host.memory().read(orig + 100, seen, 0, 15);
        assertThat(seen).asString().isEqualTo("from the device");
        host.dma().unmap(nic, dma, 65536, DmaDirection.BIDIRECTIONAL);
        assertThat(mem.transientPools()).isEmpty();
        assertThat(swiotlb.attribute("io_tlb_transient_nslabs")).isEqualTo("0");
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free - 256);
        // the address is in no pool now: as for dma-direct, a second unmap finds nothing to free or copy
        String used = swiotlb.attribute("io_tlb_used");
        host.dma().unmap(nic, dma, 65536, DmaDirection.BIDIRECTIONAL);
        assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo(used);
        host.dma().unmap(nic, next, 4096, DmaDirection.TO_DEVICE);
        assertThat(added.stats().usedSlots()).isZero();
    }

    @Test
    void theWorkersPoolIsAtMostMaxPageOrderAndSwiotlbBoundsOnlyTheDefaultPool() {
        Host h = Host.builder().memory(8L << 30).commandLine("swiotlb=4096,4")
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32))).build();
        SwiotlbFixture swiotlb = new SwiotlbFixture(h, Map.of());
        SwiotlbMem mem = ((SwiotlbBackend) swiotlb.backend()).mem();
        PciDevice dev = h.pci("0000:06:0d.0");
        for (int i = 0; i < 32; i++) {
            h.dma().map(dev, HIGH + i * 0x100000L, 262144, DmaDirection.TO_DEVICE);
        }
        assertThat(swiotlb.pool().nslabs()).isEqualTo(4096);
        h.dma().map(dev, HIGH + 0x4000_0000L, 2048, DmaDirection.TO_DEVICE);
        assertThat(mem.pools()).extracting(SwiotlbPool::nslabs).containsExactly(2048, 4096);
        assertThat(mem.pools().get(0).nareas()).isEqualTo(4);
        assertThat(swiotlb.attribute("io_tlb_nslabs")).isEqualTo("6144");
    }

    @Test
    void aWorkerThatFindsNoMemoryBelowThePoolLimitSaysSoAndTheTransientPoolStillServes() {
        // below 2 MiB only the default pool fits (the first MiB is the firmware's): the worker finds nothing
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1", "limit",
                "0x200000"));
        SwiotlbMem mem = ((SwiotlbBackend) swiotlb.backend()).mem();
        assertThat(swiotlb.pool().end()).isLessThanOrEqualTo(0x200000L);
        fill(4);

        long dma = host.dma().map(nic, HIGH + 0x1000_0000L, 4096, DmaDirection.TO_DEVICE);

        assertThat(mem.transientPools()).singleElement().matches(p -> p.contains(dma));
        assertThat(mem.pools()).containsExactly(swiotlb.pool());
        assertThat(host.log().messages()).contains("software IO TLB: Failed to allocate new pool");
        host.dma().unmap(nic, dma, 4096, DmaDirection.TO_DEVICE);
        assertThat(mem.transientPools()).isEmpty();
    }

    @Test
    void withDynamicOffAFullPoolRefusesTheMappingAndNothingGrows() {
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1", "dynamic", "0"));
        SwiotlbMem mem = ((SwiotlbBackend) swiotlb.backend()).mem();
        fill(4);
        long free = host.pageAllocator().freePageCount();
        assertThatThrownBy(() -> host.dma().map(nic, HIGH + 0x1000_0000L, 65536, DmaDirection.TO_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("swiotlb buffer is full (sz: 65536 bytes), total 512 (slots), used 512 (slots)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(mem.pools()).hasSize(1);
        assertThat(mem.transientPools()).isEmpty();
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
    }

    @Test
    void theExportedPoolNeverGrowsAsXenSwiotlbsRemappedPoolCannot() {
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "128", "nareas", "1"));
        SwiotlbPool pool = swiotlb.pool();
        pool.map(nic, HIGH, 262144, 262144, 0, DmaDirection.TO_DEVICE);
        assertThatThrownBy(() -> pool.map(nic, HIGH, 2048, 2048, 0, DmaDirection.TO_DEVICE))
                .hasMessage("swiotlb buffer is full (sz: 2048 bytes), total 128 (slots), used 128 (slots)");
        assertThat(((SwiotlbBackend) swiotlb.backend()).mem().pools()).hasSize(1);
    }

    @Test
    void afterEveryMappingIsGoneUnloadGivesBackEveryPoolsPages() {
        long before = host.pageAllocator().freePageCount();
        new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1"));
        long[] dmas = new long[5];
        for (int i = 0; i < 5; i++) {
            dmas[i] = host.dma().map(nic, HIGH + i * 0x100000L, 262144, DmaDirection.TO_DEVICE);
        }
        for (long d : dmas) {
            host.dma().unmap(nic, d, 262144, DmaDirection.TO_DEVICE);
        }
        host.modules().remove("swiotlb");
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(before);
    }
}
