package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciConfigSpace;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.GuestPciBus;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioDeviceFile;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.junit.jupiter.api.Test;

/** The hypervisor isolates: what noiommu lets a device do, Xen refuses. */
class XenIsolationTest {
    private static final String NIC = "0000:06:0d.0";
    private static final String STRANGER = "0000:07:00.0"; // present, but not given to the guest
    private static final int NIC_VENDOR = 0x10ec;
    private static final int NIC_DEVICE = 0x8168;
    private static final long STRAY = 0x1000; // kernel memory of the guest as a physical address, dom0's as a machine one
    private final Host host = Host.builder()
            .commandLine("xen.hide=(" + NIC + ")")
            .pciDevice(PciDeviceSpec.of(NIC).withIds(NIC_VENDOR, NIC_DEVICE, 0x020000))
            .pciDevice(PciDeviceSpec.of(STRANGER))
            .build();
    private final XenBackend xen;

    XenIsolationTest() {
        host.modules().insert(new SwiotlbProvider(), Map.of(), "class path");
        xen = (XenBackend) host.modules().insert(new XenProvider(), Map.of(), "class path").backend();
    }

    @Test
    void theStrayWriteThatCorruptsMemoryUnderNoiommuFaultsAndWritesNothing() {
        byte[] secret = "guest kernel secret".getBytes(StandardCharsets.US_ASCII);
        host.memory().write(STRAY, secret, 0, secret.length);
        byte[] dom0Before = xen.hypervisor().readMachine(STRAY, 32);
        assertThat(xen.hypervisor().ownerOf(STRAY >>> 12)).isZero();

        assertThatThrownBy(() -> host.pci(NIC).dmaWrite(STRAY, "0wned".getBytes(StandardCharsets.US_ASCII)))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage("0000:06:0d.0: iommu fault: DMA write at bus address 0x1000: not mapped");

        byte[] guestAfter = new byte[secret.length];
        host.memory().read(STRAY, guestAfter, 0, guestAfter.length);
        assertThat(guestAfter).isEqualTo(secret);
        assertThat(xen.hypervisor().readMachine(STRAY, 32)).isEqualTo(dom0Before);
        assertThat(host.pci(NIC).faultCount()).isEqualTo(1);
        assertThat(host.log().messages()).contains(
                "pci 0000:06:0d.0: iommu fault: DMA write at bus address 0x1000: not mapped");
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
    }

    @Test
    void aDeviceDmaIntoAnotherGuestsFrameFaultsAndThatGuestsMemoryIsUnchanged() {
        XenDomain other = xen.hypervisor().createDomain("other-guest", 16, P2mLayout.contiguous());
        long theirs = other.mfn(3) << 12;
        xen.hypervisor().writeMachine(theirs, "theirs".getBytes(StandardCharsets.US_ASCII));
        byte[] frameBefore = xen.hypervisor().readMachine(theirs, 4096);
        byte[] guestBefore = new byte[4096];
        host.memory().read(theirs, guestBefore, 0, guestBefore.length);
        long faultsBefore = host.pci(NIC).faultCount();
        assertThat(xen.hypervisor().ownerOf(theirs >>> 12)).isEqualTo(other.domid());

        String fault = String.format("0000:06:0d.0: iommu fault: DMA write at bus address 0x%x: not mapped", theirs);
        assertThatThrownBy(() -> host.pci(NIC).dmaWrite(theirs, "mine".getBytes(StandardCharsets.US_ASCII)))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage(fault);

        assertThat(xen.hypervisor().readMachine(theirs, 6)).asString().isEqualTo("theirs");
        assertThat(xen.hypervisor().readMachine(theirs, 4096)).isEqualTo(frameBefore);
        // nor did it land on the guest's own page at that address, as it would with no translation at all
        byte[] guestAfter = new byte[4096];
        host.memory().read(theirs, guestAfter, 0, guestAfter.length);
        assertThat(guestAfter).isEqualTo(guestBefore);
        assertThat(host.pci(NIC).faultCount()).isEqualTo(faultsBefore + 1);
        assertThat(host.log().messages()).containsOnlyOnce("pci " + fault);
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
    }

    @Test
    void aDeviceReachesItsOwnGuestsFramesWhereverTheyLie() {
        long pfn = 0x2345;
        long maddr = xen.guest().mfn(pfn) << 12;
        host.pci(NIC).dmaWrite(maddr + 8, "ok".getBytes());
        byte[] back = new byte[2];
        host.memory().read((pfn << 12) + 8, back, 0, 2);
        assertThat(back).asString().isEqualTo("ok");
    }

    @Test
    void vfioInTheGuestUsesHypercallMappingsAndFaultsOutsideTheWindow() {
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        host.vfio().bind(NIC);
        assertThat(host.vfio().deviceNodes()).containsExactly("/dev/vfio/0");
        VfioContainer container = host.vfio().openContainer(qemu);
        VfioGroupFile group = host.vfio().openGroup(qemu, 0);
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        long va = qemu.mmap(4 * 4096);
        VfioDmaMapping m = container.mapDma(qemu, va, 4 * 4096, 0x4000_0000L, IommuProt.READ | IommuProt.WRITE);

        host.pci(NIC).dmaWrite(m.iova() + 5000, "vfio in a xen guest".getBytes());
        assertThat(qemu.read(va + 5000, 19)).asString().isEqualTo("vfio in a xen guest");
        assertThatThrownBy(() -> host.pci(NIC).dmaWrite(STRAY, new byte[] {1}))
                .isInstanceOf(IommuFaultException.class);
        assertThat(host.pci(NIC).group().currentDomain().type()).isEqualTo(org.iommu4j.api.DomainType.UNMANAGED);
        assertThat(host.pci(NIC).group().sysfsType()).isEqualTo("DMA");

        assertThat(host.taint().isSet(TaintFlag.USER)).isFalse();
    }

    @Test
    void theGuestsBdfIsRemappedToTheHostDeviceForConfigReadsAndWrites() {
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        host.vfio().bind(NIC);
        VfioContainer container = host.vfio().openContainer(qemu);
        VfioGroupFile group = host.vfio().openGroup(qemu, 0);
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        VfioDeviceFile device = group.getDevice(qemu, NIC);
        GuestPciBus bus = new GuestPciBus(qemu);
        PciAddress guestBdf = PciAddress.parse("0000:00:05.0");
        bus.attach(guestBdf, device);

        assertThat(bus.hostAddress(guestBdf)).hasValue(PciAddress.parse(NIC));
        assertThat(bus.configRead(guestBdf, PciConfigSpace.VENDOR_ID, 2)).isEqualTo(NIC_VENDOR);
        assertThat(bus.configRead(guestBdf, PciConfigSpace.DEVICE_ID, 2)).isEqualTo(NIC_DEVICE);
        assertThat(bus.configRead(guestBdf, PciConfigSpace.VENDOR_ID, 4)).isEqualTo(NIC_DEVICE << 16 | NIC_VENDOR);

        PciConfigSpace hostConfig = host.pci(NIC).config();
        PciConfigSpace strangerConfig = host.pci(STRANGER).config();
        int command = PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_MASTER;
        assertThat(hostConfig.read(PciConfigSpace.COMMAND, 2) & command).isZero();
        bus.configWrite(guestBdf, PciConfigSpace.COMMAND, 2, command);
        bus.configWrite(guestBdf, PciConfigSpace.LATENCY_TIMER, 1, 0x40);
        assertThat(hostConfig.read(PciConfigSpace.COMMAND, 2)).isEqualTo(command);
        assertThat(hostConfig.read(PciConfigSpace.LATENCY_TIMER, 1)).isEqualTo(0x40);
        assertThat(bus.configRead(guestBdf, PciConfigSpace.COMMAND, 2)).isEqualTo(command);
        assertThat(strangerConfig.read(PciConfigSpace.COMMAND, 2)).isZero();
        assertThat(strangerConfig.read(PciConfigSpace.LATENCY_TIMER, 1)).isZero();
        // the guest's own B:D.F is not the host's: the host address is an empty slot to the guest
        assertThat(bus.configRead(PciAddress.parse(NIC), PciConfigSpace.VENDOR_ID, 2)).isEqualTo(0xffff);
    }

    private XenIommuOps.HypercallDomain hypercallDomain() {
        return (XenIommuOps.HypercallDomain) xen.iommuOps().allocateDomain(DomainType.UNMANAGED);
    }

    @Test
    void theHypervisorRefusesToMapAMachineFrameOfDom0OrAnotherGuestAndMapsNothing() {
        XenDomain dom0 = xen.hypervisor().domains().get(0);
        XenDomain other = xen.hypervisor().createDomain("other-guest", 16, P2mLayout.contiguous());
        XenIommuOps.HypercallDomain domain = hypercallDomain();
        long dom0Frame = dom0.mfn(1);

        assertThatThrownBy(() -> domain.mapMachine(0x4000_0000L, dom0Frame << 12, 4096, IommuProt.READ
                | IommuProt.WRITE))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("xen: domain 1 may not map mfn 0x%x: it belongs to domain 0", dom0Frame))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThat(domain.translate(0x4000_0000L, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);

        long theirs = other.mfn(3);
        assertThatThrownBy(() -> domain.mapMachine(0x4000_0000L, theirs << 12, 4096, IommuProt.READ))
                .hasMessage(String.format("xen: domain 1 may not map mfn 0x%x: it belongs to domain 2", theirs))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThat(domain.translate(0x4000_0000L, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);

        // a run that starts on the guest's own frame and runs into a frame it does not own: refused whole
        long own = -1;
        for (long pfn = 0; own < 0; pfn++) {
            long mfn = xen.guest().mfn(pfn);
            if (xen.hypervisor().ownerOf(mfn + 1) != xen.guest().domid()) {
                own = mfn;
            }
        }
        long start = own;
        assertThatThrownBy(() -> domain.mapMachine(0x5000_0000L, start << 12, 2 * 4096, IommuProt.READ))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThat(domain.translate(0x5000_0000L, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(domain.translate(0x5000_1000L, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);

        // the guest's own machine frame is fine, and lands on the guest's page
        long pfn = 0x2345;
        domain.mapMachine(0x6000_0000L, xen.guest().mfn(pfn) << 12, 4096, IommuProt.READ);
        assertThat(domain.translate(0x6000_0000L + 12, IommuProt.READ)).isEqualTo((pfn << 12) + 12);
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
    }

    @Test
    void aFrameTheGuestsOwnP2mPointsAtOutsideItIsCheckedByOwnershipNotTrusted() {
        XenDomain dom0 = xen.hypervisor().domains().get(0);
        XenIommuOps.HypercallDomain domain = hypercallDomain();
        long pfn = 0x300;
        long honest = xen.guest().mfn(pfn);
        long dom0Frame = dom0.mfn(2);
        xen.guest().setMfn(pfn, dom0Frame); // a PV guest keeps its own p2m, and this one lies in it
        try {
            assertThatThrownBy(() -> domain.map(0x4000_0000L, pfn << 12, 4096, IommuProt.WRITE))
                    .hasMessage(String.format("xen: domain 1 may not map mfn 0x%x: it belongs to domain 0",
                            dom0Frame))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
            assertThat(domain.translate(0x4000_0000L, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        } finally {
            xen.guest().setMfn(pfn, honest);
        }
        assertThatThrownBy(() -> domain.map(0, host.memory().size(), 4096, IommuProt.READ))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("xen: domain 1 has no pfn 0x%x (it has 0x%x pages)", xen.guest().pages(),
                        xen.guest().pages()))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        domain.map(0, pfn << 12, 4096, IommuProt.READ);
        assertThat(domain.translate(0, IommuProt.READ)).isEqualTo(pfn << 12);
    }

    @Test
    void aDeviceNotGivenToTheGuestCannotWriteIntoTheGuestsMemory() {
        byte[] secret = "guest page the stranger was never given".getBytes(StandardCharsets.US_ASCII);
        long phys = 0x200000;
        long machine = xen.guest().mfn(phys >>> 12) << 12;
        host.memory().write(phys, secret, 0, secret.length);
        PciDevice stranger = host.pci(STRANGER);

        assertThatThrownBy(() -> stranger.dmaWrite(phys, "0wned".getBytes(StandardCharsets.US_ASCII)))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage("0000:07:00.0: iommu fault: DMA write at bus address 0x200000: not mapped");
        assertThatThrownBy(() -> stranger.dmaWrite(machine, "0wned".getBytes(StandardCharsets.US_ASCII)))
                .isInstanceOf(IommuFaultException.class);
        assertThatThrownBy(() -> stranger.dmaRead(machine, 8)).isInstanceOf(IommuFaultException.class);

        byte[] after = new byte[secret.length];
        host.memory().read(phys, after, 0, after.length);
        assertThat(after).isEqualTo(secret);
        assertThat(stranger.faultCount()).isEqualTo(3);
        assertThat(host.log().messages()).contains(
                "pci 0000:07:00.0: iommu fault: DMA write at bus address 0x200000: not mapped");
        assertThat(stranger.group().sysfsType()).isEqualTo("blocked");
        assertThat(stranger.group().isolated()).isTrue();
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
    }

    @Test
    void aDeviceNotGivenToTheGuestCannotBeUsedThroughVfioUntilPcibackSeizesIt() {
        assertThatThrownBy(() -> host.vfio().bind(STRANGER))
                .isInstanceOf(IommuException.class)
                .hasMessage("vfio-pci 0000:07:00.0: probe with driver vfio-pci failed with error -22: its IOMMU (xen)"
                        + " does not report IOMMU_CAP_CACHE_COHERENCY for it, which VFIO requires: xen: 0000:07:00.0 is"
                        + " not assigned to domain 1 (guest), so the hypervisor blocks its DMA: give it to the guest"
                        + " with xen-pciback.hide=(0000:07:00.0), or write it to xen's new_slot and bind it to"
                        + " pciback")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.pci(STRANGER).driver()).isNull();
        assertThat(host.vfio().deviceNodes()).isEmpty();
        assertThat(host.pci(STRANGER).group().sysfsType()).isEqualTo("blocked");

        LoadedModule module = host.modules().require("xen");
        attribute(module, "new_slot").write(STRANGER);
        attribute(module, "bind").write(STRANGER);
        assertThat(host.pci(STRANGER).group().sysfsType()).isEqualTo("DMA");
        host.vfio().bind(STRANGER);
        assertThat(host.pci(STRANGER).driver()).isEqualTo("vfio-pci");
        assertThat(host.vfio().nodeOf(host.pci(STRANGER).group().id())).isPresent();
    }

    private static ModuleAttribute attribute(LoadedModule module, String name) {
        return module.backend().attributes().stream().filter(a -> a.name().equals(name)).findFirst().orElseThrow();
    }

    @Test
    void unloadingSwiotlbWhileXenUsesItsPoolIsRefused() {
        assertThatThrownBy(() -> host.modules().remove("swiotlb"))
                .hasMessage("Module swiotlb is in use by: xen")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        host.modules().remove("xen");
        host.modules().remove("swiotlb");
        assertThat(host.modules().modules()).isEmpty();
        PciDevice nic = host.pci(NIC);
        assertThat(nic.group()).isNull();
    }
}
