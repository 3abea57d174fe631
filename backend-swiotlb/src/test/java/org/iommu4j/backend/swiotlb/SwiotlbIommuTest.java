package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.junit.jupiter.api.Test;

/** The SWIOTLB-IOMMU: devices assigned by B:D.F, VFIO on top, bouncing where it must. */
class SwiotlbIommuTest {
    private static final String NIC = "0000:06:0d.0";
    private final Host host = Host.builder().memory(8L << 30)
            .commandLine("swiotlb.hide=(0000:06:0d.0)(07:00.*)")
            .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(32)))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0"))
            .pciDevice(PciDeviceSpec.of("0000:07:00.1"))
            .pciDevice(PciDeviceSpec.of("0000:08:00.0"))
            .build();
    private final UserProcess root = host.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO));

    private SwiotlbFixture load(boolean enable) {
        return new SwiotlbFixture(host, Map.of(SwiotlbProvider.ENABLE_IOMMU, enable ? "1" : "0"));
    }

    private VfioContainer openOn(String device) {
        host.vfio().bind(device);
        VfioContainer c = host.vfio().openContainer(root);
        VfioGroupFile g = host.vfio().openGroup(root, host.pci(device).group().id());
        g.setContainer(root, c);
        c.setIommu(root, Vfio.SWIOTLB_IOMMU);
        g.getDevice(root, device);
        return c;
    }

    @Test
    void hiddenDevicesGetUnisolatedGroupsOnlyWithTheOptIn() {
        SwiotlbFixture swiotlb = load(false);
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(swiotlb.attribute("slots")).isEqualTo("0000:06:0d.0\n0000:07:00.*\n");

        swiotlb.module.parameters().set(SwiotlbProvider.ENABLE_IOMMU, "1");
        assertThat(host.iommu().groups()).extracting(g -> g.busDevices().get(0).name())
                .containsExactly(NIC, "0000:07:00.0", "0000:07:00.1");
        assertThat(host.iommu().groups()).allMatch(g -> !g.isolated());
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/name")).hasValue("vfio-swiotlb");
        assertThat(host.pci("0000:08:00.0").group()).isNull();
        assertThat(host.log().messages()).contains("swiotlb: UNSAFE SWIOTLB-IOMMU enabled: assigned devices get VFIO"
                + " groups with no isolation, and the kernel will be tainted");

        swiotlb.module.parameters().set(SwiotlbProvider.ENABLE_IOMMU, "0");
        assertThat(host.iommu().groups()).isEmpty();
    }

    @Test
    void newSlotAndRemoveSlotAssignAndReleaseDevicesAtRunTime() {
        SwiotlbFixture swiotlb = load(true);
        swiotlb.write("new_slot", "0000:08:00.0");
        assertThat(host.pci("0000:08:00.0").group()).isNotNull();
        assertThat(swiotlb.attribute("slots")).endsWith("0000:08:00.0\n");
        swiotlb.write("remove_slot", "0000:08:00.0");
        assertThat(host.pci("0000:08:00.0").group()).isNull();
        assertThatThrownBy(() -> swiotlb.write("remove_slot", "0000:08:00.0"))
                .hasMessage("slot 0000:08:00.0 is not on the list; listed: [0000:06:0d.0, 0000:07:00.*]");
        assertThatThrownBy(() -> swiotlb.write("new_slot", "08:00"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
    }

    @Test
    void aBadHideListFailsTheLoadWithPcibacksMessage() {
        Host bad = Host.builder().commandLine("swiotlb.hide=(0000:06:0d.0)(junk)").build();
        long free = bad.pageAllocator().freePageCount();
        assertThatThrownBy(() -> new SwiotlbFixture(bad, Map.of()))
                .hasMessage("Error parsing pci_devs_to_hide at \"(junk)\"");
        assertThat(bad.pageAllocator().freePageCount()).isEqualTo(free);
    }

    @Test
    void aContiguousReachableBufferIsMappedDirectlyAndMovesAPacketBothWays() {
        load(true);
        VfioContainer c = openOn(NIC);
        long va = root.mmapContiguous(2 * 4096);
        VfioDmaMapping m = c.mapDma(root, va, 2 * 4096, Vfio.ANY_IOVA, IommuProt.READ | IommuProt.WRITE);
        assertThat(m.iova()).isEqualTo(root.virtToPhys(va));

        PciDevice nic = host.pci(NIC);
        nic.dmaWrite(m.iova() + 10, "rx packet".getBytes());
        assertThat(root.read(va + 10, 9)).asString().isEqualTo("rx packet");
        root.write(va + 4096, "tx packet".getBytes());
        assertThat(nic.dmaRead(m.iova() + 4096, 9)).asString().isEqualTo("tx packet");
        assertThat(host.taint().isSet(TaintFlag.USER)).isTrue();
        assertThat(host.log().messages()).contains(
                "vfio-pci 0000:06:0d.0: Adding kernel taint for vfio-swiotlb group on device",
                "vfio-pci 0000:06:0d.0: vfio-swiotlb device opened by user (" + root.comm() + ":" + root.pid() + ")");
    }

    @Test
    void aScatteredBufferIsBouncedAndOnlyTheSyncsMoveTheBytes() {
        SwiotlbFixture swiotlb = load(true);
        VfioContainer c = openOn(NIC);
        long va = root.mmap(3 * 4096); // scattered, and above 4 GiB on this host: out of the NIC's reach twice over
        assertThatThrownBy(() -> c.mapDma(root, va, 3 * 4096, 0x10000, IommuProt.READ | IommuProt.WRITE))
                .hasMessage(String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x+0x3000 must be bounced (not physically"
                        + " contiguous), so the driver chooses its device address: pass Vfio.ANY_IOVA", va));
        VfioDmaMapping m = c.mapDma(root, va, 3 * 4096, Vfio.ANY_IOVA, IommuProt.READ | IommuProt.WRITE);
        assertThat(swiotlb.pool().contains(m.iova())).isTrue();
        assertThat(host.log().messages()).contains(String.format("swiotlb: vfio: bounced vaddr 0x%x+0x3000 through"
                + " 0x%x (not physically contiguous); sync it around every DMA", va, m.iova()));

        PciDevice nic = host.pci(NIC);
        byte[] rx = new byte[6000];
        java.util.Arrays.fill(rx, (byte) 0x77);
        nic.dmaWrite(m.iova() + 1000, rx);
        assertThat(root.read(va + 1000, 10)).containsOnly(0);
        c.syncForCpu(root, m.iova() + 1000, 6000);
        assertThat(root.read(va + 1000, 6000)).isEqualTo(rx);

        root.write(va + 9000, "tx".getBytes());
        assertThat(nic.dmaRead(m.iova() + 9000, 2)).containsOnly(0);
        c.syncForDevice(root, m.iova() + 9000, 2);
        assertThat(nic.dmaRead(m.iova() + 9000, 2)).asString().isEqualTo("tx");

        nic.dmaWrite(m.iova(), "last".getBytes());
        assertThat(c.unmapDma(root, m.iova(), 3 * 4096)).isEqualTo(3 * 4096);
        assertThat(root.read(va, 4)).asString().isEqualTo("last");
        assertThat(swiotlb.pool().stats().usedSlots()).isZero();
        assertThat(root.lockedPages()).isZero();
        assertThat(Long.parseLong(swiotlb.attribute("bounced_bytes_from_device"))).isEqualTo(6000 + 3 * 4096);
    }

    @Test
    void aBounceWindowStartsOnAPageBoundaryWhateverTheDmaApiLeftBehind() {
        SwiotlbFixture swiotlb = load(true);
        PciDevice nic = host.pci(NIC);
        long high = 6L << 30;
        long dma = host.dma().map(nic, high, 100, org.iommu4j.api.DmaDirection.TO_DEVICE); // one slot, bounced
        assertThat(swiotlb.pool().contains(dma)).isTrue();

        VfioContainer c = openOn(NIC);
        long va = root.mmap(3 * 4096);
        VfioDmaMapping m = c.mapDma(root, va, 3 * 4096, Vfio.ANY_IOVA, IommuProt.READ | IommuProt.WRITE);

        assertThat(swiotlb.pool().contains(m.iova())).isTrue();
        assertThat(m.iova() & 0xfff).isZero();
        assertThat(swiotlb.pool().stats().usedSlots()).isEqualTo(1 + 6);
        assertThat(c.unmapDma(root, m.iova(), 3 * 4096)).isEqualTo(3 * 4096);
        host.dma().unmap(nic, dma, 100, org.iommu4j.api.DmaDirection.TO_DEVICE);
        assertThat(swiotlb.pool().stats().usedSlots()).isZero();
    }

    @Test
    void withoutRawioOrWithoutTheOptInVfioIsRefused() {
        load(false);
        assertThatThrownBy(() -> host.vfio().bind(NIC)).extracting(e -> ((IommuException) e).errno())
                .isEqualTo(Errno.EINVAL);
        Host other = Host.builder().commandLine("swiotlb.hide=(0000:06:0d.0)")
                .pciDevice(PciDeviceSpec.of(NIC)).build();
        new SwiotlbFixture(other, Map.of(SwiotlbProvider.ENABLE_IOMMU, "1"));
        other.vfio().bind(NIC);
        UserProcess user = other.spawn("user", 1000, Set.of());
        assertThatThrownBy(() -> other.vfio().openGroup(user, "/dev/vfio/noiommu-0"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
    }

    private static final String PROBE_FAILED = "vfio-pci %s: probe with driver vfio-pci failed with error -22: the"
            + " device has no iommu group; ";

    @Test
    void aBindToAnAssignedDeviceWithTheOptInOffNamesTheOptIn() {
        SwiotlbFixture swiotlb = load(false);
        assertThatThrownBy(() -> host.vfio().bind(NIC))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format(PROBE_FAILED, NIC) + "swiotlb is loaded and 0000:06:0d.0 is assigned to"
                        + " it, but its enable_unsafe_swiotlb_iommu is off: set swiotlb.enable_unsafe_swiotlb_iommu=1"
                        + " to give assigned devices unsafe SWIOTLB-IOMMU groups")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);

        swiotlb.module.parameters().set(SwiotlbProvider.ENABLE_IOMMU, "1");
        host.vfio().bind(NIC);
        assertThat(host.pci(NIC).group()).isNotNull();
    }

    @Test
    void aBindToAnUnassignedDeviceNamesHideAndNewSlot() {
        SwiotlbFixture swiotlb = load(true);
        String dev = "0000:08:00.0";
        assertThatThrownBy(() -> host.vfio().bind(dev))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format(PROBE_FAILED, dev) + "0000:08:00.0 is not assigned to the SWIOTLB-IOMMU of"
                        + " swiotlb: assign it with swiotlb.hide=(0000:08:00.0) or by writing 0000:08:00.0 to"
                        + " swiotlb's new_slot to give it an unsafe SWIOTLB-IOMMU group");

        swiotlb.write("new_slot", dev);
        host.vfio().bind(dev);
        assertThat(host.pci(dev).group()).isNotNull();
    }

    @Test
    void aBindToAnUnassignedDeviceWithTheOptInOffNamesBoth() {
        load(false);
        assertThatThrownBy(() -> host.vfio().bind("0000:08:00.0"))
                .hasMessage(String.format(PROBE_FAILED, "0000:08:00.0") + "swiotlb is loaded, but its"
                        + " enable_unsafe_swiotlb_iommu is off and 0000:08:00.0 is not assigned to it: set"
                        + " swiotlb.enable_unsafe_swiotlb_iommu=1 and assign the device with"
                        + " swiotlb.hide=(0000:08:00.0) or by writing 0000:08:00.0 to swiotlb's new_slot to give it"
                        + " an unsafe SWIOTLB-IOMMU group");
    }

    @Test
    void unassigningADeviceVfioHoldsIsRefusedAndNothingChanges() {
        SwiotlbFixture swiotlb = load(true);
        openOn(NIC);
        assertThatThrownBy(() -> swiotlb.write("remove_slot", NIC))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThat(swiotlb.attribute("slots")).startsWith("0000:06:0d.0\n");
        assertThat(host.pci(NIC).group()).isNotNull();
        assertThatThrownBy(() -> swiotlb.module.parameters().set(SwiotlbProvider.ENABLE_IOMMU, "0"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThat(host.pci(NIC).group()).isNotNull();
    }

    @Test
    void turningTheOptInOffWhileVfioHoldsOneDeviceChangesNothingForTheOthers() {
        SwiotlbFixture swiotlb = load(true);
        host.vfio().bind(NIC); // bound, its group node made, but nobody has opened it
        openOn("0000:07:00.0"); // held by a user: this one refuses
        java.util.List<String> nodes = host.vfio().deviceNodes();
        assertThat(nodes).contains("/dev/vfio/noiommu-0");
        int nicGroup = host.pci(NIC).group().id();

        assertThatThrownBy(() -> swiotlb.module.parameters().set(SwiotlbProvider.ENABLE_IOMMU, "0"))
                .isInstanceOf(IommuException.class)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);

        assertThat(host.pci(NIC).driver()).isEqualTo("vfio-pci");
        assertThat(host.pci(NIC).group().id()).isEqualTo(nicGroup);
        assertThat(host.vfio().deviceNodes()).isEqualTo(nodes);
        assertThat(swiotlb.module.parameters().getBool(SwiotlbProvider.ENABLE_IOMMU)).isTrue();
        assertThat(host.vfio().openGroup(root, "/dev/vfio/noiommu-" + nicGroup)).isNotNull();
    }

    @Test
    void aGroupJoiningAContainerMustReachEveryMappingItAlreadyHas() {
        Host h = Host.builder().memory(8L << 30).commandLine("swiotlb.hide=(0000:06:0d.0)(0000:07:00.0)")
                .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(20)))
                .pciDevice(PciDeviceSpec.of("0000:07:00.0")).build();
        new SwiotlbFixture(h, Map.of(SwiotlbProvider.ENABLE_IOMMU, "1"));
        UserProcess qemu = h.spawn("qemu", 0, Set.of(Capability.CAP_SYS_RAWIO));
        h.vfio().bind("0000:07:00.0");
        VfioContainer c = h.vfio().openContainer(qemu);
        VfioGroupFile wide = h.vfio().openGroup(qemu, h.pci("0000:07:00.0").group().id());
        wide.setContainer(qemu, c);
        c.setIommu(qemu, Vfio.SWIOTLB_IOMMU);
        long va = qemu.mmapContiguous(2 * 4096);
        VfioDmaMapping m = c.mapDma(qemu, va, 2 * 4096, Vfio.ANY_IOVA, IommuProt.READ | IommuProt.WRITE);
        assertThat(m.iova()).isEqualTo(qemu.virtToPhys(va)).isGreaterThan(0xfffffL); // direct, above 1 MiB
        h.vfio().bind(NIC);
        VfioGroupFile narrow = h.vfio().openGroup(qemu, h.pci(NIC).group().id());

        assertThatThrownBy(() -> narrow.setContainer(qemu, c))
                .isInstanceOf(IommuException.class)
                .hasMessageContaining(String.format("VFIO_GROUP_SET_CONTAINER: page 0 (iova 0x%x) of the mapping at"
                        + " vaddr 0x%x is beyond the DMA mask 0xfffff of 0000:06:0d.0; nothing was changed",
                        m.iova(), va))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);

        wide.getDevice(qemu, "0000:07:00.0");
        h.pci("0000:07:00.0").dmaWrite(m.iova(), "still mapped".getBytes());
        assertThat(qemu.read(va, 12)).asString().isEqualTo("still mapped");
        assertThat(c.unmapDma(qemu, m.iova(), 2 * 4096)).isEqualTo(2 * 4096);
        narrow.setContainer(qemu, c); // nothing to reach now
    }
}
