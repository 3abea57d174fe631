package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciConfigSpace;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.GuestPciBus;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioDeviceFile;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.api.Test;

/** VFIO in a Xen guest: hypercall mappings, the hypervisor's checks, and a nested guest's config space. */
class XenIsolationTest {
    private static final String NIC = "0000:06:0d.0";
    private static final int NIC_VENDOR = 0x10ec;
    private static final int NIC_DEVICE = 0x8168;

    private final XenPlatform platform = Machines.platform("xen-pciback.hide=(" + NIC + ")",
            PciDeviceSpec.of(NIC).withIds(NIC_VENDOR, NIC_DEVICE, 0x020000), PciDeviceSpec.of("0000:07:00.0"));
    private final XenDomain guest = Machines.guest(platform, "guest", NIC);
    private final Host host = guest.host();
    private final UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
    private final VfioContainer container;
    private final VfioGroupFile group;

    XenIsolationTest() {
        host.vfio().bind(NIC);
        container = host.vfio().openContainer(qemu);
        group = host.vfio().openGroup(qemu, host.pci(NIC).group().id());
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
    }

    @Test
    void vfioMapsByHypercallAndTheDeviceFaultsOutsideTheContainersWindow() {
        long va = qemu.mmap(4 * 4096);
        VfioDmaMapping m = container.mapDma(qemu, va, 4 * 4096, 0x4000_0000L, IommuProt.READ | IommuProt.WRITE);
        host.pci(NIC).dmaWrite(m.iova() + 5000, "vfio in a xen guest".getBytes());
        assertThat(qemu.read(va + 5000, 19)).asString().isEqualTo("vfio in a xen guest");
        assertThat(host.pci(NIC).group().currentDomain().type()).isEqualTo(DomainType.UNMANAGED);
        assertThat(host.pci(NIC).group().sysfsType()).isEqualTo("DMA");
        assertThat(host.pci(NIC).group().currentDomain().iovaToPhys(m.iova() + 5000))
                .isEqualTo(qemu.virtToPhys(va + 5000));
        assertThatThrownBy(() -> host.pci(NIC).dmaWrite(0x1000, new byte[] {1}))
                .isInstanceOf(IommuFaultException.class);

        container.unmapDma(qemu, m.iova(), 4 * 4096);
        assertThatThrownBy(() -> host.pci(NIC).dmaWrite(m.iova() + 5000, new byte[] {1}))
                .isInstanceOf(IommuFaultException.class);
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
    }

    @Test
    void aMappingOfMemoryTheGuestDoesNotHaveIsRefusedAndNothingIsMapped() {
        var domain = host.pci(NIC).group().currentDomain();
        assertThatThrownBy(() -> domain.map(0x5000_0000L, host.memory().size() - 4096, 2 * 4096, IommuProt.READ))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("xen: d1 has no pfn 0x%x (it has 0x%x pages)", guest.pages(),
                        guest.pages()))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(domain.iovaToPhys(0x5000_0000L)).isEqualTo(-1);
    }

    @Test
    void theNestedGuestsBdfIsRemappedToTheDeviceForConfigReadsAndWrites() {
        VfioDeviceFile device = group.getDevice(qemu, NIC);
        GuestPciBus bus = new GuestPciBus(qemu);
        PciAddress guestBdf = PciAddress.parse("0000:00:05.0");
        bus.attach(guestBdf, device);

        assertThat(bus.hostAddress(guestBdf)).hasValue(PciAddress.parse(NIC));
        assertThat(bus.configRead(guestBdf, PciConfigSpace.VENDOR_ID, 2)).isEqualTo(NIC_VENDOR);
        assertThat(bus.configRead(guestBdf, PciConfigSpace.DEVICE_ID, 2)).isEqualTo(NIC_DEVICE);
        int command = PciConfigSpace.COMMAND_MEMORY | PciConfigSpace.COMMAND_MASTER;
        bus.configWrite(guestBdf, PciConfigSpace.COMMAND, 2, command);
        assertThat(host.pci(NIC).config().read(PciConfigSpace.COMMAND, 2)).isEqualTo(command);
        assertThat(bus.configRead(PciAddress.parse(NIC), PciConfigSpace.VENDOR_ID, 2)).isEqualTo(0xffff);
    }
}
