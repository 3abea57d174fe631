package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.iommu4j.api.BounceStats;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

class SwiotlbPoolTest {
    private final Host host = Host.builder().cpus(2)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0").withMinAlignMask(0xfff))
            .pciDevice(PciDeviceSpec.of("0000:08:00.0").withSegmentBoundaryMask(0xffff))
            .build();
    private final SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1"));
    private final SwiotlbPool pool = swiotlb.pool();
    private final PciDevice dev = host.pci("0000:06:0d.0");

    @Test
    void thePoolIsCarvedBelowFourGibibytesAndShowsItsCounters() {
        assertThat(pool.nslabs()).isEqualTo(512);
        assertThat(pool.end() - pool.start()).isEqualTo(512L * 2048);
        assertThat(pool.end()).isLessThanOrEqualTo(1L << 32);
        assertThat(swiotlb.attribute("io_tlb_nslabs")).isEqualTo("512");
        assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("0");
        assertThat(host.log().messages()).contains(String.format("swiotlb: mapped [mem 0x%016x-0x%016x] (1MB)",
                pool.start(), pool.end() - 1));
    }

    @Test
    void aFullPoolSaysSoWithItsFiguresAndStaysAsItWas() {
        long a = pool.map(dev, 0x100000, 200 * 1024, 200 * 1024, 0, DmaDirection.TO_DEVICE); // 100 slots
        long b = pool.map(dev, 0x200000, 256 * 1024, 256 * 1024, 0, DmaDirection.TO_DEVICE); // 128 slots
        pool.map(dev, 0x300000, 256 * 1024, 256 * 1024, 0, DmaDirection.TO_DEVICE);
        pool.map(dev, 0x400000, 256 * 1024, 256 * 1024, 0, DmaDirection.TO_DEVICE);
        BounceStats before = pool.stats();
        assertThat(before.usedSlots()).isEqualTo(484);

        assertThatThrownBy(() -> pool.map(dev, 0x500000, 64 * 1024, 64 * 1024, 0, DmaDirection.TO_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("swiotlb buffer is full (sz: 65536 bytes), total 512 (slots), used 484 (slots)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(pool.stats()).isEqualTo(before);
        assertThat(host.log().messages()).contains("pci 0000:06:0d.0: swiotlb buffer is full (sz: 65536 bytes),"
                + " total 512 (slots), used 484 (slots)");

        pool.unmap(dev, b, 256 * 1024, DmaDirection.TO_DEVICE);
        assertThat(pool.map(dev, 0x500000, 64 * 1024, 64 * 1024, 0, DmaDirection.TO_DEVICE)).isNotNegative();
        assertThat(a).isEqualTo(pool.start());
    }

    @Test
    void aMappingLargerThanASegmentIsRefusedWithTheKernelsReasonAndTheLimitNamed() {
        assertThat(pool.maxMappingSize(dev)).isEqualTo(262144);
        assertThat(pool.maxMappingSize(host.pci("0000:07:00.0"))).isEqualTo(262144 - 4096);
        assertThatThrownBy(() -> pool.map(dev, 0, 262145, 262145, 0, DmaDirection.TO_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("swiotlb buffer is full (sz: 262145 bytes), total 512 (slots), used 0 (slots); a mapping"
                        + " spans at most 128 slots (262144 bytes for 0000:06:0d.0), see dma_max_mapping_size");
        assertThat(pool.stats().usedSlots()).isZero();
        assertThatThrownBy(() -> pool.map(dev, 0, 4096, 2048, 0, DmaDirection.TO_DEVICE))
                .hasMessage("Invalid sizes (mapping: 4096 bytes, alloc: 2048 bytes)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
    }

    @Test
    void theOriginalsOffsetIsKeptWhereTheDeviceNeedsItAndBigMappingsArePageAligned() {
        PciDevice aligned = host.pci("0000:07:00.0");
        pool.map(dev, 0x1000, 2048, 2048, 0, DmaDirection.TO_DEVICE); // shift the search index by one slot
        long tlb = pool.map(aligned, 0x12345, 100, 100, 0, DmaDirection.TO_DEVICE);
        assertThat(tlb & 0xfff).isEqualTo(0x345);
        long big = pool.map(dev, 0x20000, 8192, 8192, 0, DmaDirection.TO_DEVICE);
        assertThat(big & 0xfff).isZero();
        long small = pool.map(dev, 0x30010, 100, 100, 0, DmaDirection.TO_DEVICE);
        assertThat(small & 0x7ff).isZero(); // no min_align_mask: the slot start, offset dropped
    }

    @Test
    void noMappingCrossesTheDevicesSegmentBoundaryNorASegmentOfTheTlb() {
        PciDevice bounded = host.pci("0000:08:00.0");
        // fill up to 2 KiB before the first 64 KiB boundary of the pool (which starts page-aligned)
        long firstBoundary = (pool.start() | 0xffff) + 1;
        int slotsBefore = (int) ((firstBoundary - pool.start()) / 2048) - 1;
        pool.map(dev, 0x100000, (long) slotsBefore * 2048, (long) slotsBefore * 2048, 0, DmaDirection.TO_DEVICE);
        long tlb = pool.map(bounded, 0x200000, 4096 * 2 + 2048, 4096 * 2 + 2048, 0, DmaDirection.TO_DEVICE);
        assertThat(tlb >>> 16).isEqualTo((tlb + 4096 * 2 + 2047) >>> 16);
        long segStart = pool.start() + ((tlb - pool.start()) / (128 * 2048)) * (128 * 2048);
        assertThat(tlb + 10240).isLessThanOrEqualTo(segStart + 128 * 2048);
    }

    @Test
    void unmappingWhatWasNotMappedOrWithTheWrongSizeIsAnErrorAndFreesNothing() {
        long tlb = pool.map(dev, 0x100000, 6000, 6000, 0, DmaDirection.FROM_DEVICE);
        assertThatThrownBy(() -> pool.unmap(dev, tlb, 8000, DmaDirection.FROM_DEVICE))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("swiotlb: unmap of 0x%x with size 8000, but 6000 bytes were mapped there;"
                        + " nothing was unmapped", tlb))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> pool.unmap(dev, tlb + 2048, 2000, DmaDirection.FROM_DEVICE))
                .hasMessage(String.format("swiotlb: unmap of 0x%x, which is not the start of a live bounce mapping;"
                        + " nothing was changed", tlb + 2048));
        assertThatThrownBy(() -> pool.unmap(dev, pool.end() - 2048, 100, DmaDirection.FROM_DEVICE))
                .hasMessageContaining("which is not the start of a live bounce mapping");
        assertThatThrownBy(() -> pool.unmap(dev, pool.end() + 0x1000, 100, DmaDirection.FROM_DEVICE))
                .hasMessage(String.format("swiotlb: unmap of 0x%x, which is not in the bounce pool 0x%x-0x%x",
                        pool.end() + 0x1000, pool.start(), pool.end() - 1));
        assertThat(pool.stats().usedSlots()).isEqualTo(3);
        pool.unmap(dev, tlb, 6000, DmaDirection.FROM_DEVICE);
        assertThat(pool.stats().usedSlots()).isZero();
        assertThatThrownBy(() -> pool.unmap(dev, tlb, 6000, DmaDirection.FROM_DEVICE))
                .hasMessageContaining("not the start of a live bounce mapping");
    }

    @Test
    void syncsOutsideTheMappingAreCaughtAsTheKernelDoes() {
        PciDevice aligned = host.pci("0000:07:00.0");
        long tlb = pool.map(aligned, 0x10100, 1000, 1000, 0, DmaDirection.BIDIRECTIONAL);
        assertThatThrownBy(() -> pool.syncForCpu(aligned, tlb - 16, 16, DmaDirection.BIDIRECTIONAL))
                .hasMessage("Access before mapping start detected. orig offset 256, requested offset 240.");
        pool.syncForCpu(aligned, tlb + 900, 500, DmaDirection.BIDIRECTIONAL);
        assertThat(host.log().messages()).contains(
                "pci 0000:07:00.0: Buffer overflow detected. Allocation size: 100. Mapping size: 500.");
    }
}
