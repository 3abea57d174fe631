package org.iommu4j.kernel.iommu;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommu4j.api.BusType;
import org.iommu4j.api.IommuCore;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.PciAcs;
import org.iommu4j.api.PciBridge;
import org.iommu4j.api.PciBridgeType;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.Test;

class PciDeviceGroupTest {
    private static final PciBridge ROOT_ACS = PciBridge.of("0000:00:1c.0", PciBridgeType.ROOT_PORT, 2)
            .withAcs(PciAcs.SV | PciAcs.RR | PciAcs.CR | PciAcs.UF);

    private static Host registered(PciDeviceSpec... specs) {
        Host.Builder b = Host.builder();
        for (PciDeviceSpec s : specs) {
            b.pciDevice(s);
        }
        Host host = b.build();
        host.iommu().registerOps(BusType.PCI, new PageTableIommu().pciGrouping(), ModuleRef.KERNEL);
        return host;
    }

    private static int group(Host host, String bdf) {
        return host.pci(bdf).group().id();
    }

    @Test
    void twoFunctionsWithoutAcsShareAGroup() {
        Host host = registered(PciDeviceSpec.of("0000:02:00.0").below(ROOT_ACS).multifunction(0),
                PciDeviceSpec.of("0000:02:00.1").below(ROOT_ACS).multifunction(0));
        assertThat(host.pci("0000:02:00.0").acsIsolates()).isFalse();
        assertThat(group(host, "0000:02:00.1")).isEqualTo(group(host, "0000:02:00.0"));
        assertThat(host.iommu().groups()).hasSize(1);
    }

    @Test
    void twoFunctionsWithAcsGetAGroupEach() {
        int acs = PciAcs.SV | PciAcs.RR | PciAcs.CR | PciAcs.UF;
        Host host = registered(PciDeviceSpec.of("0000:02:00.0").below(ROOT_ACS).multifunction(acs),
                PciDeviceSpec.of("0000:02:00.1").below(ROOT_ACS).multifunction(acs));
        assertThat(host.pci("0000:02:00.0").acsIsolates()).isTrue();
        assertThat(group(host, "0000:02:00.1")).isNotEqualTo(group(host, "0000:02:00.0"));
    }

    @Test
    void devicesBehindAPcieToPciBridgeShareOneGroupAndAHotPluggedOneJoinsIt() {
        PciBridge bridge = ROOT_ACS.child("0000:02:00.0", PciBridgeType.PCIE_TO_PCI_BRIDGE, 3);
        Host host = registered(PciDeviceSpec.of("0000:03:04.0").below(bridge),
                PciDeviceSpec.of("0000:03:05.0").below(bridge), PciDeviceSpec.of("0000:00:02.0"));
        int shared = group(host, "0000:03:04.0");
        assertThat(group(host, "0000:03:05.0")).isEqualTo(shared);
        assertThat(host.pci("0000:03:05.0").dmaAliases()).containsExactly(0x0328, 0x0300);

        PciDevice added = host.buses().addPci(PciDeviceSpec.of("0000:03:06.0").below(bridge));
        assertThat(added.group().id()).isEqualTo(shared);
        assertThat(group(host, "0000:00:02.0")).isNotEqualTo(shared);
        assertThat(host.sysfs().list("/sys/kernel/iommu_groups/" + shared + "/devices"))
                .containsExactly("0000:03:04.0", "0000:03:05.0", "0000:03:06.0");
    }

    @Test
    void aRootPortWithoutAcsPutsEverythingBelowItInOneGroupAndAcsOnTheSwitchPathSeparates() {
        PciBridge bare = PciBridge.of("0000:00:01.0", PciBridgeType.ROOT_PORT, 1);
        PciBridge up = ROOT_ACS.child("0000:02:00.0", PciBridgeType.SWITCH_UPSTREAM_PORT, 3);
        int acs = PciAcs.SV | PciAcs.RR | PciAcs.CR | PciAcs.UF;
        PciBridge down1 = up.child("0000:03:01.0", PciBridgeType.SWITCH_DOWNSTREAM_PORT, 4).withAcs(acs);
        PciBridge down2 = up.child("0000:03:02.0", PciBridgeType.SWITCH_DOWNSTREAM_PORT, 5).withAcs(acs);
        Host host = registered(PciDeviceSpec.of("0000:01:00.0").below(bare),
                PciDeviceSpec.of("0000:04:00.0").below(down1), PciDeviceSpec.of("0000:05:00.0").below(down2));
        host.buses().addPci(PciDeviceSpec.of("0000:01:00.1").below(bare));
        assertThat(group(host, "0000:01:00.1")).isEqualTo(group(host, "0000:01:00.0"));
        assertThat(group(host, "0000:04:00.0")).isNotEqualTo(group(host, "0000:05:00.0"));
    }

    @Test
    void aConventionalBridgeAliasesItsDevicesToItsOwnRequesterId() {
        PciBridge legacy = PciBridge.of("0000:00:1e.0", PciBridgeType.PCI_BRIDGE, 6);
        Host host = registered(PciDeviceSpec.of("0000:06:0d.0").below(legacy),
                PciDeviceSpec.of("0000:06:0e.0").below(legacy));
        assertThat(host.pci("0000:06:0d.0").dmaAliases()).containsExactly(0x0668, 0x00f0);
        assertThat(group(host, "0000:06:0e.0")).isEqualTo(group(host, "0000:06:0d.0"));
        assertThat(host.sysfs().resolve("/sys/bus/pci/devices/0000:06:0d.0"))
                .isEqualTo("/sys/devices/pci0000:00/0000:00:1e.0/0000:06:0d.0");
        assertThat(host.sysfs().read("/sys/devices/pci0000:00/0000:00:1e.0/secondary_bus_number")).hasValue("6");
    }

    @Test
    void aDmaAliasQuirkJoinsTheFunctionItAliases() {
        Host host = registered(PciDeviceSpec.of("0000:00:14.0"), PciDeviceSpec.of("0000:00:14.2").withDmaAlias(0xa0));
        assertThat(group(host, "0000:00:14.2")).isEqualTo(group(host, "0000:00:14.0"));
    }

    @Test
    void theDriverGetsItsOwnDomainAndPrivateDataBack() {
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:00:07.0")).build();
        PageTableIommu ops = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, ops, ModuleRef.KERNEL);
        IommuCore core = host.iommu().view(ModuleRef.KERNEL);
        PciDevice dev = host.pci("0000:00:07.0");

        assertThat(core.domainOf(dev)).containsSame(ops.domains().get(0));
        core.setDevicePrivate(dev, "context entry 7");
        assertThat(core.devicePrivate(dev)).hasValue("context entry 7");
        host.iommu().claimDmaOwner(dev.group(), "vfio");
        assertThat(core.domainOf(dev)).isEmpty(); // the core's blocking domain is not the driver's
        host.iommu().releaseDmaOwner(dev.group());
        host.buses().remove("0000:00:07.0");
        assertThat(core.devicePrivate(dev)).isEmpty();
    }

    @Test
    void aTwoMegabyteAlignedMapUsesOneTwoMegabyteLeafAndAPartialUnmapTakesItWhole() {
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:00:07.0")).build();
        PageTableIommu ops = new PageTableIommu().pageSizes((1L << 12) | (1L << 21) | (1L << 30));
        host.iommu().registerOps(BusType.PCI, ops, ModuleRef.KERNEL);
        var domain = (PageTableIommu.PageTableDomain) ops.allocateDomain(org.iommu4j.api.DomainType.UNMANAGED);

        host.iommu().map(ops, domain, 0x4000_0000L, 0x0020_0000L, 1L << 21, IommuProt.READ);
        assertThat(domain.table().leafCount(1L << 21)).isEqualTo(1);
        assertThat(domain.table().leafCount(1L << 12)).isZero();

        // 4 KiB before a 2 MiB boundary, 2 MiB, then 4 KiB: 1 + 1 + 1 leaves
        host.iommu().map(ops, domain, 0x8000_0000L - 0x1000, 0x0080_0000L - 0x1000, (1L << 21) + 0x2000,
                IommuProt.READ);
        assertThat(domain.table().leafCount(1L << 21)).isEqualTo(2);
        assertThat(domain.table().leafCount(1L << 12)).isEqualTo(2);

        assertThat(host.iommu().unmap(ops, domain, 0x4000_0000L + 0x3000, 0x1000)).isEqualTo(1L << 21);
        assertThat(domain.translate(0x4000_0000L, IommuProt.READ)).isNegative();
    }
}
