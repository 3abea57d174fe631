package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.Map;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/** The DMA API through swiotlb, with a 32-bit device and buffers above 4 GiB on an 8 GiB host. */
class SwiotlbDmaTest {
    private static final long HIGH = 6L << 30;
    private final Host host = Host.builder().memory(8L << 30)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32)))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0"))
            .build();
    private final PciDevice narrow = host.pci("0000:06:0d.0");
    private final PciDevice wide = host.pci("0000:07:00.0");

    private static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 13 + seed);
        }
        return b;
    }

    private byte[] read(long phys, int n) {
        byte[] b = new byte[n];
        host.memory().read(phys, b, 0, n);
        return b;
    }

    @Nested
    class Default {
        private final SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of());

        @Test
        void aReachableBufferIsMappedDirectly() {
            assertThat(host.dma().map(narrow, 0x1000_0000L, 4096, DmaDirection.TO_DEVICE)).isEqualTo(0x1000_0000L);
            assertThat(host.dma().map(wide, HIGH, 4096, DmaDirection.TO_DEVICE)).isEqualTo(HIGH);
            assertThat(swiotlb.pool().stats().usedSlots()).isZero();
        }

        @Test
        void aBounceWhoseCopyFailsIsRefusedAndKeepsNoSlot() {
            // a buffer that runs past the end of memory: out of the narrow device's reach, so it is bounced,
            // and the copy into the bounce slot faults
            long end = host.memory().size();
            assertThatThrownBy(() -> host.dma().map(narrow, end - 100, 6000, DmaDirection.TO_DEVICE))
                    .isInstanceOf(IommuException.class)
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
            assertThat(swiotlb.pool().stats().usedSlots()).isZero();
            assertThat(swiotlb.attribute("io_tlb_used")).isEqualTo("0");
        }

        @Test
        void toDeviceIsCopiedAtMapSoTheNarrowDeviceReadsTheRightBytes() {
            byte[] data = pattern(5000, 1);
            host.memory().write(HIGH + 100, data, 0, data.length);
            long dma = host.dma().map(narrow, HIGH + 100, data.length, DmaDirection.TO_DEVICE);

            assertThat(dma).isLessThan(1L << 32);
            assertThat(swiotlb.pool().contains(dma)).isTrue();
            assertThat(narrow.dmaRead(dma, data.length)).isEqualTo(data);
            assertThat(swiotlb.pool().stats().bytesToDevice()).isEqualTo(5000);

            narrow.dmaWrite(dma, new byte[16]); // the device scribbles on a TO_DEVICE buffer: never copied back
            host.dma().unmap(narrow, dma, data.length, DmaDirection.TO_DEVICE);
            assertThat(read(HIGH + 100, data.length)).isEqualTo(data);
            assertThat(swiotlb.pool().stats().usedSlots()).isZero();
        }

        @Test
        void fromDeviceReachesTheOriginalOnSyncForCpuAndOnUnmap() {
            byte[] original = pattern(3000, 2);
            host.memory().write(HIGH, original, 0, original.length);
            long dma = host.dma().map(narrow, HIGH, 3000, DmaDirection.FROM_DEVICE);
            // even FROM_DEVICE copies at map, so a partial device write cannot expose stale pool data
            assertThat(narrow.dmaRead(dma, 3000)).isEqualTo(original);

            byte[] first = pattern(1000, 3);
            narrow.dmaWrite(dma, first);
            assertThat(read(HIGH, 1000)).isEqualTo(Arrays.copyOf(original, 1000));
            host.dma().syncForCpu(narrow, dma, 3000, DmaDirection.FROM_DEVICE);
            assertThat(read(HIGH, 1000)).isEqualTo(first);

            byte[] second = pattern(3000, 4);
            narrow.dmaWrite(dma, second);
            host.dma().unmap(narrow, dma, 3000, DmaDirection.FROM_DEVICE);
            assertThat(read(HIGH, 3000)).isEqualTo(second);
        }

        @Test
        void bidirectionalGoesBothWaysOnEachSync() {
            host.memory().write(HIGH, pattern(2048, 5), 0, 2048);
            long dma = host.dma().map(narrow, HIGH, 2048, DmaDirection.BIDIRECTIONAL);
            byte[] cpuWrote = pattern(2048, 6);
            host.memory().write(HIGH, cpuWrote, 0, 2048);
            assertThat(narrow.dmaRead(dma, 2048)).isEqualTo(pattern(2048, 5));
            host.dma().syncForDevice(narrow, dma, 2048, DmaDirection.BIDIRECTIONAL);
            assertThat(narrow.dmaRead(dma, 2048)).isEqualTo(cpuWrote);

            byte[] deviceWrote = pattern(2048, 7);
            narrow.dmaWrite(dma, deviceWrote);
            host.dma().syncForCpu(narrow, dma, 2048, DmaDirection.BIDIRECTIONAL);
            assertThat(read(HIGH, 2048)).isEqualTo(deviceWrote);
            host.dma().unmap(narrow, dma, 2048, DmaDirection.BIDIRECTIONAL);
        }

        @Test
        void syncForDeviceCopiesOutOnlyForToDeviceAndBidirectional() {
            long dma = host.dma().map(narrow, HIGH, 2048, DmaDirection.FROM_DEVICE);
            host.memory().write(HIGH, pattern(2048, 8), 0, 2048);
            host.dma().syncForDevice(narrow, dma, 2048, DmaDirection.FROM_DEVICE);
            assertThat(narrow.dmaRead(dma, 2048)).containsOnly(0);

            long out = host.dma().map(narrow, HIGH + 8192, 2048, DmaDirection.TO_DEVICE);
            narrow.dmaWrite(out, pattern(2048, 9));
            host.dma().syncForCpu(narrow, out, 2048, DmaDirection.TO_DEVICE);
            assertThat(read(HIGH + 8192, 2048)).containsOnly(0);
            assertThat(swiotlb.attribute("bounced_bytes_from_device")).isEqualTo("0");

            // TO_DEVICE: the CPU rewrites the original after the map; the device sees the new bytes only once
            // the buffer is synced for it
            byte[] before = pattern(2048, 10);
            byte[] after = pattern(2048, 11);
            host.memory().write(HIGH + 16384, before, 0, 2048);
            long in = host.dma().map(narrow, HIGH + 16384, 2048, DmaDirection.TO_DEVICE);
            assertThat(swiotlb.pool().contains(in)).isTrue();
            host.memory().write(HIGH + 16384, after, 0, 2048);
            assertThat(narrow.dmaRead(in, 2048)).isEqualTo(before);
            long toDevice = swiotlb.pool().stats().bytesToDevice();
            host.dma().syncForDevice(narrow, in, 2048, DmaDirection.TO_DEVICE);
            assertThat(narrow.dmaRead(in, 2048)).isEqualTo(after);
            assertThat(swiotlb.pool().stats().bytesToDevice()).isEqualTo(toDevice + 2048);
            host.dma().unmap(narrow, in, 2048, DmaDirection.TO_DEVICE);
            assertThat(read(HIGH + 16384, 2048)).isEqualTo(after);
        }

        @Test
        void coherentMemoryComesFromWhereTheDeviceReaches() {
            var buffer = host.dma().allocateCoherent(narrow, 8192);
            assertThat(buffer.dmaAddress() + buffer.size()).isLessThanOrEqualTo(1L << 32);
            host.dma().freeCoherent(narrow, buffer);
        }

        @Test
        void aMappingStillLiveKeepsTheModuleLoaded() {
            long dma = host.dma().map(narrow, HIGH, 100, DmaDirection.TO_DEVICE);
            assertThatThrownBy(() -> host.modules().remove("swiotlb")).hasMessage("Module swiotlb is in use");
            host.dma().unmap(narrow, dma, 100, DmaDirection.TO_DEVICE);
            long free = host.pageAllocator().freePageCount();
            host.modules().remove("swiotlb");
            assertThat(host.pageAllocator().freePageCount()).isEqualTo(free + (64L << 20) / 4096);
            assertThat(host.dma().map(wide, HIGH, 100, DmaDirection.TO_DEVICE)).isEqualTo(HIGH);
        }
    }

    @Test
    void forceBouncesEvenWhatTheDeviceCouldReach() {
        Host forced = Host.builder().commandLine("swiotlb=16384,force")
                .pciDevice(PciDeviceSpec.of("0000:07:00.0")).build();
        SwiotlbFixture swiotlb = new SwiotlbFixture(forced, Map.of());
        assertThat(swiotlb.pool().nslabs()).isEqualTo(16384);
        long dma = forced.dma().map(forced.pci("0000:07:00.0"), 0x2000_0000L, 64, DmaDirection.TO_DEVICE);
        assertThat(swiotlb.pool().contains(dma)).isTrue();
    }

    @Test
    void withDmaApiDebugAWrongSizeUnmapIsReportedAndStillCopiesAndFreesAsTheKernelDoes() {
        Host debugged = Host.builder().dmaApiDebug(true).commandLine("swiotlb=16384,force")
                .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDriver("ahci")).build();
        SwiotlbFixture swiotlb = new SwiotlbFixture(debugged, Map.of());
        PciDevice disk = debugged.pci("0000:07:00.0");
        org.iommu4j.kernel.dma.DmaDebug debug = debugged.dma().debug().orElseThrow();
        long dma = debugged.dma().map(disk, 0x2000_0000L, 6000, DmaDirection.FROM_DEVICE);
        byte[] written = pattern(6000, 5);
        disk.dmaWrite(dma, written);

        debugged.dma().unmap(disk, dma, 8000, DmaDirection.FROM_DEVICE);

        assertThat(debug.reports()).containsExactly(String.format("DMA-API: ahci 0000:07:00.0: device driver frees"
                + " DMA memory with different size [device address=0x%016x] [map size=6000 bytes]"
                + " [unmap size=8000 bytes]", dma));
        assertThat(debug.activeEntries()).isZero();
        // swiotlb_tbl_unmap_single copies back what the allocation holds and frees it, whatever size it is given
        assertThat(swiotlb.pool().stats().usedSlots()).isZero();
        byte[] back = new byte[6000];
        debugged.memory().read(0x2000_0000L, back, 0, 6000);
        assertThat(back).isEqualTo(written);
        assertThat(debugged.log().messages()).contains(
                "ahci 0000:07:00.0: Buffer overflow detected. Allocation size: 6000. Mapping size: 8000.");
    }

    @Test
    void noforceLeavesNoPoolAndUnreachableBuffersAreRefusedAsDmaDirectRefusesThem() {
        Host host2 = Host.builder().memory(8L << 30).commandLine("swiotlb=noforce")
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32))).build();
        new SwiotlbFixture(host2, Map.of());
        assertThatThrownBy(() -> host2.dma().map(host2.pci("0000:06:0d.0"), HIGH, 4096, DmaDirection.TO_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("DMA addr 0x0000000180000000+4096 overflow (mask ffffffff, bus limit 0).")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        // dev_WARN_ONCE at its call site: the cut-here block once, taint W
        assertThat(host2.log().messages()).containsSubsequence(
                "------------[ cut here ]------------",
                "pci 0000:06:0d.0: DMA addr 0x0000000180000000+4096 overflow (mask ffffffff, bus limit 0).",
                "WARNING: CPU: 0 PID: 1 at kernel/dma/direct.h dma_direct_map_page");
        assertThat(host2.taint().isSet(org.iommu4j.api.TaintFlag.WARN)).isTrue();
        assertThatThrownBy(() -> host2.dma().map(host2.pci("0000:06:0d.0"), HIGH, 8192, DmaDirection.TO_DEVICE))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(host2.log().messages()).filteredOn(m -> m.contains("overflow")).hasSize(1);
    }

    @Test
    void anUnreadableSwiotlbWordIsIgnoredAsSetupIoTlbNpagesIgnoresItAndTheLoadGoesOn() {
        Host bad = Host.builder().commandLine("swiotlb=lots").build();
        SwiotlbFixture swiotlb = new SwiotlbFixture(bad, Map.of());
        assertThat(swiotlb.pool().nslabs()).isEqualTo(32768);
        assertThat(bad.modules().modules()).hasSize(1);
    }

    @Test
    void aPoolThePageAllocatorCannotGiveIsHalvedAsSwiotlbInitRemapHalvesIt() {
        Host h = Host.builder().commandLine("fail_page_alloc=1,100,0,1").build();
        long free = h.pageAllocator().freePageCount();
        SwiotlbFixture loaded = new SwiotlbFixture(h, Map.of());
        assertThat(loaded.pool().nslabs()).isEqualTo(16384);
        assertThat(h.pageAllocator().freePageCount()).isEqualTo(free - 8192);
        assertThat(h.log().messages()).containsSubsequence(
                "software IO TLB: swiotlb_memblock_alloc: Failed to allocate 67108864 bytes tlb structure",
                "software IO TLB: SWIOTLB bounce buffer size adjusted 32768 -> 16384 slabs",
                String.format("software IO TLB: mapped [mem 0x%016x-0x%016x] (32MB)", loaded.pool().start(),
                        loaded.pool().start() + (32L << 20)));
        h.modules().remove("swiotlb");
        assertThat(h.pageAllocator().freePageCount()).isEqualTo(free);
    }

    @Test
    void slabsAreRoundedToSegmentsAndAreasToPowersOfTwo() {
        Host h = Host.builder().cpus(3).commandLine("swiotlb=1000,3").build();
        SwiotlbFixture swiotlb = new SwiotlbFixture(h, Map.of());
        assertThat(swiotlb.pool().nareas()).isEqualTo(4);
        assertThat(swiotlb.pool().nslabs()).isEqualTo(1024);
        SwiotlbFixture viaParams = new SwiotlbFixture(Host.builder().build(), Map.of("nslabs", "200", "nareas", "8"));
        // ALIGN(200, 128) = 256 slots cannot hold a segment in each of 8 areas: round_up_default_nslabs
        assertThat(viaParams.pool().nslabs()).isEqualTo(1024);
        assertThat(viaParams.pool().nareas()).isEqualTo(8);
    }
}
