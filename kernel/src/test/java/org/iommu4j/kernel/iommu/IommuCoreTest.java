package org.iommu4j.kernel.iommu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommu4j.api.BusType;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.Test;

class IommuCoreTest {
    private final Host host = Host.builder()
            .pciDevice(PciDeviceSpec.of("0000:00:07.0"))
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
            .build();

    @Test
    void registeringOpsProbesEveryDeviceIntoGroupsNumberedFromZero() {
        PageTableIommu ops = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, ops, ModuleRef.KERNEL);

        assertThat(host.iommu().groups()).extracting(Group::id).containsExactly(0, 1);
        assertThat(host.pci("0000:00:07.0").group().id()).isZero();
        assertThat(host.pci("0000:06:0d.0").group().id()).isEqualTo(1);
        assertThat(host.pci("0000:06:0d.0").group().isolated()).isTrue();
        assertThat(host.pci("0000:06:0d.0").group().sysfsType()).isEqualTo("DMA");
        assertThat(host.log().messages()).contains("pci 0000:00:07.0: Adding to iommu group 0",
                "pci 0000:06:0d.0: Adding to iommu group 1");
    }

    @Test
    void sysfsShowsGroupsAndEveryDevicesIommuGroupLinkResolvesToItsGroup() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);

        assertThat(host.sysfs().list("/sys/kernel/iommu_groups")).containsExactly("0", "1");
        assertThat(host.sysfs().list("/sys/kernel/iommu_groups/1/devices")).containsExactly("0000:06:0d.0");
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/1/type")).hasValue("DMA");
        // a device behind a bridge: four levels up to /sys, as the seed thread's readlink shows
        assertThat(host.sysfs().readlink("/sys/bus/pci/devices/0000:06:0d.0/iommu_group"))
                .hasValue("../../../../kernel/iommu_groups/1");
        // a device on the root bus sits one level higher
        assertThat(host.sysfs().readlink("/sys/bus/pci/devices/0000:00:07.0/iommu_group"))
                .hasValue("../../../kernel/iommu_groups/0");
        assertThat(host.sysfs().resolve("/sys/bus/pci/devices/0000:06:0d.0/iommu_group"))
                .isEqualTo("/sys/kernel/iommu_groups/1");
        assertThat(host.sysfs().resolve("/sys/kernel/iommu_groups/1/devices/0000:06:0d.0"))
                .isEqualTo("/sys/devices/pci0000:00/0000:00:01.0/0000:06:0d.0");
        assertThat(host.sysfs().read("/sys/bus/pci/devices/0000:06:0d.0/vendor")).hasValue("0x8086");
    }

    @Test
    void hotAddJoinsAGroupAndHotRemoveFreesTheGroupAndItsIdForReuse() {
        PageTableIommu ops = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, ops, ModuleRef.KERNEL);
        PciDevice added = host.buses().addPci(PciDeviceSpec.of("0000:08:00.0"));
        assertThat(added.group().id()).isEqualTo(2);

        host.buses().remove("0000:06:0d.0");
        assertThat(host.iommu().groups()).extracting(Group::id).containsExactly(0, 2);
        assertThat(ops.domains().get(1).isFreed()).isTrue();
        assertThat(host.sysfs().list("/sys/kernel/iommu_groups")).containsExactly("0", "2");
        assertThat(host.log().messages()).contains("pci 0000:06:0d.0: Removing from iommu group 1");

        PciDevice again = host.buses().addPci(PciDeviceSpec.of("0000:09:00.0"));
        assertThat(again.group().id()).isEqualTo(1);
    }

    @Test
    void aSecondDriverForTheSameBusIsRefused() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        assertThatThrownBy(() -> host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL))
                .isInstanceOf(IommuException.class)
                .hasMessage("the pci bus already has IOMMU ops registered by kernel: unload it first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
    }

    @Test
    void unregisteringOpsTakesEveryDeviceOutOfItsGroup() {
        PageTableIommu ops = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, ops, ModuleRef.KERNEL);
        host.iommu().unregisterOps(BusType.PCI, ops);
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(host.pci("0000:06:0d.0").group()).isNull();
        assertThat(host.sysfs().readlink("/sys/bus/pci/devices/0000:06:0d.0/iommu_group")).isEmpty();
    }

    @Test
    void mapRefusesAddressesNotAlignedToTheSmallestPageWithTheKernelsMessage() {
        PageTableIommu ops = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, ops, ModuleRef.KERNEL);
        var domain = host.pci("0000:06:0d.0").group().currentDomain();

        assertThatThrownBy(() -> host.iommu().map(ops, domain, 0x1800, 0x200000, 0x1000, IommuProt.READ))
                .isInstanceOf(IommuException.class)
                .hasMessage("unaligned: iova 0x1800 pa 0x0000000000200000 size 0x1000 min_pagesz 0x1000")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> host.iommu().unmap(ops, domain, 0x1000, 0x10))
                .hasMessage("unaligned: iova 0x1000 size 0x10 min_pagesz 0x1000");
        assertThat(((PageTableIommu.PageTableDomain) domain).mappedPages()).isZero();
    }

    @Test
    void attachingAGroupToAUserDomainMovesItsDevicesAndRestoringReturnsThem() {
        PageTableIommu ops = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, ops, ModuleRef.KERNEL);
        PciDevice nic = host.pci("0000:06:0d.0");
        Group group = nic.group();
        var def = (PageTableIommu.PageTableDomain) group.currentDomain();
        var user = (PageTableIommu.PageTableDomain) ops.allocateDomain(DomainType.UNMANAGED);

        host.iommu().attachGroup(group, user);
        assertThat(group.currentDomain()).isSameAs(user);
        assertThat(group.sysfsType()).isEqualTo("DMA"); // sysfs names the default domain, whatever is attached
        assertThat(user.attached()).containsExactly(nic);
        assertThat(def.attached()).isEmpty();

        host.iommu().restoreDefaultDomain(group);
        assertThat(group.currentDomain()).isSameAs(def);
        assertThat(def.attached()).containsExactly(nic);
        assertThat(user.attached()).isEmpty();
    }

    @Test
    void aFakeGroupHasNoDomainAndIsNotIsolated() {
        PciDevice nic = host.pci("0000:06:0d.0");
        Group fake = host.iommu().allocateGroup("vfio-noiommu", false);
        host.iommu().addDevice(fake, nic);

        assertThat(nic.group()).isSameAs(fake);
        assertThat(fake.currentDomain()).isNull();
        assertThat(fake.isolated()).isFalse();
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/name")).hasValue("vfio-noiommu");
        host.iommu().removeDevice(nic);
        assertThat(host.iommu().groups()).isEmpty();
    }
}
