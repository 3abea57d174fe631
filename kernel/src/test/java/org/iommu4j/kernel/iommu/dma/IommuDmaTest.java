package org.iommu4j.kernel.iommu.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.function.LongSupplier;
import org.iommu4j.api.BusType;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.PciBridge;
import org.iommu4j.api.PciBridgeType;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.Test;

class IommuDmaTest {
    private static final String NIC = "0000:06:0d.0";
    private static final byte[] PACKET = "rx: 32 bytes from the wire.....!".getBytes(StandardCharsets.US_ASCII);
    private static final ModuleRef VTD = new ModuleRef() {
        @Override
        public String name() {
            return "vtd_test";
        }

        @Override
        public boolean tryGet() {
            return true;
        }

        @Override
        public void put() {
        }
    };

    private static Host host(String cmdline, PciDeviceSpec... specs) {
        Host.Builder b = Host.builder().commandLine(cmdline);
        for (PciDeviceSpec s : specs) {
            b.pciDevice(s);
        }
        return b.build();
    }

    private static long buffer(Host host) {
        return host.pageAllocator().allocatePages(0, Long.MAX_VALUE);
    }

    /** A host on {@code clock} whose NIC is in a lazily flushed (DMA-FQ) domain, and what the tests look at. */
    private record Lazy(Host host, PciDevice nic, PageTableIommu.PageTableDomain domain, IommuDmaCookie cookie) {
        static Lazy on(LongSupplier clock) {
            Host host = Host.builder().clock(clock).pciDevice(PciDeviceSpec.of(NIC)).build();
            host.iommu().registerOps(BusType.PCI, new PageTableIommu().deferredFlush(), VTD);
            PciDevice nic = host.pci(NIC);
            return new Lazy(host, nic, (PageTableIommu.PageTableDomain) nic.group().currentDomain(),
                    nic.group().dmaCookie());
        }
    }

    @Test
    void aDmaDomainDeviceGetsAnIovaBelowFourGigabytesAndItsDmaReachesTheBuffer() {
        Host host = host("", PciDeviceSpec.of(NIC));
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), VTD);
        PciDevice nic = host.pci(NIC);
        long phys = buffer(host) + 0x64;

        long dma = host.dma().map(nic, phys, PACKET.length, DmaDirection.FROM_DEVICE);
        nic.dmaWrite(dma, PACKET);

        // 32-bit first: the allocator works down from the top of the 32-bit space; the offset in the page stays
        assertThat(dma).isNotEqualTo(phys).isEqualTo(0xffff_f064L);
        byte[] seen = new byte[PACKET.length];
        host.memory().read(phys, seen, 0, seen.length);
        assertThat(seen).isEqualTo(PACKET);
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/type")).hasValue("DMA");
        assertThat(host.log().messages()).contains("iommu: DMA domain TLB invalidation policy: lazy mode");

        host.dma().unmap(nic, dma, PACKET.length, DmaDirection.FROM_DEVICE);
        // strict (the driver cannot defer flushes): the page is gone at once and the IOVA comes back at once
        assertThatThrownBy(() -> nic.dmaWrite(dma, PACKET)).isInstanceOf(IommuFaultException.class)
                .hasMessage(NIC + ": iommu fault: DMA write at bus address 0xfffff064: not mapped");
        assertThat(host.dma().map(nic, phys, PACKET.length, DmaDirection.FROM_DEVICE)).isEqualTo(dma);
    }

    @Test
    void aLazyUnmapLeavesThePageReachableAndTheIovaUnusedUntilTheFlush() {
        Lazy lazy = Lazy.on(() -> 0); // no timer
        Host host = lazy.host();
        PciDevice nic = lazy.nic();
        var domain = lazy.domain();
        IommuDmaCookie cookie = lazy.cookie();
        long phys = buffer(host);
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/type")).hasValue("DMA-FQ");

        long first = host.dma().map(nic, phys, 4096, DmaDirection.FROM_DEVICE);
        host.dma().unmap(nic, first, 4096, DmaDirection.FROM_DEVICE);
        assertThat(domain.mappedPages()).isZero();
        assertThat(domain.flushes()).isZero();
        // a stale IOTLB entry still lets the device reach the page: the lazy window
        nic.dmaWrite(first, PACKET);
        byte[] seen = new byte[PACKET.length];
        host.memory().read(phys, seen, 0, seen.length);
        assertThat(seen).isEqualTo(PACKET);
        // and the IOVA is not handed out again before the flush
        long second = host.dma().map(nic, phys, 4096, DmaDirection.FROM_DEVICE);
        assertThat(second).isNotEqualTo(first);
        assertThat(cookie.queuedRanges()).isEqualTo(1);
        host.dma().unmap(nic, second, 4096, DmaDirection.FROM_DEVICE);

        cookie.flushQueues(); // the 10 ms flush timer
        assertThat(domain.flushes()).isEqualTo(1);
        assertThat(cookie.queuedRanges()).isZero();
        assertThatThrownBy(() -> nic.dmaWrite(first, PACKET)).isInstanceOf(IommuFaultException.class)
                .hasMessageEndingWith("not mapped");
        assertThat(host.dma().map(nic, phys, 4096, DmaDirection.FROM_DEVICE)).isIn(first, second);
    }

    @Test
    void theFlushTimerFiresTenMillisecondsOfHostTimeAfterTheFirstQueuedUnmap() {
        long[] now = {0};
        Lazy lazy = Lazy.on(() -> now[0]);
        Host host = lazy.host();
        PciDevice nic = lazy.nic();
        var domain = lazy.domain();
        long phys = buffer(host);

        long dma = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        host.dma().unmap(nic, dma, 4096, DmaDirection.TO_DEVICE);
        now[0] += 9_999_999;
        long second = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        host.dma().unmap(nic, second, 4096, DmaDirection.TO_DEVICE);
        assertThat(second).isNotEqualTo(dma);
        assertThat(domain.flushes()).isZero();
        now[0] += 1;
        long again = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        assertThat(domain.flushes()).isEqualTo(1);
        assertThat(again).isEqualTo(second); // both were freed by the flush; the magazine gives the newest back
        assertThat(nic.group().dmaCookie().queuedRanges()).isZero();
    }

    /**
     * An unmap does not run the timer: past the deadline it queues its IOVA first, as the kernel does while its
     * timer softirq is late, and the next map's timer then frees both (a flush begun after both were queued).
     */
    @Test
    void anUnmapAfterTheDeadlineQueuesItsIovaAndTheNextMapFlushesBoth() {
        long[] now = {0};
        Lazy lazy = Lazy.on(() -> now[0]);
        Host host = lazy.host();
        PciDevice nic = lazy.nic();
        var domain = lazy.domain();
        IommuDmaCookie cookie = lazy.cookie();
        long phys = buffer(host);

        long first = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        host.dma().unmap(nic, first, 4096, DmaDirection.TO_DEVICE); // arms the timer: due at 10 ms
        now[0] = 5_000_000;
        long second = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        now[0] = 10_000_000;
        host.dma().unmap(nic, second, 4096, DmaDirection.TO_DEVICE);
        assertThat(domain.flushes()).isZero();
        assertThat(cookie.queuedRanges()).isEqualTo(2);

        long third = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        assertThat(domain.flushes()).isEqualTo(1);
        assertThat(cookie.queuedRanges()).isZero();
        assertThat(third).isEqualTo(second); // both were freed by the flush; the magazine gives the newest back
        host.dma().unmap(nic, third, 4096, DmaDirection.TO_DEVICE);
        assertThat(cookie.queuedRanges()).isEqualTo(1); // and it re-armed the timer for the next 10 ms
    }

    @Test
    void iommuStrictFlushesEveryUnmapAndTheDeviceNeverReachesAnUnmappedPage() {
        Host host = host("iommu.strict=1", PciDeviceSpec.of(NIC));
        PageTableIommu ops = new PageTableIommu().deferredFlush();
        host.iommu().registerOps(BusType.PCI, ops, VTD);
        PciDevice nic = host.pci(NIC);
        var domain = (PageTableIommu.PageTableDomain) nic.group().currentDomain();
        long phys = buffer(host);

        long dma = host.dma().map(nic, phys, 4096, DmaDirection.FROM_DEVICE);
        host.dma().unmap(nic, dma, 4096, DmaDirection.FROM_DEVICE);

        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/type")).hasValue("DMA");
        assertThat(host.log().messages()).contains("iommu: DMA domain TLB invalidation policy: strict mode");
        assertThat(domain.flushes()).isEqualTo(1);
        assertThatThrownBy(() -> nic.dmaWrite(dma, PACKET)).isInstanceOf(IommuFaultException.class);
        assertThat(host.dma().map(nic, phys, 4096, DmaDirection.FROM_DEVICE)).isEqualTo(dma);
    }

    @Test
    void forceDacSkipsTheThirtyTwoBitPassForASixtyFourBitDevice() {
        Host host = host("iommu.forcedac=1", PciDeviceSpec.of(NIC));
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), VTD);
        long phys = buffer(host);
        long dma = host.dma().map(host.pci(NIC), phys, 4096, DmaDirection.FROM_DEVICE);
        assertThat(dma).isEqualTo(0xffff_ffff_ffff_f000L);
        assertThat(host.log().messages()).contains("Forcing DAC for PCI devices");
        host.pci(NIC).dmaWrite(dma + 0xfc0, PACKET); // the device reaches an IOVA above 2^63
        byte[] seen = new byte[PACKET.length];
        host.memory().read(phys + 0xfc0, seen, 0, seen.length);
        assertThat(seen).isEqualTo(PACKET);
        assertThatThrownBy(() -> host.pci(NIC).dmaWrite(dma + 0xff0, PACKET)) // wraps past 2^64
                .isInstanceOf(IommuFaultException.class)
                .hasMessage(NIC + ": iommu fault: DMA write at bus address 0xfffffffffffffff0: the 32-byte"
                        + " transfer wraps past 2^64");
    }

    @Test
    void aThirtyTwoBitDeviceGetsIovasBelowItsMaskAndASizeAlignedRange() {
        Host host = host("", PciDeviceSpec.of(NIC).withDmaMask(0xffffffL));
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), VTD);
        PciDevice nic = host.pci(NIC);
        long a = host.dma().map(nic, buffer(host), 4096, DmaDirection.TO_DEVICE);
        long b = host.dma().map(nic, buffer(host), 3 * 4096, DmaDirection.TO_DEVICE);
        assertThat(a).isEqualTo(0xfff000L);
        // three pages are rounded up to four and aligned to 16 KiB, as alloc_iova_fast does
        assertThat(b).isEqualTo(0xff8000L);
    }

    @Test
    void anUntrustedDeviceSeesOnlyItsSubPageBufferAndZerosNeverTheRestOfThePage() {
        PciBridge port = PciBridge.of("0000:00:07.0", PciBridgeType.ROOT_PORT, 0x3a).asExternalFacing();
        Host host = host("", PciDeviceSpec.of("0000:3a:00.0").below(port));
        host.iommu().registerOps(BusType.PCI, new PageTableIommu().deferredFlush(), VTD);
        PciDevice tb = host.pci("0000:3a:00.0");
        long page = buffer(host);
        byte[] secret = new byte[4096];
        Arrays.fill(secret, (byte) 0x5e);
        host.memory().write(page, secret, 0, secret.length);
        host.memory().write(page + 0x100, PACKET, 0, PACKET.length);

        assertThat(tb.isUntrusted()).isTrue();
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/type")).hasValue("DMA"); // untrusted: strict
        long dma = host.dma().map(tb, page + 0x100, PACKET.length, DmaDirection.BIDIRECTIONAL);
        byte[] whole = tb.dmaRead(dma & ~0xfffL, 4096);

        byte[] expected = new byte[4096];
        System.arraycopy(PACKET, 0, expected, (int) (dma & 0xfff), PACKET.length);
        assertThat(whole).isEqualTo(expected);

        tb.dmaWrite(dma, "TX".getBytes(StandardCharsets.US_ASCII));
        host.dma().unmap(tb, dma, PACKET.length, DmaDirection.BIDIRECTIONAL);
        byte[] after = new byte[4096];
        host.memory().read(page, after, 0, after.length);
        assertThat(after[0x100]).isEqualTo((byte) 'T');
        assertThat(after[0x101]).isEqualTo((byte) 'X');
        assertThat(after[0xff]).isEqualTo((byte) 0x5e);
        assertThat(after[0x100 + PACKET.length]).isEqualTo((byte) 0x5e);
    }

    @Test
    void coherentBuffersComeFromTheSameIovaSpace() {
        Host host = host("", PciDeviceSpec.of(NIC));
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), VTD);
        PciDevice nic = host.pci(NIC);
        CoherentBuffer ring = host.dma().allocateCoherent(nic, 8192);
        assertThat(ring.dmaAddress()).isNotEqualTo(ring.phys()).isEqualTo(0xffff_e000L);
        nic.dmaWrite(ring.dmaAddress() + 4096, PACKET);
        byte[] seen = new byte[PACKET.length];
        host.memory().read(ring.phys() + 4096, seen, 0, seen.length);
        assertThat(seen).isEqualTo(PACKET);
        host.dma().freeCoherent(nic, ring);
        assertThat(nic.group().dmaCookie().iovad().isAllocated(0xffffeL)).isTrue(); // cached for reuse
    }

    @Test
    void aBackendWhoseDmaDomainsTheDmaApiCannotUseFailsItsRegistrationAndLeavesNoGroup() {
        Host host = host("", PciDeviceSpec.of("0000:00:07.0"), PciDeviceSpec.of(NIC));
        PageTableIommu ops = new PageTableIommu().pageSizes(1L << 21);
        assertThatThrownBy(() -> host.iommu().registerOps(BusType.PCI, ops, VTD))
                .isInstanceOf(IommuException.class)
                .hasMessage("Failed to set up IOMMU for device 0000:00:07.0: the DMA domain's smallest page size is"
                        + " 0x200000; iommu-dma needs 4 KiB pages (0x1000 in pageSizeBitmap)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(host.iommu().ops(BusType.PCI)).isEmpty();
        assertThat(ops.domains()).allMatch(PageTableIommu.PageTableDomain::isFreed);
    }

    @Test
    void aThrowingTranslateIsAFaultAWarnNamingTheModuleAndTaintW() {
        Host host = host("", PciDeviceSpec.of(NIC));
        PageTableIommu ops = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, ops, VTD);
        PciDevice nic = host.pci(NIC);
        long dma = host.dma().map(nic, buffer(host), 4096, DmaDirection.TO_DEVICE);
        ops.throwFromTranslate(new IllegalStateException("page walk failed"));

        assertThatThrownBy(() -> nic.dmaRead(dma, 16)).isInstanceOf(IommuFaultException.class)
                .hasMessage(NIC + ": iommu fault: DMA read at bus address 0xfffff000: the IOMMU driver of vtd_test"
                        + " failed");
        assertThat(host.log().messages()).containsSubsequence("------------[ cut here ]------------",
                "iommu: IOMMU driver of module vtd_test threw in translate at iova 0xfffff000:"
                        + " java.lang.IllegalStateException: page walk failed",
                "WARNING: CPU: 0 PID: 1 at drivers/iommu/iommu.c iommu_iova_to_phys");
        assertThat(host.taint().isSet(TaintFlag.WARN)).isTrue();
        assertThat(host.deviceDma().faultCount()).isEqualTo(1);
    }

    @Test
    void whenTheSpaceBelowFourGigabytesIsFullADeviceSaysSoOnceAndUsesItsWholeMask() {
        Host host = host("", PciDeviceSpec.of(NIC));
        // an aperture with two pages below 4 GiB, and the 64-bit space up to 2^40
        host.iommu().registerOps(BusType.PCI, new PageTableIommu().aperture(0xffff_e000L, (1L << 40) - 1), VTD);
        PciDevice nic = host.pci(NIC);
        long phys = buffer(host);
        long a = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        long b = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        long c = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        long d = host.dma().map(nic, phys, 4096, DmaDirection.TO_DEVICE);

        assertThat(new long[] {a, b, c, d}).containsExactly(0xffff_f000L, 0xffff_e000L, (1L << 40) - 4096,
                (1L << 40) - 8192);
        assertThat(host.log().messages()).containsOnlyOnce("pci " + NIC + ": Using 40-bit DMA addresses");
        assertThat(nic.pci32BitWorkaround()).isFalse();
    }

    @Test
    void anAddressNeverMappedIsRefusedOnUnmapAndNothingChanges() {
        Host host = host("", PciDeviceSpec.of(NIC));
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), VTD);
        PciDevice nic = host.pci(NIC);
        long dma = host.dma().map(nic, buffer(host), 4096, DmaDirection.TO_DEVICE);
        assertThatThrownBy(() -> host.dma().unmap(nic, 0x1234_5000L, 4096, DmaDirection.TO_DEVICE))
                .isInstanceOf(IommuException.class)
                .hasMessage(NIC + ": DMA address 0x12345000 is not mapped in its IOMMU domain")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        nic.dmaRead(dma, 16); // still mapped
    }

    @Test
    void aThrowingMapFailsTheDmaApiMapAWarnAndTaintAndGivesTheIovaBack() {
        Host host = host("", PciDeviceSpec.of(NIC));
        PageTableIommu ops = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, ops, VTD);
        PciDevice nic = host.pci(NIC);
        ops.throwFromMap(new NullPointerException("no context entry"));

        assertThatThrownBy(() -> host.dma().map(nic, buffer(host), 4096, DmaDirection.TO_DEVICE))
                .isInstanceOf(org.iommu4j.api.DmaMappingException.class)
                .hasMessage(NIC + ": iommu_map failed: iommu: IOMMU driver of module vtd_test threw in map at iova"
                        + " 0xfffff000: java.lang.NullPointerException: no context entry")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM); // DMA_MAPPING_ERROR
        assertThat(host.log().messages()).contains("WARNING: CPU: 0 PID: 1 at drivers/iommu/iommu.c __iommu_map");
        assertThat(host.taint().isSet(TaintFlag.WARN)).isTrue();
        ops.throwFromMap(null);
        assertThat(host.dma().map(nic, buffer(host), 4096, DmaDirection.TO_DEVICE)).isEqualTo(0xffff_f000L);
    }

    @Test
    void anUntrustedDeviceIsNeverPassedThrough() {
        PciBridge port = PciBridge.of("0000:00:07.0", PciBridgeType.ROOT_PORT, 0x3a).asExternalFacing();
        Host host = host("", PciDeviceSpec.of("0000:3a:00.0").below(port), PciDeviceSpec.of(NIC));
        host.iommu().registerOps(BusType.PCI, new PageTableIommu().passThrough(), VTD);
        assertThat(host.pci("0000:3a:00.0").group().sysfsType()).isEqualTo("DMA");
        assertThat(host.pci(NIC).group().sysfsType()).isEqualTo("identity");
        assertThat(host.dma().map(host.pci(NIC), 0x20_0000L, 64, DmaDirection.TO_DEVICE)).isEqualTo(0x20_0000L);
    }

    @Test
    void whenTheBounceAreaIsFullAnUntrustedDevicesUnalignedMapFailsAndAFreedSlotIsUsedAgain() {
        PciBridge port = PciBridge.of("0000:00:07.0", PciBridgeType.ROOT_PORT, 0x3a).asExternalFacing();
        Host host = host("", PciDeviceSpec.of("0000:3a:00.0").below(port));
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), VTD);
        PciDevice tb = host.pci("0000:3a:00.0");
        long page = buffer(host);
        long[] held = new long[BounceArea.PAGES];
        for (int i = 0; i < held.length; i++) {
            held[i] = host.dma().map(tb, page + 8, 100, DmaDirection.TO_DEVICE);
        }
        assertThat(host.dma().opsFor(tb).maxMappingSize(tb)).isEqualTo(256 * 1024);
        assertThatThrownBy(() -> host.dma().map(tb, page + 8, 100, DmaDirection.TO_DEVICE))
                .isInstanceOf(org.iommu4j.api.DmaMappingException.class)
                .hasMessage("0000:3a:00.0: swiotlb buffer is full (sz: 100 bytes), total 64 (slots), used 64 (slots)");
        // a page-aligned whole page needs no bounce
        long aligned = host.dma().map(tb, page, 4096, DmaDirection.TO_DEVICE);
        host.dma().unmap(tb, held[3], 100, DmaDirection.TO_DEVICE);
        assertThat(host.dma().map(tb, page + 8, 100, DmaDirection.TO_DEVICE)).isNotNegative();
        host.dma().unmap(tb, aligned, 4096, DmaDirection.TO_DEVICE);
    }
}
