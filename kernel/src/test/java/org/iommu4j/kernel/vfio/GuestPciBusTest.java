package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciConfigSpace;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class GuestPciBusTest {
    private static final PciAddress GUEST_SLOT = PciAddress.parse("0000:00:03.0");
    private final Host host = Host.builder()
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withIds(0x10ec, 0x8168, 0x020000))
            .build();
    private final UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
    private GuestPciBus bus;
    private VfioDeviceFile nic;

    @BeforeEach
    void assign() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        host.vfio().bind("0000:06:0d.0");
        VfioContainer container = host.vfio().openContainer(qemu);
        VfioGroupFile group = host.vfio().openGroup(qemu, host.pci("0000:06:0d.0").group().id());
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        nic = group.getDevice(qemu, "0000:06:0d.0");
        bus = new GuestPciBus(qemu);
        bus.attach(GUEST_SLOT, nic);
    }

    @Test
    void guestConfigCyclesAreRemappedToTheHostDevice() {
        assertThat(bus.hostAddress(GUEST_SLOT)).hasValue(PciAddress.parse("0000:06:0d.0"));
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.VENDOR_ID, 4)).isEqualTo(0x8168_10ec);
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.CLASS_PROG, 1)).isZero();

        bus.configWrite(GUEST_SLOT, PciConfigSpace.COMMAND, 2, PciConfigSpace.COMMAND_MASTER
                | PciConfigSpace.COMMAND_MEMORY);
        assertThat(host.pci("0000:06:0d.0").config().read(PciConfigSpace.COMMAND, 2)).isEqualTo(0x6);
    }

    @Test
    void headerFieldsAUserMustNotChangeAreFiltered() {
        bus.configWrite(GUEST_SLOT, PciConfigSpace.VENDOR_ID, 4, 0xdead_beef);
        bus.configWrite(GUEST_SLOT, PciConfigSpace.COMMAND, 2, 0xffff);
        assertThat(host.pci("0000:06:0d.0").config().read(PciConfigSpace.VENDOR_ID, 4)).isEqualTo(0x8168_10ec);
        // only I/O, memory, master, parity, SERR and INTx-disable reach the device
        assertThat(host.pci("0000:06:0d.0").config().read(PciConfigSpace.COMMAND, 2)).isEqualTo(0x0547);
        assertThat(nic.filteredWrites()).isEqualTo(2);
        bus.configWrite(GUEST_SLOT, PciConfigSpace.INTERRUPT_LINE, 1, 11);
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.INTERRUPT_LINE, 1)).isEqualTo(11);
        assertThat(nic.filteredWrites()).isEqualTo(2);
    }

    @Test
    void barsRomAndInterruptLineAreAVirtualCopyThatSizesLikeHardwareAndNeverReachesTheHost() {
        PciConfigSpace host0 = host.pci("0000:06:0d.0").config();
        int assigned = host0.read(PciConfigSpace.BAR0, 4);
        assertThat(assigned).isEqualTo(0xe000_0000); // firmware gave the 128 KiB BAR the first MMIO slot
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.BAR0, 4)).isEqualTo(assigned);
        bus.configWrite(GUEST_SLOT, PciConfigSpace.BAR0, 4, 0xffff_ffff);
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.BAR0, 4)).isEqualTo(0xfffe_0000); // 128 KiB BAR
        bus.configWrite(GUEST_SLOT, PciConfigSpace.BAR0, 4, 0xfebf_1234);
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.BAR0, 4)).isEqualTo(0xfebe_0000);
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.BAR0 + 2, 2)).isEqualTo(0xfebe);
        bus.configWrite(GUEST_SLOT, PciConfigSpace.BAR0 + 4, 4, 0xffff_ffff);
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.BAR0 + 4, 4)).isZero(); // BAR1 is not implemented
        bus.configWrite(GUEST_SLOT, 0x30, 4, 0xffff_ffff);
        assertThat(bus.configRead(GUEST_SLOT, 0x30, 4)).isZero();
        bus.configWrite(GUEST_SLOT, PciConfigSpace.INTERRUPT_LINE, 1, 11);

        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.INTERRUPT_LINE, 1)).isEqualTo(11);
        assertThat(host0.read(PciConfigSpace.BAR0, 4)).isEqualTo(assigned);
        assertThat(host0.read(PciConfigSpace.INTERRUPT_LINE, 1)).isZero();
        assertThat(nic.filteredWrites()).isZero();
    }

    @Test
    void aDeviceSitsAtOneGuestAddressOfItsOwnDeviceModelAndReadsAllOnesOnceGone() {
        PciAddress other = PciAddress.parse("0000:00:05.0");
        assertThatThrownBy(() -> bus.attach(other, nic))
                .hasMessage("host device 0000:06:0d.0 is already at guest address 0000:00:03.0: detach it first");
        UserProcess intruder = host.spawn("intruder", 1000, Set.of());
        assertThatThrownBy(() -> new GuestPciBus(intruder).attach(other, nic))
                .hasMessage("[vfio-device] 0000:06:0d.0: Bad file descriptor: intruder:" + intruder.pid() + " holds no"
                        + " descriptor to it (open it, inherit it by fork, or be passed it)")
                .extracting(e -> ((org.iommu4j.api.IommuException) e).errno())
                .isEqualTo(org.iommu4j.api.Errno.EBADF);

        assertThat(bus.detach(GUEST_SLOT)).isSameAs(nic);
        assertThat(bus.configRead(GUEST_SLOT, PciConfigSpace.VENDOR_ID, 2)).isEqualTo(0xffff);
        assertThatThrownBy(() -> bus.detach(GUEST_SLOT)).hasMessage("guest address 0000:00:03.0 holds no device");
        bus.attach(other, nic);
        assertThat(bus.configRead(other, PciConfigSpace.VENDOR_ID, 2)).isEqualTo(0x10ec);

        PciConfigSpace removed = host.pci("0000:06:0d.0").config();
        int command = removed.read(PciConfigSpace.COMMAND, 2);
        host.buses().remove("0000:06:0d.0");
        assertThat(bus.configRead(other, PciConfigSpace.VENDOR_ID, 4)).isEqualTo(0xffff_ffff);
        bus.configWrite(other, PciConfigSpace.COMMAND, 2, command ^ 0x6);
        assertThat(removed.read(PciConfigSpace.COMMAND, 2)).isEqualTo(command);
    }

    @Test
    void anEmptyGuestSlotReadsAllOnesAndTakesNothing() {
        PciAddress empty = PciAddress.parse("0000:00:04.0");
        assertThat(bus.configRead(empty, 0, 4)).isEqualTo(0xffff_ffff);
        assertThat(bus.configRead(empty, 0, 2)).isEqualTo(0xffff);
        bus.configWrite(empty, PciConfigSpace.COMMAND, 2, 0x6);
        assertThatThrownBy(() -> bus.attach(GUEST_SLOT, nic))
                .hasMessage("guest address 0000:00:03.0 already holds host device 0000:06:0d.0");
    }
}
