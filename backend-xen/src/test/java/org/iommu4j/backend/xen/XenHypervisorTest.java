package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PciAddress;
import org.junit.jupiter.api.Test;

class XenHypervisorTest {
    private final XenHypervisor hv = new XenHypervisor(4096);

    @Test
    void aScatteredGuestIsContiguousInPseudoPhysicalMemoryButNotInMachineMemory() {
        hv.createDomain("Domain-0", 256, P2mLayout.contiguous());
        XenDomain guest = hv.createDomain("guest", 1024, P2mLayout.scattered(7));
        assertThat(guest.domid()).isEqualTo(1);
        int runs = 0;
        for (long pfn = 1; pfn < 1024; pfn++) {
            if (guest.mfn(pfn) != guest.mfn(pfn - 1) + 1) {
                runs++;
            }
        }
        assertThat(runs).isGreaterThan(900);
        assertThat(guest.machineContiguous(0, 2)).isFalse();
        assertThat(hv.ownerOf(guest.mfn(10))).isEqualTo(1);
        assertThat(hv.pfnOf(guest.mfn(10))).isEqualTo(10);
        assertThat(hv.freeFrames()).isEqualTo(4096 - 256 - 1024);
        // the same seed lays the guest out the same way
        XenHypervisor again = new XenHypervisor(4096);
        again.createDomain("Domain-0", 256, P2mLayout.contiguous());
        assertThat(again.createDomain("guest", 1024, P2mLayout.scattered(7)).mfn(500)).isEqualTo(guest.mfn(500));
    }

    @Test
    void anExchangeGivesAnAlignedMachineContiguousRunBelowTheLimitAndKeepsTheContents() {
        hv.createDomain("Domain-0", 64, P2mLayout.contiguous());
        XenDomain guest = hv.createDomain("guest", 512, P2mLayout.scattered(3));
        hv.writeMachine(guest.mfn(130) << 12, "kept".getBytes());
        long free = hv.freeFrames();

        long first = hv.exchangeContiguous(guest, 128, 3, 24);
        assertThat(first % 8).isZero();
        assertThat(guest.machineContiguous(128, 8)).isTrue();
        assertThat(guest.mfn(128)).isEqualTo(first);
        assertThat(first + 8).isLessThanOrEqualTo((1L << 24) >>> 12);
        assertThat(hv.readMachine(guest.mfn(130) << 12, 4)).asString().isEqualTo("kept");
        assertThat(hv.freeFrames()).isEqualTo(free);
        assertThatThrownBy(() -> hv.exchangeContiguous(guest, 0, 9, 21))
                .isInstanceOf(IommuException.class)
                .hasMessage("xen: XENMEM_exchange for domain 1: no 512 machine-contiguous free frames below 2^21")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
    }

    @Test
    void aDomainCannotMapAnotherDomainsFrameNorOneThatDoesNotExist() {
        XenDomain dom0 = hv.createDomain("Domain-0", 64, P2mLayout.contiguous());
        XenDomain guest = hv.createDomain("guest", 64, P2mLayout.contiguous());
        assertThat(hv.validateMapping(guest, guest.mfn(5))).isEqualTo(guest.mfn(5));
        assertThat(hv.validateMapping(dom0, dom0.mfn(0))).isEqualTo(dom0.mfn(0));
        assertThatThrownBy(() -> hv.validateMapping(guest, dom0.mfn(3)))
                .hasMessage(String.format("xen: domain 1 may not map mfn 0x%x: it belongs to domain 0", dom0.mfn(3)))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> hv.validateMapping(dom0, guest.mfn(3)))
                .hasMessage(String.format("xen: domain 0 may not map mfn 0x%x: it belongs to domain 1", guest.mfn(3)))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> hv.validateMapping(guest, 200))
                .hasMessage("xen: domain 1 may not map mfn 0xc8: no domain owns it")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> hv.validateMapping(guest, hv.machineFrames()))
                .hasMessage(String.format("xen: domain 1 may not map mfn 0x%x: there is no such machine frame"
                        + " (machine memory has 0x%x)", hv.machineFrames(), hv.machineFrames()))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
    }

    @Test
    void aDeviceBelongsToOneDomainAtATime() {
        XenDomain a = hv.createDomain("a", 16, P2mLayout.contiguous());
        XenDomain b = hv.createDomain("b", 16, P2mLayout.contiguous());
        PciAddress nic = PciAddress.parse("0000:06:0d.0");
        hv.assignDevice(a, nic);
        assertThatThrownBy(() -> hv.assignDevice(b, nic))
                .hasMessage("xen: 0000:06:0d.0 is assigned to domain 0 (a)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        hv.deassignDevice(nic);
        hv.assignDevice(b, nic);
        assertThat(hv.assignment(nic)).hasValue(b);
    }

    @Test
    void anExplicitLayoutMustUseFreeFrames() {
        hv.createDomain("Domain-0", 4, P2mLayout.contiguous());
        assertThatThrownBy(() -> hv.createDomain("bad", 2, P2mLayout.explicit(new long[] {1, 100})))
                .hasMessage("xen: p2m for bad uses mfn 0x1, which is not a free machine frame");
        assertThatThrownBy(() -> hv.createDomain("huge", 5000, P2mLayout.contiguous()))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
    }
}
