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
    private PageTableIommu.PageTableDomain translating(PageTableIommu iommu) {
        host.iommu().registerOps(BusType.PCI, iommu, ModuleRef.KERNEL);
        return (PageTableIommu.PageTableDomain) nic.group().currentDomain();
    }

    private static byte[] pattern(int length, int salt) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (i * 31 + salt);
        }
        return b;
    }

    @Test
    void aTransferOverPhysicallyContiguousPagesLandsWholeAndReadsBackWhole() {
        PageTableIommu iommu = new PageTableIommu();
        var domain = translating(iommu);
        host.iommu().map(iommu, domain, 0x80000, 0x500000, 0x3000, IommuProt.READ | IommuProt.WRITE);
        byte[] data = pattern(0x2400, 7);

        nic.dmaWrite(0x80a00, data);

        byte[] back = new byte[data.length];
        host.memory().read(0x500a00, back, 0, back.length);
        assertThat(back).isEqualTo(data);
        assertThat(nic.dmaRead(0x80a00, data.length)).isEqualTo(data);
        byte[] around = new byte[0xa00];
        host.memory().read(0x500000, around, 0, around.length);
        assertThat(around).containsOnly(0);
    }

    @Test
    void aTransferOverPagesThatAreContiguousOnlyInPartsLandsPageByPage() {
        PageTableIommu iommu = new PageTableIommu();
        var domain = translating(iommu);
        // iova pages 0x90000 and 0x91000 are one physical run, 0x92000 is elsewhere, 0x93000 follows it
        host.iommu().map(iommu, domain, 0x90000, 0x600000, 0x2000, IommuProt.READ | IommuProt.WRITE);
        host.iommu().map(iommu, domain, 0x92000, 0x700000, 0x2000, IommuProt.READ | IommuProt.WRITE);
        byte[] data = pattern(0x3800, 3);

        nic.dmaWrite(0x90400, data);

        byte[] first = new byte[0x1c00];
        byte[] second = new byte[0x1c00];
        host.memory().read(0x600400, first, 0, first.length);
        host.memory().read(0x700000, second, 0, second.length);
        assertThat(first).isEqualTo(java.util.Arrays.copyOfRange(data, 0, 0x1c00));
        assertThat(second).isEqualTo(java.util.Arrays.copyOfRange(data, 0x1c00, data.length));
        assertThat(nic.dmaRead(0x90400, data.length)).isEqualTo(data);
    }

    @Test
    void aContiguousTransferWhoseLastPageIsUnmappedFaultsThereAndWritesNothing() {
        PageTableIommu iommu = new PageTableIommu();
        var domain = translating(iommu);
        host.iommu().map(iommu, domain, 0xa0000, 0x800000, 0x3000, IommuProt.READ | IommuProt.WRITE);
        host.iommu().unmap(iommu, domain, 0xa2000, 0x1000);

        assertThatThrownBy(() -> nic.dmaWrite(0xa0000, pattern(0x2001, 1)))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage("0000:06:0d.0: iommu fault: DMA write at bus address 0xa2000: not mapped");
        byte[] page = new byte[0x2000];
        host.memory().read(0x800000, page, 0, page.length);
        assertThat(page).containsOnly(0);
        assertThat(nic.faultCount()).isEqualTo(1);
    }

    @Test
    void aOnePageAccessAfterItsUnmapFaultsAsNotMappedAndAReadOnlyPageRefusesWritesInsideOnePage() {
        PageTableIommu iommu = new PageTableIommu();
        var domain = translating(iommu);
        host.iommu().map(iommu, domain, 0xb0000, 0x900000, 0x1000, IommuProt.READ | IommuProt.WRITE);
        host.iommu().map(iommu, domain, 0xb1000, 0x901000, 0x1000, IommuProt.READ);
        nic.dmaWrite(0xb0010, PACKET);
        assertThat(nic.dmaRead(0xb0010, PACKET.length)).isEqualTo(PACKET);

        host.iommu().unmap(iommu, domain, 0xb0000, 0x1000);

        assertThatThrownBy(() -> nic.dmaRead(0xb0010, PACKET.length))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage("0000:06:0d.0: iommu fault: DMA read at bus address 0xb0010: not mapped");
        assertThatThrownBy(() -> nic.dmaWrite(0xb1ff0, new byte[16]))
                .isInstanceOf(IommuFaultException.class)
                .hasMessage("0000:06:0d.0: iommu fault: DMA write at bus address 0xb1ff0: mapping does not allow"
                        + " writes");
        assertThat(nic.faultCount()).isEqualTo(2);
        byte[] back = new byte[PACKET.length];
        host.memory().read(0x900010, back, 0, back.length);
        assertThat(back).isEqualTo(PACKET);
    }
}
