package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.BounceAreaStats;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/** Regression tests for the swiotlb findings of issues 11 and 12, each against Linux v6.12's outcome. */
class SwiotlbIssueRegressionTest {
    private static final long HIGH = 6L << 30;
    private static final String NIC = "0000:06:0d.0";

    private static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 31 + seed);
        }
        return b;
    }

    private static Errno errno(Throwable e) {
        return ((IommuException) e).errno();
    }

    /** Issue 11 #1: sizes are unsigned and a mapping larger than a segment is "buffer is full", taking nothing. */
    @Nested
    class HugeSizes {
        private final Host host = Host.builder().memory(8L << 30).commandLine("swiotlb=1024,1,force")
                .pciDevice(PciDeviceSpec.of(NIC)).build();
        private final SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of());
        private final PciDevice nic = host.pci(NIC);

        @Test
        void aNearlyTwoToTheSixtyThreeByteMapIsFullAndLeavesTheCountersAndLaterMapsAlone() {
            // the DMA API refuses a buffer that runs past memory before any ops see it
            assertThatThrownBy(() -> host.dma().map(nic, 0x1000_0000L, 0x7ffffffffffff000L, DmaDirection.TO_DEVICE))
                    .hasMessage("DMA buffer phys 0x10000000 + size 0x7ffffffffffff000 is outside memory: expected a"
                            + " buffer below 0x200000000")
                    .extracting(SwiotlbIssueRegressionTest::errno).isEqualTo(Errno.EFAULT);
            // swiotlb's ops, asked directly (as a driver stacked on them may), refuse it as the kernel does
            assertThatThrownBy(() -> host.dma().opsFor(nic).map(nic, 0x1000_0000L, 0x7ffffffffffff000L,
                    DmaDirection.TO_DEVICE))
                    .isInstanceOf(DmaMappingException.class)
                    .hasMessage("swiotlb buffer is full (sz: 9223372036854771712 bytes), total 1024 (slots), used 0"
                            + " (slots); a mapping spans at most 128 slots (262144 bytes for 0000:06:0d.0), see"
                            + " dma_max_mapping_size")
                    .extracting(SwiotlbIssueRegressionTest::errno).isEqualTo(Errno.ENOMEM);
            assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("0");
            assertThat(host.log().messages()).contains("pci 0000:06:0d.0: swiotlb buffer is full (sz:"
                    + " 9223372036854771712 bytes), total 1024 (slots), used 0 (slots)");
            // no transient pool either: swiotlb_find_slots refuses more than a segment before it would grow
            assertThat(swiotlb.attribute("io_tlb_transient_nslabs")).isEqualTo("0");
            assertThat(swiotlb.attribute("io_tlb_pools").lines()).hasSize(1);

            for (int i = 0; i < 8; i++) {
                long dma = host.dma().map(nic, 0x1000_0000L + i * 4096L, 4096, DmaDirection.TO_DEVICE);
                assertThat(swiotlb.pool().contains(dma)).isTrue();
            }
            assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("16");
        }

        @Test
        void withTheFirstSegmentsFullTwoToTheFortyThreeBytesIsRefusedNotGivenALiveMappingsAddress() {
            long live = host.dma().map(nic, 0x1000_0000L, 262144, DmaDirection.TO_DEVICE);
            assertThat(live).isEqualTo(swiotlb.pool().start());
            for (long size : new long[] {1L << 43, (1L << 43) + 1}) {
                assertThatThrownBy(() -> host.dma().map(nic, 0x2000_0000L, size, DmaDirection.TO_DEVICE))
                        .extracting(SwiotlbIssueRegressionTest::errno).isEqualTo(Errno.EFAULT);
                assertThatThrownBy(() -> host.dma().opsFor(nic).map(nic, 0x2000_0000L, size, DmaDirection.TO_DEVICE))
                        .isInstanceOf(DmaMappingException.class)
                        .hasMessageStartingWith("swiotlb buffer is full (sz: " + size + " bytes), total 1024 (slots),"
                                + " used 128 (slots)");
            }
            assertThat(swiotlb.pool().stats().usedSlots()).isEqualTo(128);
            host.dma().unmap(nic, live, 262144, DmaDirection.TO_DEVICE);
            assertThat(swiotlb.pool().stats().usedSlots()).isZero();
        }

        @Test
        void theExportedPoolThatXenUsesRefusesHugeAndNegativeLookingSizesTheSameWay() {
            SwiotlbPool pool = swiotlb.pool();
            assertThatThrownBy(() -> pool.map(nic, 0, 1L << 43, 1L << 43, 0, DmaDirection.TO_DEVICE))
                    .isInstanceOf(DmaMappingException.class)
                    .extracting(SwiotlbIssueRegressionTest::errno).isEqualTo(Errno.ENOMEM);
            // 0xfffffffffffff000 is a size_t near 2^64, printed with %zd as the kernel prints it
            assertThatThrownBy(() -> pool.map(nic, 0, -4096, -4096, 0, DmaDirection.TO_DEVICE))
                    .hasMessageStartingWith("swiotlb buffer is full (sz: -4096 bytes), total 1024 (slots)");
            assertThatThrownBy(() -> pool.map(nic, 0, 4096, 4096, 1L << 40, DmaDirection.TO_DEVICE))
                    .hasMessage("swiotlb: alloc align mask 0x10000000000 is invalid: expected at most 0xffffffff (an"
                            + " unsigned int)");
            assertThat(pool.stats().usedSlots()).isZero();
            assertThat(pool.areaStats()).containsExactly(new BounceAreaStats(0, 1024, 0, 0));
        }
    }

    /** Issue 12 #2: since v6.9 a mapping of a page or more is page-aligned when nothing else is asked. */
    @Nested
    class PageAlignment {
        private final Host host = Host.builder().pciDevice(PciDeviceSpec.of(NIC)).build();
        private final SwiotlbPool pool = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1")).pool();
        private final PciDevice dev = host.pci(NIC);

        @Test
        void aPageSizedMappingOfAnOriginalAtAnOddSlotOffsetLandsOnAPage() {
            pool.map(dev, 0x1000, 2048, 2048, 0, DmaDirection.TO_DEVICE); // the search index now at slot 1
            long tlb = pool.map(dev, 0x20800, 4096, 4096, 0, DmaDirection.TO_DEVICE);
            assertThat(tlb).isEqualTo(pool.start() + 2 * 2048);
            assertThat(tlb & 0xfff).isZero();
        }

        @Test
        void theMaximumMappingOfAnOriginalAtAnOddSlotOffsetFitsAnEmptyPool() {
            host.memory().write(0x100800, pattern(262144, 3), 0, 262144);
            long tlb = pool.map(dev, 0x100800, 262144, 262144, 0, DmaDirection.TO_DEVICE);
            assertThat(tlb).isEqualTo(pool.start());
            assertThat(dev.dmaRead(tlb, 262144)).isEqualTo(pattern(262144, 3));
            assertThat(pool.stats().usedSlots()).isEqualTo(128);
        }
    }

    /** Issue 12 #3: swiotlb= read as setup_io_tlb_npages reads it, the pool shaped as v6.12 shapes it. */
    @Nested
    class PoolSize {
        private SwiotlbFixture load(String word, int cpus) {
            return new SwiotlbFixture(Host.builder().cpus(cpus).commandLine("swiotlb=" + word).build(), Map.of());
        }

        @Test
        void aSlabCountThatIsNotAPowerOfTwoRoundsUpOnceTheAreasAreKnown() {
            SwiotlbFixture s = load("1100,4", 2);
            assertThat(s.pool().nslabs()).isEqualTo(2048);
            assertThat(s.pool().nareas()).isEqualTo(4);
            assertThat(s.host.log().messages()).containsSubsequence("software IO TLB: area num 4.",
                    "software IO TLB: SWIOTLB bounce buffer size roundup to 4MB",
                    String.format("software IO TLB: mapped [mem 0x%016x-0x%016x] (4MB)", s.pool().start(),
                            s.pool().start() + (4L << 20)));
        }

        @Test
        void aPoolTooSmallForASegmentPerAreaGrows() {
            SwiotlbFixture s = load("64,8", 1);
            assertThat(s.pool().nslabs()).isEqualTo(1024);
            assertThat(s.pool().nareas()).isEqualTo(8);
            assertThat(s.host.log().messages()).contains("software IO TLB: SWIOTLB bounce buffer size roundup to 2MB");
        }

        @Test
        void zeroAreasMeansOneAndTheCpuCountIsTakenOnlyWhenNoneIsGiven() {
            SwiotlbFixture one = load("1024,0", 4);
            assertThat(one.pool().nareas()).isEqualTo(1);
            assertThat(one.host.log().messages()).filteredOn(m -> m.contains("area num"))
                    .containsExactly("software IO TLB: area num 1.");
            SwiotlbFixture cpus = load("1000", 3);
            assertThat(cpus.pool().nslabs()).isEqualTo(1024);
            assertThat(cpus.pool().nareas()).isEqualTo(4);
            assertThat(cpus.host.log().messages()).contains("software IO TLB: area num 4.")
                    .noneMatch(m -> m.contains("roundup"));
        }

        @Test
        void theNumberIsReadAsSimpleStrtoulReadsItAndWhatCannotBeReadIsIgnored() {
            Host h = Host.builder().cpus(1).commandLine("swiotlb=0x400,2,force")
                    .pciDevice(PciDeviceSpec.of(NIC)).build();
            SwiotlbFixture hex = new SwiotlbFixture(h, Map.of());
            assertThat(hex.pool().nslabs()).isEqualTo(1024);
            assertThat(hex.pool().nareas()).isEqualTo(2);
            assertThat(hex.pool().contains(h.dma().map(h.pci(NIC), 0x1000_0000L, 64, DmaDirection.TO_DEVICE)))
                    .isTrue();

            SwiotlbFixture junk = load("lots", 1);
            assertThat(junk.pool().nslabs()).isEqualTo(32768);
            // the number is read, then "x,force" is neither "force" nor "noforce": no forced bouncing
            Host h2 = Host.builder().cpus(1).commandLine("swiotlb=2048x,force").pciDevice(PciDeviceSpec.of(NIC))
                    .build();
            SwiotlbFixture trailing = new SwiotlbFixture(h2, Map.of());
            assertThat(trailing.pool().nslabs()).isEqualTo(2048);
            assertThat(h2.dma().map(h2.pci(NIC), 0x1000_0000L, 64, DmaDirection.TO_DEVICE)).isEqualTo(0x1000_0000L);
        }
    }

    /** Issue 12 #5: bad unmap and sync input, as swiotlb_tbl_unmap_single and swiotlb_bounce take it in v6.12. */
    @Nested
    class BadInput {
        private final Host host = Host.builder().pciDevice(PciDeviceSpec.of(NIC))
                .pciDevice(PciDeviceSpec.of("0000:07:00.0").withMinAlignMask(0xfff)).build();
        private final SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1"));
        private final SwiotlbPool pool = swiotlb.pool();
        private final PciDevice dev = host.pci(NIC);
        private final long orig = 0x1000_0000L;

        @Test
        void anUnmapWithASmallerSizeCopiesThatMuchBackAndFreesTheWholeMapping() {
            host.memory().fill(orig, 6000, (byte) 0x11);
            long tlb = pool.map(dev, orig, 6000, 6000, 0, DmaDirection.FROM_DEVICE);
            dev.dmaWrite(tlb, pattern(6000, 9));

            pool.unmap(dev, tlb, 2000, DmaDirection.FROM_DEVICE);

            byte[] back = new byte[6000];
            host.memory().read(orig, back, 0, 6000);
            assertThat(Arrays.copyOf(back, 2000)).isEqualTo(Arrays.copyOf(pattern(6000, 9), 2000));
            assertThat(Arrays.copyOfRange(back, 2000, 6000)).containsOnly(0x11);
            assertThat(pool.stats().usedSlots()).isZero();
            assertThat(pool.stats().bytesFromDevice()).isEqualTo(2000);
            assertThat(host.taint().isSet(TaintFlag.WARN)).isFalse();
            assertThatThrownBy(() -> pool.unmap(dev, tlb, 6000, DmaDirection.FROM_DEVICE))
                    .hasMessage(String.format("swiotlb: unmap of 0x%x, which is not the start of a live bounce"
                            + " mapping; nothing was changed", tlb));
        }

        @Test
        void anUnmapWithALargerSizeIsCutAtTheAllocationWithOneWarningAndFrees() {
            long tlb = pool.map(dev, orig, 6000, 6000, 0, DmaDirection.FROM_DEVICE);
            dev.dmaWrite(tlb, pattern(6000, 1));
            pool.unmap(dev, tlb, 8000, DmaDirection.FROM_DEVICE);
            byte[] back = new byte[6000];
            host.memory().read(orig, back, 0, 6000);
            assertThat(back).isEqualTo(pattern(6000, 1));
            assertThat(pool.stats().usedSlots()).isZero();
            assertThat(host.log().messages()).containsSubsequence("------------[ cut here ]------------",
                    "pci 0000:06:0d.0: Buffer overflow detected. Allocation size: 6000. Mapping size: 8000.",
                    "WARNING: CPU: 0 PID: 1 at kernel/dma/swiotlb.c swiotlb_bounce");
            assertThat(host.taint().isSet(TaintFlag.WARN)).isTrue();
        }

        @Test
        void aSyncOfAFreeSlotReturnsSilently() {
            long tlb = pool.map(dev, orig, 100, 100, 0, DmaDirection.BIDIRECTIONAL);
            pool.unmap(dev, tlb, 100, DmaDirection.BIDIRECTIONAL);
            int lines = host.log().messages().size();
            pool.syncForCpu(dev, tlb, 100, DmaDirection.BIDIRECTIONAL);
            pool.syncForDevice(dev, pool.end() - 2048, 100, DmaDirection.BIDIRECTIONAL);
            assertThat(host.log().messages()).hasSize(lines);
            assertThat(pool.stats().bytesFromDevice()).isEqualTo(100);
        }

        @Test
        void aSyncBeforeTheMappingsStartIsCopiedRelativeToTheOriginalAsV612CopiesIt() {
            // v6.9 dropped the "Access before mapping start" WARN: swiotlb_bounce cannot tell the first slot's
            // head from a later slot's, so the bytes the pool keeps there are copied to where they shadow
            PciDevice aligned = host.pci("0000:07:00.0");
            long o = 0x1001_0100L;
            long tlb = pool.map(aligned, o, 1000, 1000, 0, DmaDirection.BIDIRECTIONAL);
            assertThat(tlb & 0xfff).isEqualTo(0x100);
            aligned.dmaWrite(tlb - 16, pattern(16, 4));

            pool.syncForCpu(aligned, tlb - 16, 16, DmaDirection.BIDIRECTIONAL);

            byte[] before = new byte[16];
            host.memory().read(o - 16, before, 0, 16);
            assertThat(before).isEqualTo(pattern(16, 4));
            assertThat(host.log().messages()).noneMatch(m -> m.contains("Access before mapping start"));
            assertThat(host.taint().isSet(TaintFlag.WARN)).isFalse();
        }

        @Test
        void aZeroByteMapIsRefusedWithoutTheSizesWarningWhoseOnceFlagStaysUnused() {
            assertThatThrownBy(() -> pool.map(dev, orig, 0, 0, 0, DmaDirection.TO_DEVICE))
                    .isInstanceOf(DmaMappingException.class)
                    .hasMessage("swiotlb: a bounce mapping of 0 bytes is invalid: expected at least 1 byte")
                    .extracting(SwiotlbIssueRegressionTest::errno).isEqualTo(Errno.EINVAL);
            assertThat(host.log().messages()).noneMatch(m -> m.contains("Invalid sizes"));
            assertThatThrownBy(() -> pool.map(dev, orig, 4096, 2048, 0, DmaDirection.TO_DEVICE))
                    .hasMessage("Invalid sizes (mapping: 4096 bytes, alloc: 2048 bytes)");
            assertThat(host.log().messages()).filteredOn(m -> m.contains("Invalid sizes"))
                    .containsExactly("pci 0000:06:0d.0: Invalid sizes (mapping: 4096 bytes, alloc: 2048 bytes)");
            assertThat(pool.stats().usedSlots()).isZero();
        }
    }

    /** Issue 12 #4: a bounce slot the device cannot reach is DMA_MAPPING_ERROR (ENOMEM) and a WARN_ONCE. */
    @Test
    void aBounceSlotBeyondTheDevicesReachIsAMappingErrorWarnedOnceWithTaintW() {
        Host host = Host.builder().memory(8L << 30)
                .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(20))).build();
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1"));
        PciDevice tiny = host.pci(NIC);
        long slot = swiotlb.pool().start();
        String line = String.format("swiotlb addr 0x%016x+4096 overflow (mask fffff, bus limit 0).", slot);

        assertThatThrownBy(() -> host.dma().map(tiny, HIGH, 4096, DmaDirection.FROM_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage(line)
                .extracting(SwiotlbIssueRegressionTest::errno).isEqualTo(Errno.ENOMEM);
        assertThat(host.log().messages()).containsSubsequence("------------[ cut here ]------------",
                "pci 0000:06:0d.0: " + line, "WARNING: CPU: 0 PID: 1 at kernel/dma/swiotlb.c swiotlb_map");
        assertThat(host.taint().isSet(TaintFlag.WARN)).isTrue();
        assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("0");
        assertThatThrownBy(() -> host.dma().map(tiny, HIGH, 4096, DmaDirection.FROM_DEVICE))
                .extracting(SwiotlbIssueRegressionTest::errno).isEqualTo(Errno.ENOMEM);
        assertThat(host.log().messages()).filteredOn(m -> m.contains("overflow")).hasSize(1);
    }

    /** v6.9's pre-padding: an alloc alignment above a slot is met with whole padding slots before the mapping. */
    @Test
    void anAllocAlignmentAboveAPagePadsWithWholeSlotsKeepsTheDevicesBitsAndWarnsOnce() {
        Host host = Host.builder().pciDevice(PciDeviceSpec.of(NIC).withMinAlignMask(0xfff)).build();
        SwiotlbPool pool = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "1")).pool();
        PciDevice dev = host.pci(NIC);
        long orig = 0x1001_2945L;
        host.memory().write(orig, pattern(1000, 2), 0, 1000);

        long tlb = pool.map(dev, orig, 1000, 1000, 0x3fff, DmaDirection.TO_DEVICE);

        assertThat(tlb & 0xfff).isEqualTo(0x945);
        assertThat((tlb - 0x945) & 0x3fff).isZero(); // one padding slot after a 16 KiB-aligned start
        assertThat(dev.dmaRead(tlb, 1000)).isEqualTo(pattern(1000, 2));
        assertThat(pool.stats().usedSlots()).isEqualTo(8); // ALIGN(0x945 + 1000, 16 KiB)
        assertThat(host.log().messages()).containsSubsequence("------------[ cut here ]------------",
                "pci 0000:06:0d.0: Alloc alignment may prevent fulfilling requests with max mapping_size",
                "WARNING: CPU: 0 PID: 1 at kernel/dma/swiotlb.c swiotlb_tbl_map_single");
        long second = pool.map(dev, orig, 1000, 1000, 0x3fff, DmaDirection.TO_DEVICE);
        assertThat(host.log().messages()).filteredOn(m -> m.contains("Alloc alignment")).hasSize(1);
        pool.unmap(dev, tlb, 1000, DmaDirection.TO_DEVICE);
        pool.unmap(dev, second, 1000, DmaDirection.TO_DEVICE);
        assertThat(pool.stats().usedSlots()).isZero();
        // the padding slots went back too: the whole pool takes whole-segment mappings again
        for (int i = 0; i < 4; i++) {
            pool.map(dev, 0x2000_0000L, 262144 - 4096, 262144 - 4096, 0, DmaDirection.TO_DEVICE);
        }
        assertThat(pool.stats().usedSlots()).isEqualTo(4 * 126);
    }

    /** Issue 11, observability: io_tlb_used, io_tlb_used_hiwater and the areas' own counts. */
    @Test
    void usageAndTheHighWaterMarkAreVisiblePerAreaAndTheMarkResetsOnlyToZero() throws Exception {
        Host host = Host.builder().cpus(2).memory(8L << 30)
                .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(32))).build();
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "512", "nareas", "2", "dynamic", "0"));
        PciDevice nic = host.pci(NIC);
        int mine = host.currentCpu() & 1;
        long a = host.dma().map(nic, HIGH, 3 * 2048, DmaDirection.TO_DEVICE);
        long[] other = new long[1];
        Thread t = new Thread(() -> other[0] = host.dma().map(nic, HIGH + 0x10000, 2048, DmaDirection.TO_DEVICE));
        t.start();
        t.join();
        int theirs = (int) ((other[0] - swiotlb.pool().start()) / 2048 / 256);
        long[] used = new long[2];
        used[mine] += 3;
        used[theirs] += 1;

        assertThat(swiotlb.pool().areaStats()).extracting(BounceAreaStats::usedSlots).containsExactly(used[0], used[1]);
        assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("4");
        assertThat(swiotlb.attribute("io_tlb_area_used")).isEqualTo(String.format("0 %d/256 hiwater %d%n1 %d/256"
                + " hiwater %d%n", used[0], used[0], used[1], used[1]).replace(System.lineSeparator(), "\n"));
        host.dma().unmap(nic, a, 3 * 2048, DmaDirection.TO_DEVICE);
        assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("1");
        assertThat(swiotlb.attribute("io_tlb_used_hiwater")).isEqualTo("4");

        assertThatThrownBy(() -> swiotlb.write("io_tlb_used_hiwater", "3"))
                .hasMessage("io_tlb_used_hiwater: only 0 may be written (to reset the mark), not 3")
                .extracting(SwiotlbIssueRegressionTest::errno).isEqualTo(Errno.EINVAL);
        assertThat(swiotlb.attribute("io_tlb_used_hiwater")).isEqualTo("4");
        swiotlb.write("io_tlb_used_hiwater", "0");
        assertThat(swiotlb.attribute("io_tlb_used_hiwater")).isEqualTo("0");
        assertThat(swiotlb.pool().stats().highWaterSlots()).isZero();
        long b = host.dma().map(nic, HIGH, 2048, DmaDirection.TO_DEVICE);
        assertThat(swiotlb.attribute("io_tlb_used_hiwater")).isEqualTo("2");
        swiotlb.pool().resetHighWater(); // the api's way, the same as writing 0
        assertThat(swiotlb.attribute("io_tlb_used_hiwater")).isEqualTo("0");
        assertThat(swiotlb.pool().areaStats()).extracting(BounceAreaStats::highWaterSlots).containsOnly(0L);
        host.dma().unmap(nic, b, 2048, DmaDirection.TO_DEVICE);
        host.dma().unmap(nic, other[0], 2048, DmaDirection.TO_DEVICE);
        assertThat(swiotlb.pool().areaStats()).extracting(BounceAreaStats::usedSlots).containsOnly(0L);
    }
}
