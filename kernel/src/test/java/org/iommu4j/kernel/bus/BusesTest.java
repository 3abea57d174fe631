package org.iommu4j.kernel.bus;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.iommu4j.api.BusListener;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.DeviceDriver;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.ModuleRef;
import org.junit.jupiter.api.Test;

class BusesTest {
    private final Host host = Host.builder()
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDriver("e1000"))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0"))
            .platformDevice(PlatformDeviceSpec.of("fsl-dma.0"))
            .build();

    @Test
    void devicesAreFoundByNameAndListedInAddressOrder() {
        assertThat(host.buses().devices(BusType.PCI)).extracting(Device::name)
                .containsExactly("0000:06:0d.0", "0000:07:00.0");
        assertThat(host.buses().find("fsl-dma.0")).isPresent();
        assertThat(host.pci("0000:06:0d.0").driver()).isEqualTo("e1000");
        assertThatThrownBy(() -> host.pci("0000:01:00.0"))
                .isInstanceOf(IommuException.class)
                .hasMessage("no PCI device at 0000:01:00.0; present: [0000:06:0d.0, 0000:07:00.0, fsl-dma.0]")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
    }

    @Test
    void bindingRunsTheDriversProbeAndABoundDeviceIsBusy() {
        List<String> probed = new ArrayList<>();
        host.buses().registerDriver(new DeviceDriver() {
            @Override
            public String name() {
                return "picky";
            }

            @Override
            public BusType bus() {
                return BusType.PCI;
            }

            @Override
            public void probe(Device device) {
                if (!device.name().equals("0000:07:00.0")) {
                    throw new IommuException(Errno.ENODEV, "picky: not mine");
                }
                probed.add(device.name());
            }
        }, ModuleRef.KERNEL);
        PciDevice other = host.pci("0000:07:00.0");

        host.buses().unbind(host.pci("0000:06:0d.0"));
        assertThatThrownBy(() -> host.buses().bind(host.pci("0000:06:0d.0"), "picky")).hasMessage("picky: not mine");
        assertThat(host.pci("0000:06:0d.0").driver()).isNull();

        host.buses().bind(other, "picky");
        assertThat(probed).containsExactly("0000:07:00.0");
        assertThat(other.logPrefix()).isEqualTo("picky 0000:07:00.0");
        assertThatThrownBy(() -> host.buses().bind(other, "e1000"))
                .hasMessage("device 0000:07:00.0 is already bound to picky: unbind it first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThatThrownBy(() -> host.buses().bind(host.pci("0000:06:0d.0"), "nvme"))
                .hasMessage("no driver named nvme on the pci bus; registered: [vfio-pci, e1000, picky]");
        assertThat(host.sysfs().readlink("/sys/bus/pci/devices/0000:07:00.0/driver"))
                .hasValue("../../../../bus/pci/drivers/picky");
    }

    @Test
    void listenersHearAddsBindsAndRemovesWithTheDeviceGoneBeforeTheyRun() {
        List<String> events = new ArrayList<>();
        host.buses().addListener(new BusListener() {
            @Override
            public void deviceAdded(Device device) {
                events.add("added " + device.name());
            }

            @Override
            public void deviceRemoved(Device device) {
                events.add("removed " + device.name() + " present=" + device.isPresent());
            }

            @Override
            public void driverUnbound(Device device, String driver) {
                events.add("unbound " + driver);
            }
        }, ModuleRef.KERNEL);

        host.buses().addPci(PciDeviceSpec.of("0000:08:00.0"));
        host.buses().remove("0000:06:0d.0");
        assertThat(events).containsExactly("added 0000:08:00.0", "removed 0000:06:0d.0 present=false",
                "unbound e1000");
        assertThat(host.buses().find("0000:06:0d.0")).isEmpty();
        assertThatThrownBy(() -> host.buses().addPci(PciDeviceSpec.of("0000:07:00.0")))
                .hasMessage("a device named 0000:07:00.0 is already on the pci bus");
    }

    @Test
    void firmwareAssignsEachBar0AnAlignedSlotOfTheMmioWindow() {
        Host h = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
                .pciDevice(PciDeviceSpec.of("0000:07:00.0")).build();
        assertThat(h.pci("0000:06:0d.0").config().read(PciConfigSpace.BAR0, 4)).isEqualTo(0xe000_0000);
        assertThat(h.pci("0000:07:00.0").config().read(PciConfigSpace.BAR0, 4)).isEqualTo(0xe002_0000);
        assertThatThrownBy(() -> h.buses().addPci(PciDeviceSpec.of("0000:07:00.0")))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EEXIST);
        assertThat(h.buses().addPci(PciDeviceSpec.of("0000:08:00.0")).config().read(PciConfigSpace.BAR0, 4))
                .isEqualTo(0xe004_0000); // the refused duplicate took no address space
    }

    @Test
    void configSpaceHonoursTheHardwaresWritableBits() {
        PciConfigSpace config = host.pci("0000:06:0d.0").config();
        assertThat(config.read(PciConfigSpace.VENDOR_ID, 2)).isEqualTo(0x8086);
        assertThat(config.read(PciConfigSpace.VENDOR_ID, 4)).isEqualTo(0x100e8086);
        config.write(PciConfigSpace.VENDOR_ID, 2, 0x1234);
        assertThat(config.read(PciConfigSpace.VENDOR_ID, 2)).isEqualTo(0x8086);
        config.write(PciConfigSpace.COMMAND, 2, 0xffff);
        assertThat(config.read(PciConfigSpace.COMMAND, 2)).isEqualTo(0x057f);
        config.write(PciConfigSpace.BAR0, 4, 0xffffffff);
        assertThat(config.read(PciConfigSpace.BAR0, 4)).isEqualTo(0xfffe0000); // 128 KiB BAR sizing
        assertThatThrownBy(() -> config.read(0x03, 2))
                .hasMessage("config access at offset 0x3 size 2 is invalid: expected an offset aligned to the"
                        + " size within 0x0-0xff");
        assertThatThrownBy(() -> config.read(0, 3)).hasMessage("config access size 3 is invalid: expected 1, 2"
                + " or 4 bytes");
    }
}
