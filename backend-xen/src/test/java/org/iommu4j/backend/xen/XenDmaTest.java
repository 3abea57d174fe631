package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.function.UnaryOperator;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.xen.P2mLayout;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.api.Test;

/**
 * xen-swiotlb's decision in a guest whose memory lies above 4 GiB: direct exactly when the machine range is
 * contiguous and within the device's mask, bounced otherwise; and the device reaches what was mapped, for as
 * long as it is mapped.
 */
/* Test buffers lie at 32 MiB and above: swiotlb's pool takes the first free pages above 1 MiB. */
class XenDmaTest {
    private static final String NARROW = "0000:06:0d.0";
    private static final String WIDE = "0000:07:00.0";

    private final XenPlatform platform = Machines.platform("xen-pciback.hide=(06:0d.0)(07:00.0)",
            PciDeviceSpec.of(NARROW).withDmaMask(DmaMasks.bits(32)), PciDeviceSpec.of(WIDE),
            PciDeviceSpec.of("0000:08:00.0"));

    private XenDomain guest(P2mLayout layout) {
        XenDomain guest = platform.createGuest("guest", 64L << 20, "", layout, UnaryOperator.identity());
        Machines.loadDriver(guest.host(), Map.of());
        platform.attach(NARROW, guest);
        platform.attach(WIDE, guest);
        return guest;
    }

    private static BounceBufferPool pool(Host host) {
        return host.symbols().view(host.modules().require("xen")).lookup(BounceBufferPool.class);
    }

    private static boolean bounced(XenDomain guest, long dma) {
        long pfn = guest.hypercalls().mfnToPfn(dma >>> 12);
        return pfn >= 0 && pool(guest.host()).contains(pfn << 12);
    }

    private static long map(XenDomain guest, String device, long phys, long size) {
        return guest.host().dma().map(guest.host().pci(device), phys, size, DmaDirection.TO_DEVICE);
    }

    @Test
    void theBounceSegmentsWereMadeMachineContiguousBelowFourGibibytes() {
        XenDomain guest = guest(P2mLayout.scattered(3));
        BounceBufferPool pool = pool(guest.host());
        for (long at = pool.start(); at < pool.end(); at += 256 * 1024) {
            assertThat(guest.machineContiguous(at >>> 12, 64)).isTrue();
            assertThat(guest.mfn(at >>> 12) + 64).isLessThanOrEqualTo(1L << 20);
        }
        assertThat(guest.mfn(0x1000)).isGreaterThan(1L << 20);
        assertThat(guest.host().log().messages()).contains("xen: swiotlb pool made machine-contiguous below 4 GiB:"
                + " 4 segments");
    }

    @Test
    void machineContiguousAndWithinTheMaskIsMappedDirectlyAtTheMachineAddress() {
        XenDomain guest = guest(P2mLayout.contiguous());
        assertThat(map(guest, WIDE, 0x2000000, 4 * 4096)).isEqualTo(guest.mfn(0x2000) << 12);
        assertThat(pool(guest.host()).stats().usedSlots()).isZero();
        XenDomain scattered = platform.createGuest("scattered", 64L << 20, "");
        assertThat(scattered.machineContiguous(0x2000, 2)).isFalse();
    }

    @Test
    void aRangeStraddlingAMachineDiscontinuityIsBouncedAndTheDeviceReadsItWhole() {
        XenDomain guest = guest(P2mLayout.scattered(5));
        byte[] data = new byte[6000];
        java.util.Arrays.fill(data, (byte) 0x3c);
        guest.host().memory().write(0x2000000, data, 0, data.length);
        long dma = map(guest, WIDE, 0x2000000, data.length);
        assertThat(bounced(guest, dma)).isTrue();
        assertThat(guest.host().pci(WIDE).dmaRead(dma, data.length)).isEqualTo(data);
        // one page, within the wide device's reach: direct
        assertThat(bounced(guest, map(guest, WIDE, 0x2100000, 64))).isFalse();
    }

    @Test
    void aContiguousRangeBeyondTheMaskIsBouncedForTheNarrowDeviceOnly() {
        XenDomain guest = guest(P2mLayout.contiguous());
        assertThat(bounced(guest, map(guest, NARROW, 0x2000000, 2 * 4096))).isTrue();
        assertThat(bounced(guest, map(guest, WIDE, 0x2000000, 2 * 4096))).isFalse();
    }

    @Test
    void whatTheDeviceWritesToABounceReachesTheGuestAtUnmapAndNothingAfter() {
        XenDomain guest = guest(P2mLayout.scattered(7));
        PciDevice narrow = guest.host().pci(NARROW);
        long dma = guest.host().dma().map(narrow, 0x2000000, 8192, DmaDirection.FROM_DEVICE);
        narrow.dmaWrite(dma + 100, "from the device".getBytes());
        guest.host().dma().unmap(narrow, dma, 8192, DmaDirection.FROM_DEVICE);
        byte[] back = new byte[15];
        guest.host().memory().read(0x2000000 + 100, back, 0, back.length);
        assertThat(back).asString().isEqualTo("from the device");
        assertThat(pool(guest.host()).stats().usedSlots()).isZero();
        assertThatThrownBy(() -> narrow.dmaWrite(dma + 100, new byte[1])).isInstanceOf(IommuFaultException.class);
    }

    @Test
    void twoBuffersInOnePageKeepItMappedUntilBothAreUnmapped() {
        XenDomain guest = guest(P2mLayout.scattered(9));
        PciDevice wide = guest.host().pci(WIDE);
        long first = map(guest, WIDE, 0x2000000, 64);
        long second = map(guest, WIDE, 0x2000800, 64);
        guest.host().dma().unmap(wide, first, 64, DmaDirection.TO_DEVICE);
        assertThat(wide.dmaRead(second, 64)).hasSize(64);
        guest.host().dma().unmap(wide, second, 64, DmaDirection.TO_DEVICE);
        assertThatThrownBy(() -> wide.dmaRead(second, 64)).isInstanceOf(IommuFaultException.class);
    }

    @Test
    void aDeviceVfioTookCannotBeMappedForThroughTheDmaApi() {
        XenDomain guest = guest(P2mLayout.scattered(1));
        guest.host().vfio().bind(WIDE);
        var qemu = guest.host().spawn("qemu", 0, java.util.Set.of(org.iommu4j.api.Capability.CAP_IPC_LOCK));
        var group = guest.host().vfio().openGroup(qemu, guest.host().pci(WIDE).group().id());
        group.setContainer(qemu, guest.host().vfio().openContainer(qemu));
        assertThatThrownBy(() -> map(guest, WIDE, 0x1000, 64))
                .isInstanceOf(IommuException.class)
                .hasMessage("xen: " + WIDE + " is not in a DMA domain of d1 (the hypervisor has not assigned it to this"
                        + " domain, or VFIO has it): there is no IOMMU context to map for it")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
    }

    @Test
    void coherentMemoryIsExchangedForAMachineContiguousRunTheDeviceReaches() {
        XenDomain guest = guest(P2mLayout.scattered(11));
        PciDevice narrow = guest.host().pci(NARROW);
        var buffer = guest.host().dma().allocateCoherent(narrow, 3 * 4096);
        assertThat(buffer.size()).isEqualTo(4 * 4096);
        assertThat(guest.machineContiguous(buffer.phys() >>> 12, 4)).isTrue();
        assertThat(buffer.dmaAddress() + buffer.size()).isLessThanOrEqualTo(1L << 32);
        assertThat(buffer.dmaAddress()).isEqualTo(guest.mfn(buffer.phys() >>> 12) << 12);
        narrow.dmaWrite(buffer.dmaAddress() + 4096 * 3, "coherent".getBytes());
        byte[] back = new byte[8];
        guest.host().memory().read(buffer.phys() + 4096 * 3, back, 0, 8);
        assertThat(back).asString().isEqualTo("coherent");
        guest.host().dma().freeCoherent(narrow, buffer);
        assertThatThrownBy(() -> narrow.dmaRead(buffer.dmaAddress(), 8)).isInstanceOf(IommuFaultException.class);
    }
}
