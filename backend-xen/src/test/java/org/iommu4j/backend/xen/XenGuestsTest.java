package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.api.Test;

/**
 * Several guests on one hypervisor: each device reaches only what its own guest mapped for it; a stray DMA at
 * another guest's or Domain-0's frames faults in the hypervisor's IOMMU and writes nothing; a device moves
 * from one guest to another once the first lets it go, and the first's mappings no longer reach.
 */
class XenGuestsTest {
    private static final String NIC = "0000:06:0d.0";
    private static final String DISK = "0000:06:0d.1";
    private static final byte[] PACKET = "a packet for guest a".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] SECRET = "guest b's secret page".getBytes(StandardCharsets.US_ASCII);

    private final XenPlatform platform = Machines.platform("xen-pciback.hide=(06:0d.*)", PciDeviceSpec.of(NIC),
            PciDeviceSpec.of(DISK), PciDeviceSpec.of("0000:00:02.0"));
    private final XenDomain a = Machines.guest(platform, "guest-a", NIC, DISK);
    private final XenDomain b = Machines.guest(platform, "guest-b");

    private static byte[] read(Host host, long phys, int n) {
        byte[] out = new byte[n];
        host.memory().read(phys, out, 0, n);
        return out;
    }

    private static long machineAddress(XenDomain d, long phys) {
        return (d.mfn(phys >>> 12) << 12) | (phys & 0xfff);
    }

    @Test
    void aGuestSeesOnlyTheDevicesItWasGiven() {
        assertThat(a.host().buses().all()).extracting(d -> d.name()).containsExactly(NIC, DISK);
        assertThat(b.host().buses().all()).isEmpty();
        assertThat(platform.dom0().host().buses().all()).hasSize(3);
        assertThat(platform.assignment(NIC)).contains(a);
    }

    @Test
    void theNicsDmaReachesItsGuestsBufferAndAStrayAtTheOtherGuestsPageFaultsWritingNothing() {
        PciDevice nic = a.host().pci(NIC);
        long buffer = a.host().pageAllocator().allocatePages(0, org.iommu4j.api.PageAllocator.NO_LIMIT);
        long dma = a.host().dma().map(nic, buffer, 4096, DmaDirection.FROM_DEVICE);
        nic.dmaWrite(dma + 16, PACKET);
        a.host().dma().unmap(nic, dma, 4096, DmaDirection.FROM_DEVICE);
        assertThat(read(a.host(), buffer + 16, PACKET.length)).isEqualTo(PACKET);

        long victim = 0x300000;
        b.host().memory().write(victim, SECRET, 0, SECRET.length);
        long target = machineAddress(b, victim);
        assertThatThrownBy(() -> nic.dmaWrite(target, "0wned".getBytes(StandardCharsets.US_ASCII)))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage(String.format("%s: iommu fault: DMA write at bus address 0x%x: not mapped", NIC, target));
        assertThat(read(b.host(), victim, SECRET.length)).isEqualTo(SECRET);
        assertThat(platform.readMachine(target, SECRET.length)).isEqualTo(SECRET);
        assertThat(nic.faultCount()).isEqualTo(1);
        assertThat(platform.log().messages()).contains(String.format("(XEN) [VT-D]DMAR:[DMA Write] Request device"
                + " [%s] fault addr 0x%x, d1 (guest-a): not mapped", NIC, target));
    }

    @Test
    void aStrayAtDomain0sFramesFaultsToo() {
        PciDevice nic = a.host().pci(NIC);
        long dom0Page = 0x200000;
        byte[] before = read(platform.dom0().host(), dom0Page, 64);
        long target = machineAddress(platform.dom0(), dom0Page);
        assertThatThrownBy(() -> nic.dmaWrite(target, new byte[64])).isInstanceOf(IommuFaultException.class);
        assertThatThrownBy(() -> nic.dmaRead(target, 64)).isInstanceOf(IommuFaultException.class);
        assertThat(read(platform.dom0().host(), dom0Page, 64)).isEqualTo(before);
        assertThat(platform.log().messages()).contains(String.format("(XEN) [VT-D]DMAR:[DMA Read] Request device"
                + " [%s] fault addr 0x%x, d1 (guest-a): not mapped", NIC, target));
    }

    /**
     * The case the issue found: a device bound to vfio-pci whose group nobody opened wrote into the guest's
     * memory, because the guest's DMA context then reached every frame the guest owned, and a bus address that
     * happened to be one of its machine frames landed on whatever page the m2p named. Now the context holds
     * only what the DMA API mapped for the device, and VFIO maps nothing until a container is set.
     */
    @Test
    void aDeviceBoundToVfioPciWhoseGroupNobodyOpenedReachesNothing() {
        a.host().vfio().bind(DISK);
        PciDevice disk = a.host().pci(DISK);
        for (long phys : new long[] {0x100000, 0x400000, 0x4400000, 0x8000000, 0x10000000 - 0x1000}) {
            long target = machineAddress(a, phys);
            byte[] before = read(a.host(), phys, 23);
            assertThatThrownBy(() -> disk.dmaWrite(target + 0x64, new byte[23]))
                    .isInstanceOf(IommuFaultException.class);
            assertThat(read(a.host(), phys, 23)).isEqualTo(before);
            // bus address == pseudo-physical address reaches nothing either: there is no path around the IOMMU
            assertThatThrownBy(() -> disk.dmaWrite(phys + 0x64, new byte[23])).isInstanceOf(IommuFaultException.class);
        }
        assertThat(disk.faultCount()).isEqualTo(10);
    }

    @Test
    void aDevicePcibackHoldsForGuestsReachesNothingUntilAGuestHasIt() {
        XenPlatform p = Machines.platform("xen-pciback.hide=(06:0d.0)", PciDeviceSpec.of(NIC));
        PciDevice inDom0 = p.dom0().host().pci(NIC);
        long target = machineAddress(p.dom0(), 0x200000);
        assertThatThrownBy(() -> inDom0.dmaWrite(target, new byte[8]))
                .hasMessage(String.format("%s: iommu fault: DMA write at bus address 0x%x: quarantined: assigned to"
                        + " no domain", NIC, target));
        assertThat(p.log().messages()).contains(String.format("(XEN) [VT-D]DMAR:[DMA Write] Request device [%s]"
                + " fault addr 0x%x, dom_io (quarantined for assignment): quarantined: assigned to no domain", NIC,
                target));
    }

    @Test
    void aDeviceMovesToAnotherGuestOnceTheFirstLetsItGoAndTheFirstsMappingsNoLongerReach() {
        PciDevice nicInA = a.host().pci(NIC);
        long bufferA = 0x500000;
        long dmaA = a.host().dma().map(nicInA, bufferA, 4096, DmaDirection.BIDIRECTIONAL);
        nicInA.dmaWrite(dmaA, PACKET);

        a.host().vfio().bind(NIC);
        assertThatThrownBy(() -> platform.detach(NIC))
                .hasMessage("xl: " + NIC + " is in use in d1 (guest-a) by vfio-pci: unbind it there first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThatThrownBy(() -> platform.attach(NIC, b))
                .hasMessage("xl: " + NIC + " is assigned to d1 (guest-a): pci-detach it first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        a.host().vfio().unbind(NIC);
        platform.detach(NIC);
        assertThat(a.host().buses().find(NIC)).isEmpty();
        assertThat(platform.assignment(NIC)).isEmpty();

        platform.attach(NIC, b);
        PciDevice nicInB = b.host().pci(NIC);
        byte[] aBefore = read(a.host(), bufferA, 64);
        assertThatThrownBy(() -> nicInB.dmaWrite(dmaA, new byte[64])).isInstanceOf(IommuFaultException.class);
        assertThat(read(a.host(), bufferA, 64)).isEqualTo(aBefore);

        long bufferB = 0x600000;
        long dmaB = b.host().dma().map(nicInB, bufferB, 4096, DmaDirection.FROM_DEVICE);
        nicInB.dmaWrite(dmaB, PACKET);
        b.host().dma().unmap(nicInB, dmaB, 4096, DmaDirection.FROM_DEVICE);
        assertThat(read(b.host(), bufferB, PACKET.length)).isEqualTo(PACKET);
        assertThat(platform.assignment(NIC)).contains(b);
        assertThat(platform.log().messages()).contains("(XEN) " + NIC + ": deassigned from d1 (guest-a),"
                + " quarantined in dom_io", "(XEN) " + NIC + ": assigned to d2 (guest-b)");
    }

    @Test
    void vfioInAGuestMapsThroughTheHypervisorAndTheDeviceReachesOnlyTheContainersWindow() {
        var qemu = a.host().spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        a.host().vfio().bind(NIC);
        var container = a.host().vfio().openContainer(qemu);
        var group = a.host().vfio().openGroup(qemu, a.host().pci(NIC).group().id());
        group.setContainer(qemu, container);
        container.setIommu(qemu, org.iommu4j.api.Vfio.TYPE1v2_IOMMU);
        long va = qemu.mmap(4 * 4096);
        var m = container.mapDma(qemu, va, 4 * 4096, 0x4000_0000L, org.iommu4j.api.IommuProt.READ
                | org.iommu4j.api.IommuProt.WRITE);
        a.host().pci(NIC).dmaWrite(m.iova() + 5000, PACKET);
        assertThat(qemu.read(va + 5000, PACKET.length)).isEqualTo(PACKET);
        assertThatThrownBy(() -> a.host().pci(NIC).dmaWrite(machineAddress(a, qemu.virtToPhys(va)), PACKET))
                .isInstanceOf(IommuFaultException.class);
        assertThat(a.host().taint().taintedString()).isEqualTo("Not tainted");
    }

    @Test
    void onBareMetalXenDoesNotLoadAndSaysWhy() {
        Host metal = Host.builder().pciDevice(PciDeviceSpec.of(NIC)).build();
        metal.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"), "class path");
        String message = "xen: not running on Xen (xen_domain() is false): xen-swiotlb and the Xen IOMMU driver"
                + " drive a Xen domain's devices only; boot this kernel as a domain of a Xen platform";
        assertThatThrownBy(() -> metal.modules().insert(new XenProvider(), Map.of(), "class path"))
                .isInstanceOf(IommuException.class)
                .hasMessage(message)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        assertThat(metal.modules().find("xen")).isEmpty();
        assertThat(metal.iommu().groups()).isEmpty();
        assertThat(metal.log().messages()).contains(message);
    }

    @Test
    void aSixtyFourGibibyteGuestLoadsWithTheDefaultsAndTheHypervisorKeepsAFewMibibytesForIt() {
        XenPlatform big = XenPlatform.builder().pciDevice(PciDeviceSpec.of(NIC))
                .dom0CommandLine("xen-pciback.hide=(" + NIC + ")").build();
        Machines.loadDriver(big.dom0().host(), Map.of());
        XenDomain guest = big.createGuest("big", 64L << 30, "");
        guest.host().modules().insert(new SwiotlbProvider(), Map.of(), "class path");
        guest.host().modules().insert(new XenProvider(), Map.of(), "class path");
        big.attach(NIC, guest);
        for (int i = 0; i < 3; i++) {
            big.createGuest("side-" + i, 16L << 30, "");
        }
        assertThat(guest.host().log().messages()).contains("xen: swiotlb pool made machine-contiguous below 4 GiB:"
                + " 256 segments");
        long dma = guest.host().dma().map(guest.host().pci(NIC), (60L << 30) + 100, 64, DmaDirection.TO_DEVICE);
        assertThat(guest.host().pci(NIC).dmaRead(dma, 64)).hasSize(64);
        assertThat(big.bookkeepingBytes()).isLessThan(8L << 20);
    }
}
