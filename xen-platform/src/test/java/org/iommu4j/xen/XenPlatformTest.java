package org.iommu4j.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.function.UnaryOperator;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.XenHypercalls;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

/** The hypervisor model on its own: machine memory, p2m and m2p, exchange, IOMMU contexts, assignment. */
class XenPlatformTest {
    private static final String NIC = "0000:06:0d.0";

    private static Errno errno(Throwable e) {
        return ((IommuException) e).errno();
    }

    @Test
    void aScatteredGuestIsContiguousInPseudoPhysicalMemoryButNeverInMachineMemoryAndTheM2pInvertsIt() {
        XenPlatform p = XenPlatform.builder().machineMemory(1L << 30).dom0Memory(64L << 20).build();
        XenDomain guest = p.createGuest("guest", 64L << 20, "", P2mLayout.scattered(7), UnaryOperator.identity());
        assertThat(guest.domid()).isEqualTo(1);
        for (long pfn = 1; pfn < guest.pages(); pfn++) {
            assertThat(guest.mfn(pfn)).isNotEqualTo(guest.mfn(pfn - 1) + 1);
            assertThat(guest.hypercalls().mfnToPfn(guest.mfn(pfn))).isEqualTo(pfn);
            assertThat(p.ownerOf(guest.mfn(pfn))).isEqualTo(1);
        }
        assertThat(p.dom0().hypercalls().mfnToPfn(guest.mfn(5))).isEqualTo(-1);
        assertThat(p.freeFrames()).isEqualTo(((1L << 30) - (128L << 20)) >>> 12);
        // the highest memory first: below 4 GiB stays free while memory above is
        XenPlatform again = XenPlatform.builder().machineMemory(1L << 30).dom0Memory(64L << 20).build();
        assertThat(again.createGuest("guest", 64L << 20, "", P2mLayout.scattered(7), UnaryOperator.identity())
                .mfn(500)).isEqualTo(guest.mfn(500));
        assertThat(p.dom0().mfn(0)).isGreaterThanOrEqualTo(((1L << 30) - (64L << 20)) >>> 12);
        assertThatThrownBy(() -> guest.mfn(guest.pages()))
                .hasMessage(String.format("xen: d1 has no pfn 0x%x (it has 0x%x pages)", guest.pages(), guest.pages()))
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.EINVAL);
    }

    @Test
    void aGuestWhoseKernelDoesNotBootLeavesTheMachineAsItWas() {
        XenPlatform p = XenPlatform.builder().machineMemory(1L << 30).dom0Memory(64L << 20).build();
        long free = p.freeFrames();
        assertThatThrownBy(() -> p.createGuest("bad", 64L << 20, "xen.hide=(0000:06:0d.0"))
                .isInstanceOf(org.iommu4j.api.InvalidParameterException.class);
        assertThat(p.freeFrames()).isEqualTo(free);
        assertThat(p.domains()).hasSize(1);
        assertThat(p.createGuest("good", 64L << 20, "").domid()).isEqualTo(1);
        assertThatThrownBy(() -> p.createGuest("odd", (64L << 20) + 4096, ""))
                .hasMessage("xen: memory of odd (67112960 bytes) is invalid: expected a multiple of 2 MiB, at least"
                        + " 16 MiB")
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.EINVAL);
    }

    @Test
    void theGuestsMemoryIsItsMachineFrames() {
        XenPlatform p = XenPlatform.builder().machineMemory(1L << 30).dom0Memory(64L << 20).build();
        XenDomain guest = p.createGuest("guest", 64L << 20, "");
        byte[] data = new byte[3 * 4096 + 17];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 7);
        }
        guest.host().memory().write(0x10ff0, data, 0, data.length);
        for (int page = 0; page < 4; page++) {
            long phys = 0x10ff0 + page * 4096L;
            int n = Math.min(16, data.length - page * 4096);
            byte[] want = java.util.Arrays.copyOfRange(data, page * 4096, page * 4096 + n);
            assertThat(p.readMachine((guest.mfn(phys >>> 12) << 12) | (phys & 0xfff), n)).isEqualTo(want);
        }
        guest.host().memory().copy(0x10ff0, 0x10ff8, data.length - 8);
        byte[] back = new byte[data.length - 8];
        guest.host().memory().read(0x10ff8, back, 0, back.length);
        assertThat(back).isEqualTo(java.util.Arrays.copyOf(data, data.length - 8));
    }

    @Test
    void anExchangeGivesAnAlignedMachineContiguousRunBelowTheLimitAndScrubsTheOldFrames() {
        XenPlatform p = XenPlatform.builder().machineMemory(8L << 30).dom0Memory(64L << 20).build();
        XenDomain guest = p.createGuest("guest", 64L << 20, "");
        long oldFrame = guest.mfn(130);
        guest.host().memory().write(130L << 12, "gone".getBytes(), 0, 4);
        long free = p.freeFrames();

        long first = guest.hypercalls().exchange(128, 3, 32);
        assertThat(first % 8).isZero();
        assertThat(first + 8).isLessThanOrEqualTo(1L << 20);
        assertThat(guest.machineContiguous(128, 8)).isTrue();
        assertThat(guest.mfn(128)).isEqualTo(first);
        assertThat(guest.hypercalls().mfnToPfn(first + 2)).isEqualTo(130);
        assertThat(p.ownerOf(oldFrame)).isEqualTo(-1);
        assertThat(p.readMachine(oldFrame << 12, 4)).containsOnly(0);
        assertThat(p.freeFrames()).isEqualTo(free);
        assertThatThrownBy(() -> guest.hypercalls().exchange(3, 3, 32))
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.EINVAL);
    }

    @Test
    void whenTheDomainsTookAllMemoryBelowTheLimitTheExchangeSaysWhichSettingHelps() {
        XenPlatform p = XenPlatform.builder().machineMemory(512L << 20).dom0Memory(64L << 20).build();
        XenDomain guest = p.createGuest("guest", 448L << 20, "");
        assertThatThrownBy(() -> guest.hypercalls().exchange(0, 6, 32))
                .hasMessage("xen: XENMEM_exchange for d1: no 64 machine-contiguous free frames below 2^32 (the domains"
                        + " took that memory: build the platform with more machineMemory, so that the hypervisor keeps"
                        + " memory below 4 GiB free)")
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.ENOMEM);
        assertThatThrownBy(() -> p.createGuest("more", 16L << 20, ""))
                .hasMessage("xen: cannot populate d2 (more) with 16 MiB: 0 MiB of machine memory is free in whole 2 MiB"
                        + " extents: build the platform with more machineMemory")
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.ENOMEM);
    }

    @Test
    void aContextMapsOnlyTheDomainsOwnFramesCountsSharedPagesAndReachesNothingOnceAFrameIsGivenBack() {
        XenPlatform p = XenPlatform.builder().machineMemory(1L << 30).dom0Memory(64L << 20).build();
        XenDomain a = p.createGuest("a", 64L << 20, "");
        XenDomain b = p.createGuest("b", 64L << 20, "");
        XenHypercalls.IommuContext c = a.hypercalls().createIommuContext();
        long theirs = b.mfn(3);
        assertThatThrownBy(() -> c.map(0x1000, theirs, 1, IommuProt.WRITE))
                .hasMessage(String.format("xen: domain 1 may not map mfn 0x%x: it belongs to domain 2", theirs))
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> c.map(0x1000, 5, 1, IommuProt.WRITE))
                .hasMessage("xen: domain 1 may not map mfn 0x5: no domain owns it");
        assertThatThrownBy(() -> c.map(0x1000, p.machineFrames(), 1, IommuProt.WRITE))
                .hasMessage(String.format("xen: domain 1 may not map mfn 0x%x: there is no such machine frame"
                        + " (machine memory has 0x%x)", p.machineFrames(), p.machineFrames()));
        long edge = -1;
        for (long pfn = 0; edge < 0; pfn++) {
            if (p.ownerOf(a.mfn(pfn) + 1) != a.domid()) {
                edge = a.mfn(pfn);
            }
        }
        long start = edge;
        // a run that starts on the domain's frame and runs into one it does not own is refused whole
        assertThatThrownBy(() -> c.map(0x2000, start, 2, IommuProt.READ))
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.EPERM);
        assertThat(c.translate(0x2000L << 12, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        long own = a.mfn(9);
        c.map(own, own, 1, IommuProt.READ | IommuProt.WRITE);
        c.map(own, own, 1, IommuProt.READ | IommuProt.WRITE);
        assertThat(c.unmap(own, 1)).isZero();
        assertThat(c.translate((own << 12) + 5, IommuProt.WRITE)).isEqualTo((own << 12) + 5);
        assertThat(c.unmap(own, 1)).isEqualTo(1);
        assertThat(c.translate(own << 12, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);

        c.map(0x40000, a.mfn(8), 1, IommuProt.READ);
        a.hypercalls().exchange(8, 0, 32);
        assertThat(c.translate(0x40000L << 12, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
    }

    @Test
    void aDeviceGoesToAGuestOnlyFromQuarantineAndItsDmaFaultsInTheHypervisorsLogWithoutAContext() {
        XenPlatform p = XenPlatform.builder().machineMemory(1L << 30).dom0Memory(64L << 20)
                .pciDevice(PciDeviceSpec.of(NIC)).build();
        XenDomain a = p.createGuest("a", 64L << 20, "");
        assertThatThrownBy(() -> p.attach(NIC, a)).extracting(XenPlatformTest::errno).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> a.hypercalls().setAssignable(a.host().buses().all().isEmpty()
                ? p.dom0().host().pci(NIC) : null, true))
                .hasMessage("xen: d1 (a) may not change who owns " + NIC + ": only Domain-0 assigns devices")
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.EPERM);
        var nic0 = p.dom0().host().pci(NIC);
        p.dom0().hypercalls().setAssignable(nic0, true);
        p.attach(NIC, a);
        assertThat(a.hypercalls().owns(a.host().pci(NIC))).isTrue();
        XenHypercalls.IommuContext dom0Context = p.dom0().hypercalls().createIommuContext();
        assertThatThrownBy(() -> dom0Context.attach(nic0))
                .hasMessage("xen: " + NIC + " is not assigned to d0 (Domain-0) (d1 (a) has it)")
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> p.dom0().hypercalls().setAssignable(nic0, false))
                .extracting(XenPlatformTest::errno).isEqualTo(Errno.EBUSY);

        long target = a.mfn(0x100) << 12;
        assertThatThrownBy(() -> a.host().pci(NIC).dmaWrite(target, new byte[4]))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage(String.format("%s: iommu fault: DMA write at bus address 0x%x: no IOMMU context: its"
                        + " domain attached none", NIC, target));
        XenHypercalls.IommuContext c = a.hypercalls().createIommuContext();
        c.map(0x100, a.mfn(0x100), 1, IommuProt.WRITE);
        c.attach(a.host().pci(NIC));
        a.host().pci(NIC).dmaWrite(0x100L << 12, "ok".getBytes());
        byte[] back = new byte[2];
        a.host().memory().read(0x100L << 12, back, 0, 2);
        assertThat(back).asString().isEqualTo("ok");
        assertThat(p.log().messages()).contains(String.format("(XEN) [VT-D]DMAR:[DMA Write] Request device [%s]"
                + " fault addr 0x%x, d1 (a): no IOMMU context: its domain attached none", NIC, target));
    }

    @Test
    void aSixtyFourGibibyteGuestAndThreeOfSixteenCostAFewMibibytesOfBookkeepingUntilWritten() {
        XenPlatform p = XenPlatform.builder().build();
        long empty = p.bookkeepingBytes();
        XenDomain big = p.createGuest("big", 64L << 30, "");
        for (int i = 0; i < 3; i++) {
            p.createGuest("side-" + i, 16L << 30, "");
        }
        long populated = p.bookkeepingBytes();
        assertThat(populated - empty).isLessThan(2L << 20);
        assertThat(populated).isLessThan(8L << 20);
        big.host().memory().write(63L << 30, new byte[4096], 0, 4096);
        big.hypercalls().exchange(0, 6, 32);
        assertThat(p.bookkeepingBytes()).isLessThan(8L << 20);
        assertThat(big.host().memory().residentBytes()).isEqualTo(2L << 20);
    }
}
