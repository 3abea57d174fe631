package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.iommu4j.api.DmaAttrs;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.ScatterList;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

/**
 * Issue 12's DMA-API features through swiotlb (only {@link SwiotlbDmaOps} was touched for them): scatterlists
 * bounce per segment, DMA_ATTR_SKIP_CPU_SYNC skips the copy back, dma_max_mapping_size / dma_opt_mapping_size.
 */
class SwiotlbDmaAttrsTest {
    private static final long HIGH = 6L << 30;
    private final Host host = Host.builder().memory(8L << 30)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32)))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0"))
            .build();
    private final PciDevice narrow = host.pci("0000:06:0d.0");
    private final SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of());

    private static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 7 + seed);
        }
        return b;
    }

    private byte[] read(long phys, int n) {
        byte[] b = new byte[n];
        host.memory().read(phys, b, 0, n);
        return b;
    }

    @Test
    void skipCpuSyncStillBouncesOnMapButCopiesNothingBackOnUnmap() {
        byte[] before = pattern(2048, 3);
        host.memory().write(HIGH, before, 0, before.length);
        long dma = host.dma().map(narrow, HIGH, 2048, DmaDirection.BIDIRECTIONAL, DmaAttrs.SKIP_CPU_SYNC);
        // Linux v6.12 swiotlb_tbl_map_single bounces on every map, whatever the attributes
        assertThat(narrow.dmaRead(dma, 2048)).isEqualTo(before);

        narrow.dmaWrite(dma, pattern(2048, 99));
        host.dma().unmap(narrow, dma, 2048, DmaDirection.BIDIRECTIONAL, DmaAttrs.SKIP_CPU_SYNC);
        assertThat(read(HIGH, 2048)).as("no copy back").isEqualTo(before);
        assertThat(swiotlb.pool().stats().usedSlots()).isZero();

        long again = host.dma().map(narrow, HIGH, 2048, DmaDirection.BIDIRECTIONAL, DmaAttrs.NONE);
        narrow.dmaWrite(again, pattern(2048, 99));
        host.dma().unmap(narrow, again, 2048, DmaDirection.BIDIRECTIONAL, DmaAttrs.NONE);
        assertThat(read(HIGH, 2048)).as("without the attribute the device's bytes come back")
                .isEqualTo(pattern(2048, 99));
    }

    @Test
    void aScatterlistBouncesPerSegmentAndComesBackOnUnmap() {
        byte[] a = pattern(3000, 1);
        byte[] b = pattern(700, 2);
        host.memory().write(HIGH, a, 0, a.length);
        host.memory().write(HIGH + 0x10_0000, b, 0, b.length);
        ScatterList sg = ScatterList.of(HIGH, 3000, 0x1000_0000L, 512, HIGH + 0x10_0000, 700);
        assertThat(host.dma().mapSg(narrow, sg, DmaDirection.BIDIRECTIONAL, DmaAttrs.NONE)).isEqualTo(3);
        assertThat(swiotlb.pool().contains(sg.dmaAddress(0))).isTrue();
        assertThat(sg.dmaAddress(1)).as("a reachable segment is mapped directly").isEqualTo(0x1000_0000L);
        assertThat(swiotlb.pool().contains(sg.dmaAddress(2))).isTrue();
        assertThat(narrow.dmaRead(sg.dmaAddress(0), 3000)).isEqualTo(a);
        assertThat(narrow.dmaRead(sg.dmaAddress(2), 700)).isEqualTo(b);

        narrow.dmaWrite(sg.dmaAddress(2), pattern(700, 50));
        host.dma().syncSgForCpu(narrow, sg, DmaDirection.BIDIRECTIONAL);
        assertThat(read(HIGH + 0x10_0000, 700)).isEqualTo(pattern(700, 50));
        narrow.dmaWrite(sg.dmaAddress(0), pattern(3000, 60));
        host.dma().unmapSg(narrow, sg, DmaDirection.BIDIRECTIONAL, DmaAttrs.NONE);
        assertThat(read(HIGH, 3000)).isEqualTo(pattern(3000, 60));
        assertThat(swiotlb.pool().stats().usedSlots()).isZero();
        assertThat(host.dma().liveMappings(swiotlb.module)).isZero();
    }

    @Test
    void aScatterlistThatDoesNotFitIsUnmappedWholeAndHoldsNoSlot() {
        ScatterList sg = ScatterList.of(HIGH, 4096, HIGH + 0x10_0000, 300_000);
        assertThatThrownBy(() -> host.dma().mapSg(narrow, sg, DmaDirection.TO_DEVICE, DmaAttrs.NO_WARN))
                .isInstanceOf(IommuException.class);
        assertThat(sg.mappedCount()).isZero();
        assertThat(swiotlb.pool().stats().usedSlots()).isZero();
        assertThat(host.dma().liveMappings(swiotlb.module)).isZero();
    }

    @Test
    void noWarnKeepsAFullPoolFromLoggingButTheMapIsStillRefused() {
        Host small = Host.builder().memory(8L << 30)
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32))).build();
        PciDevice dev = small.pci("0000:06:0d.0");
        new SwiotlbFixture(small, Map.of("nslabs", "512", "nareas", "1", "dynamic", "0"));
        for (int i = 0; i < 4; i++) {
            small.dma().map(dev, HIGH + 0x4_0000L * i, 0x4_0000, DmaDirection.TO_DEVICE);
        }
        String full = "swiotlb buffer is full (sz: 65536 bytes), total 512 (slots), used 512 (slots)";
        assertThatThrownBy(() -> small.dma().map(dev, HIGH + 0x1000_0000L, 65536, DmaDirection.TO_DEVICE,
                DmaAttrs.NO_WARN)).hasMessage(full);
        assertThat(small.log().messages()).noneMatch(m -> m.contains("buffer is full"));
        assertThatThrownBy(() -> small.dma().map(dev, HIGH + 0x1000_0000L, 65536, DmaDirection.TO_DEVICE))
                .hasMessage(full);
        assertThat(small.log().messages()).filteredOn(m -> m.contains("buffer is full"))
                .containsExactly("pci 0000:06:0d.0: " + full);
    }

    @Test
    void maxAndOptMappingSizeAreSwiotlbsForALimitedOrForcedDeviceAndSizeMaxForOneThatReachesAllMemory() {
        assertThat(host.dma().maxMappingSize(narrow)).isEqualTo(262144);
        assertThat(host.dma().optMappingSize(narrow)).isEqualTo(262144);
        assertThat(host.dma().maxMappingSize(host.pci("0000:07:00.0"))).as("SIZE_MAX").isEqualTo(-1L);
        Host eightGiBand33Bits = Host.builder().memory(8L << 30)
                .pciDevice(PciDeviceSpec.of("0000:08:00.0").withDmaMask(DmaMasks.bits(33))).build();
        new SwiotlbFixture(eightGiBand33Bits, Map.of());
        assertThat(eightGiBand33Bits.dma().maxMappingSize(eightGiBand33Bits.pci("0000:08:00.0")))
                .as("a 33-bit mask reaches all of 8 GiB").isEqualTo(-1L);

        Host forced = Host.builder().commandLine("swiotlb=16384,force").pciDevice(PciDeviceSpec.of("0000:07:00.0"))
                .build();
        new SwiotlbFixture(forced, Map.of());
        assertThat(forced.dma().maxMappingSize(forced.pci("0000:07:00.0"))).isEqualTo(262144);
    }
}
