package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.Test;

class DeviceDmaTest {
    private static final byte[] PACKET = "ether frame: dst=ff:ff:ff:ff:ff:ff".getBytes(StandardCharsets.US_ASCII);

    private final Host host = Host.builder()
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(32)))
            .build();
    private final PciDevice nic = host.pci("0000:06:0d.0");

    @Test
    void withoutAnIommuADeviceWriteLandsAtThePhysicalAddressItNamed() {
        long phys = 0x1234_5ffaL; // crosses a page boundary
        nic.dmaWrite(phys, PACKET);

        byte[] back = new byte[PACKET.length];
        host.memory().read(phys, back, 0, back.length);
        assertThat(back).isEqualTo(PACKET);
        assertThat(nic.dmaRead(phys, PACKET.length)).isEqualTo(PACKET);
        assertThat(nic.faultCount()).isZero();
    }

    @Test
    void underAnIommuInPassThroughAWriteLandsAtThePhysicalAddressItNamed() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu().passThrough(), ModuleRef.KERNEL);
        assertThat(nic.group()).isNotNull();
        assertThat(nic.group().sysfsType()).isEqualTo("identity");
        assertThat(nic.group().currentDomain()).isNull();
        long phys = 0x2345_6ffaL;
        nic.dmaWrite(phys, PACKET);

        byte[] back = new byte[PACKET.length];
        host.memory().read(phys, back, 0, back.length);
        assertThat(back).isEqualTo(PACKET);
        assertThat(nic.faultCount()).isZero();
    }

    @Test
    void underATranslatingDomainAWriteToAMappedIovaLandsWhereThePageTableSays() {
        PageTableIommu iommu = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, iommu, ModuleRef.KERNEL);
        Group group = nic.group();
        PageTableIommu.PageTableDomain domain = (PageTableIommu.PageTableDomain) group.currentDomain();
        // two iova pages mapped to two physical pages that are far apart
        host.iommu().map(iommu, domain, 0x10000, 0x300000, 0x1000, IommuProt.READ | IommuProt.WRITE);
        host.iommu().map(iommu, domain, 0x11000, 0x100000, 0x1000, IommuProt.READ | IommuProt.WRITE);

        nic.dmaWrite(0x10ff0, PACKET);

        byte[] first = new byte[16];
        byte[] second = new byte[PACKET.length - 16];
        host.memory().read(0x300ff0, first, 0, 16);
        host.memory().read(0x100000, second, 0, second.length);
        assertThat(first).isEqualTo(java.util.Arrays.copyOfRange(PACKET, 0, 16));
        assertThat(second).isEqualTo(java.util.Arrays.copyOfRange(PACKET, 16, PACKET.length));
        assertThat(nic.dmaRead(0x10ff0, PACKET.length)).isEqualTo(PACKET);
    }

    @Test
    void aWriteToAnUnmappedIovaFaultsAndWritesNothingAnywhere() {
        PageTableIommu iommu = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, iommu, ModuleRef.KERNEL);
        var domain = (PageTableIommu.PageTableDomain) nic.group().currentDomain();
        host.iommu().map(iommu, domain, 0x10000, 0x300000, 0x1000, IommuProt.WRITE);
        long residentBefore = host.memory().residentBytes();

        // the first page is mapped, the second is not: the whole access must fail before any byte moves
        assertThatThrownBy(() -> nic.dmaWrite(0x10ff0, PACKET))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage("0000:06:0d.0: iommu fault: DMA write at bus address 0x11000: not mapped")
                .satisfies(e -> {
                    IommuFaultException f = (IommuFaultException) e;
                    assertThat(f.errno()).isEqualTo(Errno.EFAULT);
                    assertThat(f.address()).isEqualTo(0x11000);
                    assertThat(f.isWrite()).isTrue();
                });

        byte[] page = new byte[4096];
        host.memory().read(0x300000, page, 0, page.length);
        assertThat(page).containsOnly(0);
        assertThat(host.memory().residentBytes()).isEqualTo(residentBefore);
        assertThat(nic.faultCount()).isEqualTo(1);
        assertThat(host.deviceDma().faultCount()).isEqualTo(1);
        assertThat(host.log().messages()).contains(
                "pci 0000:06:0d.0: iommu fault: DMA write at bus address 0x11000: not mapped");
    }

    @Test
    void aReadOnlyMappingRefusesDeviceWritesButServesReads() {
        PageTableIommu iommu = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, iommu, ModuleRef.KERNEL);
        var domain = (PageTableIommu.PageTableDomain) nic.group().currentDomain();
        host.memory().write(0x200000, PACKET, 0, PACKET.length);
        host.iommu().map(iommu, domain, 0x40000, 0x200000, 0x1000, IommuProt.READ);

        assertThat(nic.dmaRead(0x40000, PACKET.length)).isEqualTo(PACKET);
        assertThatThrownBy(() -> nic.dmaWrite(0x40000, new byte[] {1}))
                .hasMessage("0000:06:0d.0: iommu fault: DMA write at bus address 0x40000: mapping does not allow"
                        + " writes");
        byte[] back = new byte[PACKET.length];
        host.memory().read(0x200000, back, 0, back.length);
        assertThat(back).isEqualTo(PACKET);
    }

    @Test
    void aDeviceCannotDriveAddressesBeyondItsDmaMask() {
        PciDevice narrow = host.pci("0000:07:00.0");
        assertThatThrownBy(() -> narrow.dmaWrite(0x1_0000_0000L, PACKET))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage("0000:07:00.0: iommu fault: DMA write at bus address 0x100000000: beyond the"
                        + " device's DMA mask 0xffffffff");
    }

    @Test
    void withoutAnIommuAnAddressPastTheEndOfMemoryFaults() {
        assertThatThrownBy(() -> nic.dmaRead(host.memory().size() - 4, 8))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage("0000:06:0d.0: iommu fault: DMA read at bus address 0x3ffffffc: no memory there"
                        + " (memory ends at 0x40000000)");
    }

    @Test
    void aRemovedDeviceCannotDma() {
        host.buses().remove("0000:06:0d.0");
        assertThatThrownBy(() -> nic.dmaWrite(0, PACKET))
                .isInstanceOf(IommuException.class)
                .hasMessage("device 0000:06:0d.0 has been removed")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
    }
}
