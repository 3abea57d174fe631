package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
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
        assertThat(host.log().messages()).contains(String.format("software IO TLB: mapped [mem 0x%016x-0x%016x] (1MB)",
                pool.start(), pool.end()));
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
    void aMappingThatWouldCrossTheDevicesSegmentBoundaryMovesToTheBoundary() {
        PciDevice bounded = host.pci("0000:08:00.0"); // 64 KiB boundary: every 32 slots
        long firstBoundary = (pool.start() | 0xffff) + 1;
        int boundarySlot = (int) ((firstBoundary - pool.start()) / 2048);
        if (boundarySlot < 6) {
            boundarySlot += 32;
        }
        // fill up to 4 slots before the boundary: the next candidate is page-aligned (so page alignment alone
        // would take it), inside one 128-slot segment, and its 8 slots would cross the device's boundary
        int fill = boundarySlot - 4;
        assertThat(fill % 2).isZero();
        assertThat(boundarySlot + 4).isLessThanOrEqualTo(128);
        pool.map(dev, 0x1000_0000L, (long) fill * 2048, (long) fill * 2048, 0, DmaDirection.TO_DEVICE);

        long tlb = pool.map(bounded, 0x2000_0000L, 8 * 2048, 8 * 2048, 0, DmaDirection.TO_DEVICE);

        assertThat(tlb).isEqualTo(pool.start() + (long) boundarySlot * 2048);
        assertThat(tlb >>> 16).isEqualTo((tlb + 8 * 2048 - 1) >>> 16);
    }

    @Test
    void noMappingCrossesASegmentOfTheTlb() {
        pool.map(dev, 0x1000_0000L, 124 * 2048, 124 * 2048, 0, DmaDirection.TO_DEVICE); // slots 0-123
        // slot 124 is page-aligned and free, and so are the 4 slots after it in the segment, then slot 128 on:
        // 8 slots fit only from the next segment
        long tlb = pool.map(dev, 0x2000_0000L, 8 * 2048, 8 * 2048, 0, DmaDirection.TO_DEVICE);

        assertThat(tlb).isEqualTo(pool.start() + 128L * 2048);
        assertThat(pool.map(dev, 0x3000_0000L, 4 * 2048, 4 * 2048, 0, DmaDirection.TO_DEVICE))
                .isEqualTo(pool.start() + 136L * 2048);
        assertThat(pool.stats().usedSlots()).isEqualTo(124 + 8 + 4);
    }

    @Test
    void unmappingWhatWasNotMappedIsAnErrorAndFreesNothing() {
        long tlb = pool.map(dev, 0x100000, 6000, 6000, 0, DmaDirection.FROM_DEVICE);
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
    void theFullWarningComesInBurstsOfTenPerFiveSecondsOfTheHostsClockAndCountsWhatItSuppressed() {
        // the host's clock reaches the pool as production wires it: KernelServices.uptimeNanos
        AtomicLong now = new AtomicLong(7_000_000_000L);
        Host clocked = Host.builder().clock(now::get).pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        SwiotlbPool small = new SwiotlbFixture(clocked, Map.of("nslabs", "128", "nareas", "1")).pool();
        assertThat(small.nslabs()).isEqualTo(128);
        PciDevice nic = clocked.pci("0000:06:0d.0");
        small.map(nic, 0x1000_0000L, 262144, 262144, 0, DmaDirection.TO_DEVICE);
        String line = "pci 0000:06:0d.0: swiotlb buffer is full (sz: 2048 bytes), total 128 (slots), used 128 (slots)";
        Runnable refused = () -> assertThatThrownBy(() -> small.map(nic, 0x2000_0000L, 2048, 2048, 0,
                DmaDirection.TO_DEVICE)).extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);

        for (int i = 0; i < 10; i++) {
            refused.run();
            now.addAndGet(100_000_000L);
        }
        assertThat(clocked.log().messages()).filteredOn(line::equals).hasSize(10);
        refused.run(); // the 11th, 1 s into the window
        refused.run(); // the 12th
        now.set(7_000_000_000L + 5_000_000_000L);
        refused.run(); // exactly 5 s: still the same window
        assertThat(clocked.log().messages()).filteredOn(line::equals).hasSize(10);
        assertThat(clocked.log().messages()).noneMatch(m -> m.contains("callbacks suppressed"));
        now.incrementAndGet();
        refused.run(); // past 5 s: a new window, which first reports the three it suppressed
        List<String> messages = clocked.log().messages();
        assertThat(messages).filteredOn(line::equals).hasSize(11);
        assertThat(messages.subList(messages.size() - 2, messages.size()))
                .containsExactly("swiotlb_tbl_map_single: 3 callbacks suppressed", line);
        now.addAndGet(6_000_000_000L);
        refused.run(); // a window after one with nothing suppressed: no count
        assertThat(clocked.log().messages()).filteredOn(m -> m.contains("callbacks suppressed")).hasSize(1);
        assertThat(clocked.log().messages()).filteredOn(line::equals).hasSize(12);
    }

    @Test
    void invalidSizesAreRefusedEveryTimeButWarnedOnceForThePoolWhicheverTheDevice() {
        PciDevice other = host.pci("0000:07:00.0");
        for (PciDevice d : List.of(dev, dev, other)) {
            assertThatThrownBy(() -> pool.map(d, 0x10_0000L, 4096, 2048, 0, DmaDirection.TO_DEVICE))
                    .isInstanceOf(DmaMappingException.class)
                    .hasMessage("Invalid sizes (mapping: 4096 bytes, alloc: 2048 bytes)");
        }
        // dev_warn_once keeps one flag at its call site: the first device's line is the only one
        assertThat(host.log().messages()).filteredOn(m -> m.contains("Invalid sizes")).containsExactly(
                "pci 0000:06:0d.0: Invalid sizes (mapping: 4096 bytes, alloc: 2048 bytes)");
        assertThat(pool.stats().usedSlots()).isZero();
    }

    @Test
    void anOriginalAtPhysicalAddressZeroIsAnOriginalLikeAnyOther() {
        // the page allocator never hands out the first 1 MiB (firmware's), but the DMA API takes any address
        PciDevice aligned = host.pci("0000:07:00.0"); // min_align_mask 0xfff
        pool.map(dev, 0x1000, 2048, 2048, 0, DmaDirection.TO_DEVICE); // shift the search index by one slot
        byte[] low = new byte[300];
        for (int i = 0; i < low.length; i++) {
            low[i] = (byte) (i * 7 + 3);
        }
        host.memory().write(0, low, 0, low.length);

        long tlb = pool.map(aligned, 0, 300, 300, 0, DmaDirection.BIDIRECTIONAL);

        assertThat(tlb & 0xfff).isZero(); // the original's low bits, kept for the device's min_align_mask
        assertThat(aligned.dmaRead(tlb, 300)).isEqualTo(low);
        aligned.dmaWrite(tlb + 10, "back".getBytes());
        pool.syncForCpu(aligned, tlb, 300, DmaDirection.BIDIRECTIONAL);
        byte[] back = new byte[4];
        host.memory().read(10, back, 0, 4);
        assertThat(back).asString().isEqualTo("back");
        assertThatThrownBy(() -> pool.releaseWindow(aligned, tlb, 300))
                .hasMessage(String.format("swiotlb: release of 0x%x, which is a DMA API mapping, not a VFIO bounce"
                        + " window; nothing was changed", tlb));
        pool.unmap(aligned, tlb, 300, DmaDirection.BIDIRECTIONAL);
        assertThat(pool.stats().usedSlots()).isEqualTo(1);
    }

    @Test
    void aVfioWindowHasNoOriginalSoTheDmaApiNeitherSyncsNorUnmapsIt() {
        byte[] low = new byte[100];
        Arrays.fill(low, (byte) 0x11);
        host.memory().write(0, low, 0, low.length);
        long window = pool.allocateWindow(dev, 3 * 4096);
        assertThat(window & 0xfff).isZero();
        host.memory().fill(window, 3 * 4096, (byte) 0x55);

        assertThatThrownBy(() -> pool.syncForCpu(dev, window, 100, DmaDirection.FROM_DEVICE))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("swiotlb: sync of 0x%x, which is in a VFIO bounce window, not a DMA API"
                        + " mapping; the window is synced through its VFIO container", window));
        assertThatThrownBy(() -> pool.syncForCpu(dev, window + 4096, 100, DmaDirection.FROM_DEVICE))
                .hasMessageContaining("which is in a VFIO bounce window");
        assertThatThrownBy(() -> pool.unmap(dev, window, 3 * 4096, DmaDirection.FROM_DEVICE))
                .hasMessage(String.format("swiotlb: unmap of 0x%x, which is a VFIO bounce window, not a DMA API"
                        + " mapping; nothing was changed", window));
        byte[] now = new byte[100];
        host.memory().read(0, now, 0, now.length);
        assertThat(now).containsOnly(0x11); // nothing was copied to physical address 0
        assertThat(pool.stats().usedSlots()).isEqualTo(6);
        assertThat(pool.stats().bytesFromDevice()).isZero();

        pool.releaseWindow(dev, window, 3 * 4096);
        assertThat(pool.stats().usedSlots()).isZero();
    }

    @Test
    void releasingAWindowWithAnotherSizeThanItsOwnIsRefusedAndReleasesNothing() {
        // the VFIO core hands back the mapping it recorded, so only a bookkeeping bug could get here
        long window = pool.allocateWindow(dev, 2 * 4096);
        assertThatThrownBy(() -> pool.releaseWindow(dev, window, 4096))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("swiotlb: release of 0x%x with size 4096, but 8192 bytes were mapped"
                        + " there; nothing was unmapped", window))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(pool.stats().usedSlots()).isEqualTo(4);
        pool.releaseWindow(dev, window, 2 * 4096);
        assertThat(pool.stats().usedSlots()).isZero();
    }

    @Test
    void aMappingWhoseFirstCopyFailsGivesItsSlotsBack() {
        long end = host.memory().size();
        assertThatThrownBy(() -> pool.map(dev, end - 100, 4096, 4096, 0, DmaDirection.TO_DEVICE))
                .isInstanceOf(IommuException.class)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThat(pool.stats().usedSlots()).isZero();
        assertThat(pool.stats().bytesToDevice()).isZero();
        // the slots are free again, in their lists too: every segment still takes a whole-segment mapping
        for (int i = 0; i < 4; i++) {
            pool.map(dev, 0x10_0000L, 262144, 262144, 0, DmaDirection.TO_DEVICE);
        }
        assertThat(pool.stats().usedSlots()).isEqualTo(512);
    }

    @Test
    void aSyncPastTheAllocationIsCutThereWithOneWarningAndTaintsW() {
        PciDevice aligned = host.pci("0000:07:00.0");
        long tlb = pool.map(aligned, 0x10100, 1000, 1000, 0, DmaDirection.BIDIRECTIONAL);
        pool.syncForCpu(aligned, tlb + 900, 500, DmaDirection.BIDIRECTIONAL);
        pool.syncForCpu(aligned, tlb + 900, 600, DmaDirection.BIDIRECTIONAL);
        assertThat(host.log().messages()).filteredOn(m -> m.contains("Buffer overflow")).containsExactly(
                "pci 0000:07:00.0: Buffer overflow detected. Allocation size: 100. Mapping size: 500.");
        assertThat(host.log().messages()).contains("WARNING: CPU: 0 PID: 1 at kernel/dma/swiotlb.c swiotlb_bounce");
        assertThat(host.taint().isSet(org.iommu4j.api.TaintFlag.WARN)).isTrue();
        assertThat(pool.stats().bytesFromDevice()).isEqualTo(200);
    }
}
