package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.Set;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Issue 11's security rules: VFIO files belong to the processes that hold them, as file descriptors do, and a
 * type 1 unmap stops at a mapping another process made ({@code vfio_dma_do_unmap}, Linux v6.12).
 */
class VfioFileOwnershipTest {
    private static final int RW = IommuProt.READ | IommuProt.WRITE;
    private static final String NIC = "0000:06:0d.0";

    private final Host host = Host.builder().pciDevice(PciDeviceSpec.of(NIC))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0")).build();
    private final UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
    private final UserProcess mallory = host.spawn("mallory", 1000, Set.of());
    private PciDevice nic;
    private VfioContainer container;
    private VfioGroupFile group;
    private VfioDeviceFile device;

    @BeforeEach
    void qemuOwnsAContainerWithTheNic() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        nic = host.pci(NIC);
        host.vfio().bind(NIC);
        container = host.vfio().openContainer(qemu);
        group = host.vfio().openGroup(qemu, nic.group().id());
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        device = group.getDevice(qemu, NIC);
    }

    private static void ebadf(ThrowingCallable call, String file, UserProcess who) {
        assertThatThrownBy(call)
                .isInstanceOf(IommuException.class)
                .hasMessage(file + ": Bad file descriptor: " + who + " holds no descriptor to it (open it, inherit"
                        + " it by fork, or be passed it)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBADF);
    }

    @Test
    void aProcessThatHoldsNoDescriptorGetsEbadfFromEveryCallAndChangesNothing() {
        long va = qemu.mmap(2 * 4096);
        container.mapDma(qemu, va, 2 * 4096, 0x10000, RW);
        long evil = mallory.mmap(4096);

        ebadf(() -> container.unmapDma(mallory, 0x10000, 0x2000), "/dev/vfio/vfio", mallory);
        ebadf(() -> container.unmapDma(mallory, 0, 0, Vfio.DMA_UNMAP_FLAG_ALL), "/dev/vfio/vfio", mallory);
        ebadf(() -> container.mapDma(mallory, evil, 4096, 0x40000, RW), "/dev/vfio/vfio", mallory);
        ebadf(() -> container.checkExtension(mallory, Vfio.TYPE1v2_IOMMU), "/dev/vfio/vfio", mallory);
        ebadf(() -> container.iommuInfo(mallory), "/dev/vfio/vfio", mallory);
        ebadf(() -> container.syncForCpu(mallory, 0x10000, 1), "/dev/vfio/vfio", mallory);
        ebadf(() -> container.close(mallory), "/dev/vfio/vfio", mallory);
        ebadf(() -> group.getDevice(mallory, NIC), group.node(), mallory);
        ebadf(() -> group.status(mallory), group.node(), mallory);
        ebadf(() -> group.unsetContainer(mallory), group.node(), mallory);
        ebadf(() -> group.close(mallory), group.node(), mallory);
        ebadf(() -> device.configRead(mallory, 0, 2), "[vfio-device] " + NIC, mallory);
        ebadf(() -> device.configWrite(mallory, 4, 2, 0), "[vfio-device] " + NIC, mallory);
        ebadf(() -> device.close(mallory), "[vfio-device] " + NIC, mallory);
        ebadf(() -> container.passTo(mallory, mallory), "/dev/vfio/vfio", mallory);

        assertThat(qemu.lockedPages()).isEqualTo(2);
        assertThat(container.mappings()).hasSize(1);
        assertThat(mallory.lockedPages()).isZero();
        assertThat(container.groupIds()).containsExactly(group.id());
        assertThat(device.usable()).isTrue();
        assertThat(container.holders()).containsExactly(qemu);
    }

    @Test
    void aGroupCannotJoinAContainerTheCallerDoesNotHold() {
        host.vfio().bind("0000:07:00.0");
        VfioGroupFile mine = host.vfio().openGroup(mallory, host.pci("0000:07:00.0").group().id());
        ebadf(() -> mine.setContainer(mallory, container), "/dev/vfio/vfio", mallory);
        assertThat(container.groupIds()).containsExactly(group.id());
        assertThat(mine.status(mallory)).isEqualTo(new VfioGroupStatus(true, false));
    }

    @Test
    void aPassedContainerWorksAndEachUnmapStopsAtTheFirstMappingOfAnotherProcess() {
        UserProcess helper = host.spawn("helper", 1000, Set.of());
        container.passTo(qemu, helper);
        assertThat(container.holders()).containsExactlyInAnyOrder(qemu, helper);
        long q = qemu.mmap(2 * 4096);
        long h = helper.mmap(4096);
        container.mapDma(qemu, q, 4096, 0x10000, RW);
        container.mapDma(helper, h, 4096, 0x20000, RW);
        container.mapDma(qemu, q + 4096, 4096, 0x30000, RW);
        helper.write(h, "helper".getBytes(StandardCharsets.US_ASCII));
        assertThat(nic.dmaRead(0x20000, 6)).asString(StandardCharsets.US_ASCII).isEqualTo("helper");

        // the helper meets qemu's mapping at 0x10000 first: 0 unmapped, nothing changes
        assertThat(container.unmapDma(helper, 0, 1L << 63)).isZero();
        assertThat(container.unmapDma(helper, 0, 0, Vfio.DMA_UNMAP_FLAG_ALL)).isZero();
        assertThat(container.mappings()).hasSize(3);
        assertThat(qemu.lockedPages()).isEqualTo(2);
        // qemu removes its own first mapping, then stops at the helper's: what went is reported
        assertThat(container.unmapDma(qemu, 0, 0xfffffffffffff000L)).isEqualTo(0x1000);
        assertThat(container.dmaRecords()).extracting(VfioDmaRecord::iova, VfioDmaRecord::owner)
                .containsExactly(org.assertj.core.groups.Tuple.tuple(0x20000L, helper),
                        org.assertj.core.groups.Tuple.tuple(0x30000L, qemu));
        assertThat(qemu.lockedPages()).isEqualTo(1);
        assertThat(container.unmapDma(helper, 0x20000, 0x1000)).isEqualTo(0x1000);
        assertThat(helper.lockedPages()).isZero();
        assertThat(container.unmapDma(qemu, 0, 0, Vfio.DMA_UNMAP_FLAG_ALL)).isEqualTo(0x1000);
        assertThat(container.mappings()).isEmpty();
    }

    @Test
    void aForkedChildHoldsEveryFileButItsParentsMappingsAreNotItsOwn() {
        long va = qemu.mmap(4096);
        qemu.write(va, "parent".getBytes(StandardCharsets.US_ASCII));
        container.mapDma(qemu, va, 4096, 0x10000, RW);

        UserProcess child = host.fork(qemu);
        assertThat(child.pid()).isNotEqualTo(qemu.pid());
        assertThat(child.openFileCount()).isEqualTo(3);
        assertThat(container.checkExtension(child, Vfio.TYPE1v2_IOMMU)).isEqualTo(1);
        assertThat(device.configRead(child, 0, 2)).isEqualTo(0x8086);
        // a copy of the address space: the pinned page stays the parent's
        assertThat(child.read(va, 6)).asString(StandardCharsets.US_ASCII).isEqualTo("parent");
        assertThat(child.virtToPhys(va)).isNotEqualTo(qemu.virtToPhys(va));
        child.write(va, "child!".getBytes(StandardCharsets.US_ASCII));
        assertThat(nic.dmaRead(0x10000, 6)).asString(StandardCharsets.US_ASCII).isEqualTo("parent");
        assertThat(container.unmapDma(child, 0x10000, 0x1000)).isZero();
        assertThat(child.lockedPages()).isZero();

        // the parent exits: the child's descriptors keep everything open, and the parent's pinned page
        // stays in place for the device until the mapping goes
        qemu.exit();
        assertThat(device.usable()).isTrue();
        assertThat(nic.dmaRead(0x10000, 6)).asString(StandardCharsets.US_ASCII).isEqualTo("parent");
        long free = host.pageAllocator().freePageCount();
        device.close(child);
        group.close(child);
        container.close(child);
        assertThat(container.released()).isTrue();
        assertThat(group.released()).isTrue();
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free + 1);
        assertThat(nic.group().dmaOwner()).isNull();
    }

    @Test
    void theLastDescriptorClosingWhileGroupsRemainLeavesTheDeviceConfinedToItsMappings() {
        UserProcess victim = host.spawn("sshd", 0, Set.of());
        long secretVa = victim.mmap(4096);
        victim.write(secretVa, "victim secret".getBytes(StandardCharsets.US_ASCII));
        long secret = victim.virtToPhys(secretVa);
        long va = qemu.mmap(4096);
        container.mapDma(qemu, va, 4096, 0x10000, RW);

        container.close(qemu);
        assertThatThrownBy(() -> nic.dmaRead(secret, 13)).isInstanceOf(IommuFaultException.class);
        qemu.write(va, "own".getBytes(StandardCharsets.US_ASCII));
        assertThat(nic.dmaRead(0x10000, 3)).asString(StandardCharsets.US_ASCII).isEqualTo("own");
        assertThat(nic.group().currentDomain().type()).isEqualTo(org.iommu4j.api.DomainType.UNMANAGED);

        device.close(qemu);
        assertThat(group.released()).isFalse();
        group.unsetContainer(qemu);
        assertThat(container.released()).isTrue();
        assertThat(qemu.lockedPages()).isZero();
        assertThatThrownBy(() -> nic.dmaRead(secret, 13)).isInstanceOf(IommuFaultException.class);
    }

    @Test
    void aProcessThatHasExitedCannotOpenAGroupAndLeavesItClosed() {
        device.close(qemu);
        group.close(qemu);
        UserProcess gone = host.spawn("qemu", 1000, Set.of());
        gone.exit();
        assertThatThrownBy(() -> host.vfio().openGroup(gone, nic.group().id()))
                .isInstanceOf(IommuException.class)
                .hasMessage("process qemu:" + gone.pid() + " has exited")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ESRCH);
        assertThatThrownBy(() -> host.vfio().openContainer(gone))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ESRCH);
        assertThat(gone.openFileCount()).isZero();
        assertThat(host.vfio().openGroup(mallory, nic.group().id()).opener()).isSameAs(mallory);
    }

    @Test
    void aFileIsPassedOnlyToALiveProcess() {
        UserProcess gone = host.spawn("gone", 1000, Set.of());
        gone.exit();
        assertThatThrownBy(() -> container.passTo(qemu, gone))
                .hasMessage("process gone:" + gone.pid() + " has exited")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ESRCH);
        assertThat(container.holders()).containsExactly(qemu);
    }

    @Test
    void openGroupRefusesANodeNumberTooLargeForAGroupIdAsNotThere() {
        assertThatThrownBy(() -> host.vfio().openGroup(mallory, "/dev/vfio/99999999999"))
                .isInstanceOf(IommuException.class)
                .hasMessage("/dev/vfio/99999999999: No such file or directory (VFIO group nodes: [" + group.node()
                        + "])")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
        assertThatThrownBy(() -> host.vfio().openGroup(mallory, (String) null))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
    }

    @Test
    void aPassedDeviceStaysOpenForItsOtherHolderAndKeepsItsGroupBusy() {
        UserProcess helper = host.spawn("helper", 1000, Set.of());
        device.passTo(qemu, helper);
        device.close(qemu);
        ebadf(() -> device.configRead(qemu, 0, 2), "[vfio-device] " + NIC, qemu);
        assertThat(device.configRead(helper, 0, 2)).isEqualTo(0x8086);
        assertThatThrownBy(() -> group.unsetContainer(qemu))
                .hasMessage(group.node() + " has 1 open device(s): close them before leaving the container")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);

        // the group file's last descriptor goes, but the open device keeps the group in its container
        group.close(qemu);
        assertThat(group.released()).isFalse();
        assertThat(container.groupIds()).containsExactly(group.id());
        assertThat(device.configRead(helper, 0, 2)).isEqualTo(0x8086);
        helper.exit();
        assertThat(device.usable()).isFalse();
        assertThat(group.released()).isTrue();
        assertThat(container.groupIds()).isEmpty();
        assertThat(host.vfio().openGroup(mallory, nic.group().id()).opener()).isSameAs(mallory);
    }
}
