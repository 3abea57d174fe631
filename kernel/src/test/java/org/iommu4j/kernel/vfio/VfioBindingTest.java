package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.Test;

class VfioBindingTest {
    private final Host host = Host.builder()
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDriver("e1000"))
            .pciDevice(PciDeviceSpec.of("0000:08:00.0"))
            .build();

    @Test
    void withoutAnIommuBindingFailsWithTheKernelsReason() {
        assertThatThrownBy(() -> host.vfio().bind("0000:06:0d.0"))
                .isInstanceOf(IommuException.class)
                .hasMessage("vfio-pci 0000:06:0d.0: probe with driver vfio-pci failed with error -22: the device has"
                        + " no iommu group; load an IOMMU backend that manages it, or one that provides groups for"
                        + " devices without an IOMMU")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.pci("0000:06:0d.0").driver()).isNull();
        assertThat(host.log().messages()).contains("vfio-pci 0000:06:0d.0: probe with driver vfio-pci failed with"
                + " error -22");
        assertThat(host.vfio().deviceNodes()).isEmpty();
    }

    @Test
    void onlyDevicesAskedForAreBoundAndEachGetsItsNode() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        assertThat(host.vfio().deviceNodes()).isEmpty();

        host.vfio().bind("0000:08:00.0");
        assertThat(host.pci("0000:08:00.0").driver()).isEqualTo("vfio-pci");
        assertThat(host.pci("0000:06:0d.0").driver()).isNull();
        int id = host.pci("0000:08:00.0").group().id();
        assertThat(host.vfio().deviceNodes()).containsExactly("/dev/vfio/" + id);
        assertThat(host.sysfs().readlink("/sys/bus/pci/devices/0000:08:00.0/driver"))
                .hasValue("../../../../bus/pci/drivers/vfio-pci");
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");

        host.vfio().unbind("0000:08:00.0");
        assertThat(host.pci("0000:08:00.0").driver()).isNull();
        assertThat(host.vfio().deviceNodes()).isEmpty();
        assertThat(host.pci("0000:08:00.0").group().id()).isEqualTo(id);
    }

    @Test
    void aDeviceAHostDriverOwnsIsBusyAndUnbindingWhatVfioDoesNotHoldIsInvalid() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        assertThatThrownBy(() -> host.vfio().bind("0000:07:00.0"))
                .hasMessage("device 0000:07:00.0 is already bound to e1000: unbind it first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThatThrownBy(() -> host.vfio().unbind("0000:07:00.0"))
                .hasMessage("device 0000:07:00.0 is not bound to VFIO (driver: e1000)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> host.vfio().bind("0000:09:00.0"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
    }

    @Test
    void aDeviceOpenByAUserCannotBeUnbound() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        host.vfio().bind("0000:06:0d.0");
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        VfioContainer container = host.vfio().openContainer(qemu);
        VfioGroupFile group = host.vfio().openGroup(qemu, host.pci("0000:06:0d.0").group().id());
        group.setContainer(qemu, container);
        container.setIommu(qemu, org.iommu4j.api.Vfio.TYPE1v2_IOMMU);
        group.getDevice(qemu, "0000:06:0d.0");

        assertThatThrownBy(() -> host.vfio().unbind("0000:06:0d.0"))
                .hasMessage("device 0000:06:0d.0 is open by qemu:" + qemu.pid() + ": close it first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        qemu.exit();
        host.vfio().unbind("0000:06:0d.0");
        assertThat(host.pci("0000:06:0d.0").driver()).isNull();
    }
}
