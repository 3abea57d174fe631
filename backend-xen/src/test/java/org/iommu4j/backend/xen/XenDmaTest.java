package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

/**
 * xen-swiotlb's decision, on a guest whose p2m is laid out by hand: direct exactly when the machine range is
 * contiguous and within the device's mask, bounced otherwise.
 */
class XenDmaTest {
    private static final long PAGES = (32L << 20) >>> 12;
    private static final long LOW_RUN = 0x1000;     // pfns 0x1000-0x1003: machine-contiguous at mfn 0x2000, low
    private static final long SCATTERED = 0x1004;   // pfns from here: every other machine frame above 4 GiB
    private static final long HIGH_RUN = 0x1100;    // pfns 0x1100-0x1101: machine-contiguous at mfn 0x110000

    private final Host host = Host.builder().memory(32L << 20)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32)))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0"))
            .pciDevice(PciDeviceSpec.of("0000:08:00.0"))
            .build();
    private final XenHypervisor hv = new XenHypervisor(0x120000);
    private final XenDomain guest;
    private final PciDevice narrow = host.pci("0000:06:0d.0");
    private final PciDevice wide = host.pci("0000:07:00.0");
    private final BounceBufferPool pool;

    XenDmaTest() {
        hv.createDomain("Domain-0", 0x400, P2mLayout.contiguous());
        long[] p2m = new long[(int) PAGES];
        for (int pfn = 0; pfn < PAGES; pfn++) {
            p2m[pfn] = 0x100000 + 2L * pfn;
        }
        for (int i = 0; i < 4; i++) {
            p2m[(int) LOW_RUN + i] = 0x2000 + i;
        }
        p2m[(int) HIGH_RUN] = 0x110000;
        p2m[(int) HIGH_RUN + 1] = 0x110001;
        guest = hv.createGuest("guest", host.memory(), P2mLayout.explicit(p2m));
        host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"), "class path");
        host.modules().insert(new XenProvider(hv, guest), Map.of("hide", "(0000:06:0d.0)(0000:07:00.0)"),
                "class path");
        pool = host.symbols().view(host.modules().require("xen")).lookup(BounceBufferPool.class);
    }

    private long mapped(PciDevice dev, long pfn, long size) {
        return host.dma().map(dev, pfn << 12, size, DmaDirection.TO_DEVICE);
    }

    private boolean bounced(long dma) {
        long mfn = dma >>> 12;
        return hv.ownerOf(mfn) == guest.domid() && pool.contains(hv.pfnOf(mfn) << 12);
    }

    @Test
    void theBounceSegmentsWereMadeMachineContiguousBelowFourGibibytes() {
        for (long at = pool.start(); at < pool.end(); at += 256 * 1024) {
            assertThat(guest.machineContiguous(at >>> 12, 64)).isTrue();
            assertThat(guest.mfn(at >>> 12) + 64).isLessThanOrEqualTo(1L << 20);
        }
        assertThat(host.log().messages()).contains("xen: swiotlb pool made machine-contiguous below 4 GiB: 4 segments");
    }

    @Test
    void machineContiguousAndWithinTheMaskIsMappedDirectlyAtTheMachineAddress() {
        long dma = mapped(narrow, LOW_RUN, 4 * 4096);
        assertThat(dma).isEqualTo(0x2000L << 12);
        assertThat(mapped(wide, HIGH_RUN, 2 * 4096)).isEqualTo(0x110000L << 12);
        assertThat(mapped(wide, SCATTERED, 100)).isEqualTo(guest.mfn(SCATTERED) << 12);
        assertThat(pool.stats().usedSlots()).isZero();
    }

    @Test
    void aRangeStraddlingAMachineDiscontinuityIsBounced() {
        byte[] data = new byte[6000];
        java.util.Arrays.fill(data, (byte) 0x3c);
        host.memory().write(SCATTERED << 12, data, 0, data.length);
        long dma = mapped(wide, SCATTERED, data.length);
        assertThat(bounced(dma)).isTrue();
        assertThat(wide.dmaRead(dma, data.length)).isEqualTo(data);
    }

    @Test
    void aContiguousRangeBeyondTheMaskIsBouncedForTheNarrowDeviceOnly() {
        assertThat(bounced(mapped(narrow, HIGH_RUN, 2 * 4096))).isTrue();
        assertThat(bounced(mapped(wide, HIGH_RUN, 2 * 4096))).isFalse();
        assertThat(bounced(mapped(narrow, SCATTERED, 64))).isTrue(); // one page, but above 4 GiB
    }

    @Test
    void whatTheDeviceWritesToABounceReachesTheGuestAtUnmap() {
        long dma = host.dma().map(narrow, HIGH_RUN << 12, 8192, DmaDirection.FROM_DEVICE);
        narrow.dmaWrite(dma + 100, "from the device".getBytes());
        host.dma().unmap(narrow, dma, 8192, DmaDirection.FROM_DEVICE);
        byte[] back = new byte[15];
        host.memory().read((HIGH_RUN << 12) + 100, back, 0, back.length);
        assertThat(back).asString().isEqualTo("from the device");
        assertThat(pool.stats().usedSlots()).isZero();
    }

    @Test
    void aDeviceTheGuestWasNotGivenCannotBeMappedFor() {
        assertThatThrownBy(() -> host.dma().map(host.pci("0000:08:00.0"), 0x1000, 64, DmaDirection.TO_DEVICE))
                .isInstanceOf(IommuException.class)
                .hasMessage("xen: 0000:08:00.0 is not assigned to domain 1 (guest): give it to the guest with"
                        + " xen-pciback.hide=, or new_slot then bind, first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
    }

    @Test
    void coherentMemoryIsExchangedForAMachineContiguousRunTheDeviceReaches() {
        var buffer = host.dma().allocateCoherent(narrow, 3 * 4096);
        assertThat(buffer.size()).isEqualTo(4 * 4096);
        assertThat(guest.machineContiguous(buffer.phys() >>> 12, 4)).isTrue();
        assertThat(buffer.dmaAddress() + buffer.size()).isLessThanOrEqualTo(1L << 32);
        assertThat(buffer.dmaAddress()).isEqualTo(guest.mfn(buffer.phys() >>> 12) << 12);
        host.dma().freeCoherent(narrow, buffer);
    }
}
