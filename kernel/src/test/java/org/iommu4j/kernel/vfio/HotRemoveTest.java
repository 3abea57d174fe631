package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.iommu4j.kernel.testing.UnisolatedTestDriver;
import org.junit.jupiter.api.Test;

class HotRemoveTest {
    private final Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
    private final UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_SYS_RAWIO));

    @Test
    void removingAHeldDeviceRevokesEveryHandleAndLeaksNothing() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        host.vfio().bind("0000:06:0d.0");
        VfioContainer container = host.vfio().openContainer(qemu);
        VfioGroupFile group = host.vfio().openGroup(qemu, host.pci("0000:06:0d.0").group().id());
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        VfioDeviceFile device = group.getDevice(qemu, "0000:06:0d.0");
        long va = qemu.mmap(4 * 4096);
        container.mapDma(qemu, va, 4 * 4096, 0x10000, IommuProt.READ | IommuProt.WRITE);

        host.buses().remove("0000:06:0d.0");

        assertThatThrownBy(() -> device.configRead(qemu, 0, 2))
                .hasMessage("device 0000:06:0d.0 has been removed")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        assertThatThrownBy(() -> group.status(qemu))
                .hasMessage(group.node() + " is gone: its devices were removed or unbound")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        assertThat(container.hasIommu()).isFalse();
        assertThat(container.mappings()).isEmpty();
        assertThat(qemu.lockedPages()).isZero();
        assertThat(host.vfio().deviceNodes()).isEmpty();
        assertThat(host.iommu().groups()).isEmpty();
        group.close(qemu);
        container.close(qemu);
    }

    @Test
    void removingADeviceInAFakeGroupTearsTheGroupDownButKeepsTheTaint() {
        UnisolatedTestDriver driver = new UnisolatedTestDriver(host.iommu());
        host.vfioDrivers().register(driver, ModuleRef.KERNEL);
        host.vfio().bind("0000:06:0d.0");
        VfioGroupFile group = host.vfio().openGroup(qemu, "/dev/vfio/noiommu-0");

        host.buses().remove("0000:06:0d.0");
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(host.sysfs().list("/sys/kernel/iommu_groups")).isEmpty();
        assertThat(host.taint().taintedString()).isEqualTo("Tainted: G     U" + " ".repeat(13));
        group.close(qemu);
    }

    @Test
    void unbindingReleasesAFakeGroupAndRebindingMakesANewOne() {
        host.vfioDrivers().register(new UnisolatedTestDriver(host.iommu()), ModuleRef.KERNEL);
        host.vfio().bind("0000:06:0d.0");
        host.vfio().unbind("0000:06:0d.0");
        assertThat(host.pci("0000:06:0d.0").group()).isNull();
        assertThat(host.vfio().deviceNodes()).isEmpty();
        host.vfio().bind("0000:06:0d.0");
        assertThat(host.vfio().deviceNodes()).containsExactly("/dev/vfio/noiommu-0");
    }

    @Test
    void unregisteringTheDriverThatMadeFakeGroupsUnbindsTheirDevices() {
        UnisolatedTestDriver driver = new UnisolatedTestDriver(host.iommu());
        host.vfioDrivers().register(driver, ModuleRef.KERNEL);
        host.vfio().bind("0000:06:0d.0");
        host.vfioDrivers().unregister(driver);
        assertThat(host.pci("0000:06:0d.0").driver()).isNull();
        assertThat(host.pci("0000:06:0d.0").group()).isNull();
    }
}
