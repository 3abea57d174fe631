package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciConfigSpace;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.GuestPciBus;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioDeviceFile;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.junit.jupiter.api.Test;

/** The hypervisor isolates: what noiommu lets a device do, Xen refuses. */
class XenIsolationTest {
    private static final String NIC = "0000:06:0d.0";
    private static final long STRAY = 0x1000; // kernel memory of the guest as a physical address, dom0's as a machine one
    private final Host host = Host.builder()
            .commandLine("xen.hide=(" + NIC + ")")
            .pciDevice(PciDeviceSpec.of(NIC))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0"))
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
        xen.hypervisor().writeMachine(theirs, "theirs".getBytes());
        assertThatThrownBy(() -> host.pci(NIC).dmaWrite(theirs, "mine".getBytes()))
                .isInstanceOf(IommuFaultException.class);
        assertThat(xen.hypervisor().readMachine(theirs, 6)).asString().isEqualTo("theirs");
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
        assertThat(host.pci(NIC).group().sysfsType()).isEqualTo("unmanaged");

        VfioDeviceFile device = group.getDevice(qemu, NIC);
        GuestPciBus bus = new GuestPciBus(qemu);
        bus.attach(PciAddress.parse("0000:00:05.0"), device);
        assertThat(bus.configRead(PciAddress.parse("0000:00:05.0"), PciConfigSpace.VENDOR_ID, 2)).isEqualTo(0x8086);
        assertThat(host.taint().isSet(TaintFlag.USER)).isFalse();
    }

    @Test
    void theHypervisorRefusesToMapAFrameTheGuestDoesNotOwn() {
        var domain = xen.hypervisor();
        assertThatThrownBy(() -> domain.validateMapping(xen.guest(), xen.guest().pages()))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("xen: domain 1 has no pfn 0x%x (it has 0x%x pages)", xen.guest().pages(),
                        xen.guest().pages()))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        host.vfio().bind(NIC);
        var ops = host.iommu().ops(org.iommu4j.api.BusType.PCI).orElseThrow();
        var unmanaged = ops.allocateDomain(DomainType.UNMANAGED);
        assertThatThrownBy(() -> unmanaged.map(0, host.memory().size(), 4096, IommuProt.READ))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThat(unmanaged.translate(0, IommuProt.READ)).isEqualTo(org.iommu4j.api.IommuDomain.FAULT_NOT_MAPPED);
    }

    @Test
    void aDeviceNotGivenToTheGuestCannotBeUsedThroughVfio() {
        assertThatThrownBy(() -> host.vfio().bind("0000:07:00.0"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.pci("0000:07:00.0").group()).isNull();
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
