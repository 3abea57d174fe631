package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.Set;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class VfioContainerTest {
    private static final int RW = IommuProt.READ | IommuProt.WRITE;
    private final Host host = Host.builder()
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0"))
            .pciDevice(PciDeviceSpec.of("0000:07:00.1").withDriver("e1000"))
            .build();
    private final PageTableIommu iommu = new PageTableIommu().groupingFunctionsOfASlot();
    private final UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
    private PciDevice nic;
    private VfioContainer container;
    private VfioGroupFile group;

    @BeforeEach
    void bindAndOpen() {
        host.iommu().registerOps(BusType.PCI, iommu, ModuleRef.KERNEL);
        nic = host.pci("0000:06:0d.0");
        host.vfio().bind(nic.name());
        container = host.vfio().openContainer(qemu);
        group = host.vfio().openGroup(qemu, nic.group().id());
    }

    private void ready() {
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
    }

    @Test
    void aGroupWithADeviceAHostDriverOwnsIsNotViableAndCannotJoin() {
        host.vfio().bind("0000:07:00.0");
        VfioGroupFile shared = host.vfio().openGroup(qemu, host.pci("0000:07:00.0").group().id());
        assertThat(host.pci("0000:07:00.1").group()).isSameAs(host.pci("0000:07:00.0").group());
        assertThat(shared.status(qemu)).isEqualTo(new VfioGroupStatus(false, false));

        assertThatThrownBy(() -> shared.setContainer(qemu, container))
                .isInstanceOf(IommuException.class)
                .hasMessage(shared.node() + " is not viable: every device in iommu group " + shared.id() + " must be"
                        + " bound to vfio-pci or to no driver; 0000:07:00.1 (bound to e1000) is not")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThat(container.groupIds()).isEmpty();

        host.buses().unbind(host.pci("0000:07:00.1"));
        assertThat(shared.status(qemu).viable()).isTrue();
        shared.setContainer(qemu, container);
        assertThat(shared.status(qemu)).isEqualTo(new VfioGroupStatus(true, true));
    }

    @Test
    void aHostDriverCannotTakeADeviceWhoseGroupUserSpaceOwnsButVfioCan() {
        PciDevice fn0 = host.pci("0000:07:00.0");
        PciDevice fn1 = host.pci("0000:07:00.1");
        host.buses().unbind(fn1);
        host.vfio().bind(fn0.name());
        VfioGroupFile shared = host.vfio().openGroup(qemu, fn0.group().id());
        shared.setContainer(qemu, container);

        assertThatThrownBy(() -> host.buses().bind(fn1, "e1000"))
                .isInstanceOf(IommuException.class)
                .hasMessage("cannot bind e1000 to 0000:07:00.1: its iommu group " + shared.id() + " is owned by "
                        + shared.node() + " for user-space DMA; release the group first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThat(fn1.driver()).isNull();
        assertThat(shared.status(qemu).viable()).isTrue();

        host.vfio().bind(fn1.name());
        assertThat(fn1.driver()).isEqualTo("vfio-pci");
        host.buses().unbind(fn1);
        shared.unsetContainer(qemu);
        host.buses().bind(fn1, "e1000");
        assertThat(fn1.driver()).isEqualTo("e1000");
    }

    @Test
    void closingTheContainersLastDescriptorKeepsItForItsGroupsAsTheKernelsReferencesDo() {
        ready();
        VfioDeviceFile dev = group.getDevice(qemu, nic.name());
        long va = qemu.mmap(4096);
        container.mapDma(qemu, va, 4096, 0x10000, RW);
        container.close(qemu);

        assertThat(dev.configRead(qemu, 0, 2)).isEqualTo(0x8086);
        nic.dmaWrite(0x10000, new byte[] {7});
        assertThat(qemu.read(va, 1)).containsExactly(7);
        assertThat(container.groupIds()).containsExactly(group.id());
        assertThat(container.released()).isFalse();
        assertThatThrownBy(() -> container.unmapDma(qemu, 0x10000, 4096))
                .hasMessage("/dev/vfio/vfio: Bad file descriptor: qemu:" + qemu.pid() + " holds no descriptor to it"
                        + " (open it, inherit it by fork, or be passed it)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBADF);
    }

    @Test
    void closedFilesLeaveTheDescriptorTable() {
        assertThat(qemu.openFileCount()).isEqualTo(2);
        group.close(qemu);
        container.close(qemu);
        assertThat(qemu.openFileCount()).isZero();
        for (int i = 0; i < 100; i++) {
            host.vfio().openContainer(qemu).close(qemu);
        }
        assertThat(qemu.openFileCount()).isZero();
        assertThat(container.released()).isTrue();
    }

    private static byte byteAt(Host host, long phys) {
        byte[] b = new byte[1];
        host.memory().read(phys, b, 0, 1);
        return b[0];
    }

    @Test
    void aClaimedGroupBlocksDmaUntilTheUsersDomainIsAttachedAndAfterItGoes() {
        Host passThroughHost = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        passThroughHost.iommu().registerOps(BusType.PCI, new PageTableIommu().passThrough(), ModuleRef.KERNEL);
        PciDevice dev = passThroughHost.pci("0000:06:0d.0");
        UserProcess vmm = passThroughHost.spawn("vmm", 0, Set.of(Capability.CAP_IPC_LOCK));
        long phys = passThroughHost.pageAllocator().allocateContiguous(1, Long.MAX_VALUE);
        dev.dmaWrite(phys, new byte[] {1});
        assertThat(byteAt(passThroughHost, phys)).isEqualTo((byte) 1);

        passThroughHost.vfio().bind(dev.name());
        VfioContainer c = passThroughHost.vfio().openContainer(vmm);
        VfioGroupFile g = passThroughHost.vfio().openGroup(vmm, dev.group().id());
        g.setContainer(vmm, c);
        assertThat(dev.group().currentDomain().type()).isEqualTo(org.iommu4j.api.DomainType.BLOCKED);
        assertThatThrownBy(() -> dev.dmaWrite(phys, new byte[] {2})).isInstanceOf(IommuFaultException.class);
        assertThat(byteAt(passThroughHost, phys)).isEqualTo((byte) 1);

        c.setIommu(vmm, Vfio.TYPE1v2_IOMMU);
        long va = vmm.mmap(4096);
        c.mapDma(vmm, va, 4096, 0x1000, RW);
        dev.dmaWrite(0x1000, new byte[] {3});
        assertThat(vmm.read(va, 1)).containsExactly(3);
        assertThatThrownBy(() -> dev.dmaWrite(phys, new byte[] {4})).isInstanceOf(IommuFaultException.class);

        g.unsetContainer(vmm);
        assertThat(dev.group().currentDomain()).isNull();
        assertThat(dev.group().dmaOwner()).isNull();
        dev.dmaWrite(phys, new byte[] {5});
        assertThat(byteAt(passThroughHost, phys)).isEqualTo((byte) 5);
    }

    @Test
    void theOriginalType1KeepsItsV1UnmapRules() {
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1_IOMMU);
        long va = qemu.mmap(6 * 4096);
        container.mapDma(qemu, va, 2 * 4096, 0x10000, RW);
        container.mapDma(qemu, va + 2 * 4096, 4 * 4096, 0x20000, RW);

        assertThat(container.unmapDma(qemu, 0x11000, 0x20000)).isZero();
        assertThat(container.mappings()).hasSize(2);
        assertThat(container.unmapDma(qemu, 0x20000, 0x1000)).isEqualTo(4 * 4096);
        assertThat(container.mappings()).extracting(VfioDmaMapping::iova).containsExactly(0x10000L);
        assertThat(qemu.lockedPages()).isEqualTo(2);
        assertThatThrownBy(() -> nic.dmaWrite(0x23000, new byte[] {1})).isInstanceOf(IommuFaultException.class);
    }

    @Test
    void theIommuTypeRules() {
        assertThat(container.apiVersion(qemu)).isZero();
        assertThat(container.checkExtension(qemu, Vfio.TYPE1v2_IOMMU)).isEqualTo(1);
        assertThat(container.checkExtension(qemu, Vfio.NOIOMMU_IOMMU)).isZero();
        assertThatThrownBy(() -> container.setIommu(qemu, Vfio.TYPE1v2_IOMMU))
                .hasMessage("VFIO_SET_IOMMU: the container has no groups; add a group first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        group.setContainer(qemu, container);
        assertThatThrownBy(() -> container.setIommu(qemu, Vfio.NOIOMMU_IOMMU))
                .hasMessage("VFIO_SET_IOMMU: no VFIO iommu driver offers VFIO_NOIOMMU_IOMMU(8) for isolated groups;"
                        + " registered: [vfio-iommu-type1]")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        assertThat(container.hasIommu()).isFalse();
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        assertThat(container.driverName()).hasValue("vfio-iommu-type1");
        assertThat(nic.group().currentDomain().type()).isEqualTo(org.iommu4j.api.DomainType.UNMANAGED);
        assertThat(nic.group().sysfsType()).isEqualTo("DMA");
        assertThatThrownBy(() -> container.setIommu(qemu, Vfio.TYPE1_IOMMU))
                .hasMessage("VFIO_SET_IOMMU: the iommu type is already VFIO_TYPE1v2_IOMMU(3)");
        assertThatThrownBy(() -> group.setContainer(qemu, container))
                .hasMessage(group.node() + " is already in a container: unset it first");
    }

    @Test
    void aDeviceDmaThroughAMappedWindowWritesTheUsersBufferByteForByte() {
        ready();
        long va = qemu.mmap(4 * 4096); // physically scattered pages
        VfioDmaMapping m = container.mapDma(qemu, va, 4 * 4096, 0x100000, RW);
        assertThat(m.iova()).isEqualTo(0x100000);
        byte[] packet = new byte[6000];
        for (int i = 0; i < packet.length; i++) {
            packet[i] = (byte) (i ^ 0x5a);
        }

        nic.dmaWrite(0x100000 + 4000, packet);

        assertThat(qemu.read(va + 4000, packet.length)).isEqualTo(packet);
        qemu.write(va, "ping".getBytes(StandardCharsets.US_ASCII));
        assertThat(nic.dmaRead(0x100000, 4)).asString(StandardCharsets.US_ASCII).isEqualTo("ping");
        assertThatThrownBy(() -> nic.dmaWrite(0x100000 + 4 * 4096, new byte[] {1}))
                .isInstanceOf(IommuFaultException.class)
                .hasMessageEndingWith("not mapped");
    }

    @Test
    void overlappingMapsAreRefusedAndNothingStaysPinned() {
        ready();
        long va = qemu.mmap(8 * 4096);
        container.mapDma(qemu, va, 4 * 4096, 0x10000, RW);
        assertThat(qemu.lockedPages()).isEqualTo(4);

        assertThatThrownBy(() -> container.mapDma(qemu, va + 4 * 4096, 2 * 4096, 0x13000, RW))
                .isInstanceOf(IommuException.class)
                .hasMessage("VFIO_IOMMU_MAP_DMA: iova 0x13000+0x2000 overlaps the mapping at 0x10000+0x4000")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EEXIST);
        assertThat(qemu.lockedPages()).isEqualTo(4);
        assertThat(container.mappings()).hasSize(1);

        assertThatThrownBy(() -> container.mapDma(qemu, va + 100, 4096, 0x20000, RW))
                .hasMessage(String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x iova 0x20000 size 0x1000: vaddr, iova and"
                        + " size must be multiples of the IOMMU's smallest page 0x1000 and size not 0", va + 100));
        assertThatThrownBy(() -> container.mapDma(qemu, va, 4096, 0x20000, IommuProt.CACHE))
                .hasMessage("VFIO_IOMMU_MAP_DMA: flags CACHE are invalid: expected READ, WRITE or both");
        assertThatThrownBy(() -> container.mapDma(qemu, va + 64 * 4096, 4096, 0x20000, RW))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThat(qemu.lockedPages()).isEqualTo(4);
    }

    @Test
    void unmapReportsBytesAndRefusesToSplitAMapping() {
        ready();
        long va = qemu.mmap(8 * 4096);
        container.mapDma(qemu, va, 2 * 4096, 0x10000, RW);
        container.mapDma(qemu, va + 2 * 4096, 2 * 4096, 0x12000, IommuProt.READ);
        container.mapDma(qemu, va + 4 * 4096, 4 * 4096, 0x20000, RW);
        assertThat(qemu.lockedPages()).isEqualTo(8);

        assertThatThrownBy(() -> container.unmapDma(qemu, 0x11000, 0x2000))
                .hasMessage("VFIO_IOMMU_UNMAP_DMA: iova 0x11000+0x2000 would split the mapping at 0x10000+0x2000;"
                        + " unmap whole mappings")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> container.unmapDma(qemu, 0x10000, 0x3000))
                .hasMessage("VFIO_IOMMU_UNMAP_DMA: iova 0x10000+0x3000 would split the mapping at 0x12000+0x2000;"
                        + " unmap whole mappings");
        assertThat(container.mappings()).hasSize(3);

        assertThat(container.unmapDma(qemu, 0x10000, 0x4000)).isEqualTo(0x4000);
        assertThat(qemu.lockedPages()).isEqualTo(4);
        assertThat(container.unmapDma(qemu, 0x30000, 0x1000)).isZero();
        assertThatThrownBy(() -> nic.dmaRead(0x10000, 1)).isInstanceOf(IommuFaultException.class);
        assertThat(nic.dmaRead(0x20000, 1)).hasSize(1);
    }

    @Test
    void closingTheGroupAndTheContainerTearsEverythingDown() {
        ready();
        long va = qemu.mmap(4 * 4096);
        container.mapDma(qemu, va, 4 * 4096, 0x10000, RW);
        var userDomain = iommu.domains().get(iommu.domains().size() - 1);
        assertThat(userDomain.mappedPages()).isEqualTo(4);

        container.close(qemu);
        assertThat(userDomain.mappedPages()).isEqualTo(4);
        group.close(qemu);
        assertThat(qemu.lockedPages()).isZero();
        assertThat(userDomain.mappedPages()).isZero();
        assertThat(userDomain.isFreed()).isTrue();
        assertThat(nic.group().sysfsType()).isEqualTo("DMA");
        assertThat(nic.group().dmaOwner()).isNull();
        assertThat(container.released()).isTrue();
        assertThat(group.released()).isTrue();
        assertThatThrownBy(() -> container.mapDma(qemu, va, 4096, 0, RW))
                .hasMessage("/dev/vfio/vfio: Bad file descriptor: qemu:" + qemu.pid() + " holds no descriptor to it"
                        + " (open it, inherit it by fork, or be passed it)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBADF);
    }

    @Test
    void theLastGroupLeavingDropsTheIommuAndItsMappings() {
        ready();
        long va = qemu.mmap(2 * 4096);
        container.mapDma(qemu, va, 2 * 4096, 0x10000, RW);
        group.unsetContainer(qemu);
        assertThat(container.hasIommu()).isFalse();
        assertThat(container.mappings()).isEmpty();
        assertThat(qemu.lockedPages()).isZero();
        assertThatThrownBy(() -> group.unsetContainer(qemu)).hasMessage(group.node() + " is not in a container");
    }

    @Test
    void aDeviceComesOnlyFromAReadyGroupAndOnlyIfItIsThere() {
        assertThatThrownBy(() -> group.getDevice(qemu, nic.name()))
                .hasMessage(group.node() + " is not ready for device access: it must be viable and in a container"
                        + " whose iommu type is set");
        ready();
        assertThatThrownBy(() -> group.getDevice(qemu, "0000:07:00.0"))
                .hasMessage("no device 0000:07:00.0 bound to VFIO in " + group.node() + "; its devices: [0000:06:0d.0]")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        assertThat(group.getDevice(qemu, nic.name()).device()).isSameAs(nic);
    }

    @Test
    void aGroupOpensOnceAtATimeAndUnknownNodesDoNotExist() {
        UserProcess other = host.spawn("other", 0, Set.of());
        assertThatThrownBy(() -> host.vfio().openGroup(other, group.node()))
                .hasMessage(group.node() + " is already open by qemu:" + qemu.pid() + ": a group can be open once at"
                        + " a time")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThatThrownBy(() -> host.vfio().openGroup(other, "/dev/vfio/42"))
                .hasMessage("/dev/vfio/42: No such file or directory (VFIO group nodes: [" + group.node() + "])")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
        group.close(qemu);
        assertThat(host.vfio().openGroup(other, group.node()).opener()).isSameAs(other);
    }
}
