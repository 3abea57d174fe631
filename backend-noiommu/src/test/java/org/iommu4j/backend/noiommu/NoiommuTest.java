package org.iommu4j.backend.noiommu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
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
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioDeviceFile;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

class NoiommuTest {
    private static final String NIC = "0000:06:0d.0";
    private static final byte[] PACKET = "0123456789abcdef-frame-from-the-wire".getBytes(StandardCharsets.US_ASCII);

    private final Host host = Host.builder()
            .pciDevice(PciDeviceSpec.of(NIC))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(32)))
            .pciDevice(PciDeviceSpec.of("0000:08:00.0"))
            .build();
    private final UserProcess root = host.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO));
    private final UserProcess user = host.spawn("hct_test", 1000, Set.of(Capability.CAP_IPC_LOCK));

    private LoadedModule load(String enable) {
        return host.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, enable), "class path");
    }

    /** Bind, open, set the type: everything before the first map, as the privileged test program does it. */
    private record Session(VfioContainer container, VfioGroupFile group, VfioDeviceFile device) {
    }

    private Session open(UserProcess caller, String device) {
        host.vfio().bind(device);
        VfioContainer container = host.vfio().openContainer(caller);
        VfioGroupFile group = host.vfio().openGroup(caller, host.pci(device).group().id());
        group.setContainer(caller, container);
        container.setIommu(caller, Vfio.NOIOMMU_IOMMU);
        return new Session(container, group, group.getDevice(caller, device));
    }

    @Test
    void endToEndAPrivilegedProcessMapsAContiguousBufferAndTheDeviceDmasAPacketIntoIt() {
        load("1");
        Session s = open(root, NIC);
        long va = root.mmapContiguous(4 * 4096);
        long phys = root.virtToPhys(va);

        VfioDmaMapping m = s.container().mapDma(root, va, 4 * 4096, phys, IommuProt.READ | IommuProt.WRITE);
        assertThat(m.iova()).isEqualTo(phys);
        host.pci(NIC).dmaWrite(m.iova() + 100, PACKET);

        assertThat(root.read(va + 100, PACKET.length)).isEqualTo(PACKET);
        assertThat(s.group().node()).isEqualTo("/dev/vfio/noiommu-0");
        assertThat(host.log().messages()).containsSubsequence(
                "vfio-pci 0000:06:0d.0: Adding to iommu group 0",
                "vfio-pci 0000:06:0d.0: Adding kernel taint for vfio-noiommu group on device",
                "vfio-pci 0000:06:0d.0: vfio-noiommu device opened by user (hct_test:" + root.pid() + ")");
        assertThat(host.taint().taintedString()).isEqualTo("Tainted: G     U" + " ".repeat(13));
        assertThat(host.taint().records()).extracting(r -> r.who() + ": " + r.event())
                .containsExactly("noiommu: vfio-noiommu group for 0000:06:0d.0");
    }

    @Test
    void withoutTheCapabilityTheFirstStepFailsWithEperm() {
        load("1");
        host.vfio().bind(NIC);
        assertThatThrownBy(() -> host.vfio().openGroup(user, "/dev/vfio/noiommu-0"))
                .isInstanceOf(IommuException.class)
                .hasMessage("opening /dev/vfio/noiommu-0 requires CAP_SYS_RAWIO (it has no IOMMU isolation); "
                        + user + " does not have it")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
    }

    @Test
    void withoutTheOptInTheFirstStepFailsWithEinvalAndNothingIsTainted() {
        load("0");
        assertThatThrownBy(() -> host.vfio().bind(NIC))
                .isInstanceOf(IommuException.class)
                .hasMessage("vfio-pci 0000:06:0d.0: probe with driver vfio-pci failed with error -22: the device has"
                        + " no iommu group; noiommu is loaded, but its enable_unsafe_noiommu_mode is off: boot with"
                        + " vfio.enable_unsafe_noiommu_mode=1 (or set noiommu.enable_unsafe_noiommu_mode=1) to give"
                        + " the device an unsafe no-IOMMU group")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
        assertThat(host.vfio().openContainer(root).checkExtension(root, Vfio.NOIOMMU_IOMMU)).isZero();
    }

    @Test
    void withTheOptInTurnedOffAfterAGroupExistsTheNoiommuTypeIsRefused() {
        LoadedModule m = load("1");
        host.vfio().bind(NIC);
        VfioContainer container = host.vfio().openContainer(root);
        VfioGroupFile group = host.vfio().openGroup(root, "/dev/vfio/noiommu-0");
        group.setContainer(root, container);
        m.parameters().set(NoiommuProvider.ENABLE, "0");

        assertThat(container.checkExtension(root, Vfio.NOIOMMU_IOMMU)).isZero();
        // the kernel's VFIO_SET_IOMMU: no driver answers the extension check, so -ENODEV
        assertThatThrownBy(() -> container.setIommu(root, Vfio.NOIOMMU_IOMMU))
                .isInstanceOf(IommuException.class)
                .hasMessage("VFIO_SET_IOMMU: no VFIO iommu driver offers VFIO_NOIOMMU_IOMMU(8) for unisolated"
                        + " (no-IOMMU) groups; registered: [vfio-iommu-type1, vfio-noiommu]")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        long va = root.mmapContiguous(4096);
        assertThatThrownBy(() -> container.mapDma(root, va, 4096, root.virtToPhys(va), IommuProt.READ))
                .isInstanceOf(IommuException.class)
                .hasMessage("the container has no iommu type: VFIO_SET_IOMMU first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(root.lockedPages()).isZero();

        // the refusal left the container as it was: with the opt-in back on, the same call succeeds
        m.parameters().set(NoiommuProvider.ENABLE, "1");
        container.setIommu(root, Vfio.NOIOMMU_IOMMU);
        assertThat(container.mapDma(root, va, 4096, root.virtToPhys(va), IommuProt.READ).iova())
                .isEqualTo(root.virtToPhys(va));
    }

    @Test
    void theOptInCanBeTurnedOnAfterLoadAndSaysItIsUnsafe() {
        LoadedModule m = load("0");
        assertThat(host.log().messages()).noneMatch(l -> l.contains("UNSAFE"));
        m.parameters().set(NoiommuProvider.ENABLE, "1");
        assertThat(host.log().messages()).contains("noiommu: UNSAFE no-IOMMU mode enabled: devices bound to VFIO"
                + " get no isolation and no DMA translation, and the kernel will be tainted");
        host.vfio().bind(NIC);
        assertThat(host.vfio().deviceNodes()).containsExactly("/dev/vfio/noiommu-0");
    }

    @Test
    void groupsAreMadeOnlyForDevicesBoundToVfioAndShowInSysfs() {
        load("1");
        assertThat(host.iommu().groups()).isEmpty();
        host.vfio().bind("0000:08:00.0");
        assertThat(host.iommu().groups()).hasSize(1);
        assertThat(host.pci(NIC).group()).isNull();
        assertThat(host.sysfs().readlink("/sys/bus/pci/devices/0000:08:00.0/iommu_group"))
                .hasValue("../../../../kernel/iommu_groups/0");
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/name")).hasValue("vfio-noiommu");
        assertThat(host.sysfs().list("/sys/kernel/iommu_groups/0/devices")).containsExactly("0000:08:00.0");
    }

    @Nested
    class Privilege {
        @Test
        void everyCriticalAccessPointChecksTheCaller() {
            load("1");
            host.vfio().bind("0000:08:00.0");
            Session s = open(root, NIC);
            long va = user.mmapContiguous(4096);
            String node = s.group().node();

            // set iommu type: a container the privileged process set up, but whose type is not set yet
            VfioContainer fresh = host.vfio().openContainer(root);
            VfioGroupFile other = host.vfio().openGroup(root, host.pci("0000:08:00.0").group().id());
            other.setContainer(root, fresh);
            // every file is passed to the unprivileged process: holding a file gives it no capability
            fresh.passTo(root, user);
            s.container().passTo(root, user);
            s.group().passTo(root, user);
            s.device().passTo(root, user);
            assertThatThrownBy(() -> fresh.setIommu(user, Vfio.NOIOMMU_IOMMU))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("setting the iommu type of a container with vfio-noiommu requires CAP_SYS_RAWIO"
                            + " (its iommu driver gives no DMA isolation); " + user + " does not have it")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
            // refused, not half done: the privileged owner can still set the type
            fresh.setIommu(root, Vfio.NOIOMMU_IOMMU);

            assertThatThrownBy(() -> s.group().getDevice(user, NIC))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("getting a device from " + node + " requires CAP_SYS_RAWIO (it has no IOMMU"
                            + " isolation); " + user + " does not have it")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
            assertThatThrownBy(() -> s.device().configRead(user, 0, 4))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("accessing a device of " + node + " requires CAP_SYS_RAWIO (it has no IOMMU"
                            + " isolation); " + user + " does not have it")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
            assertThatThrownBy(() -> s.container().mapDma(user, va, 4096, user.virtToPhys(va), IommuProt.WRITE))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("mapping DMA in a container with vfio-noiommu requires CAP_SYS_RAWIO (its iommu"
                            + " driver gives no DMA isolation); " + user + " does not have it")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
            assertThatThrownBy(() -> s.group().unsetContainer(user))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("removing from its container " + node + " requires CAP_SYS_RAWIO (it has no"
                            + " IOMMU isolation); " + user + " does not have it")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
            assertThat(user.lockedPages()).isZero();
            assertThat(s.container().groupIds()).hasSize(1);
        }
    }

    @Nested
    class Mapping {
        @Test
        void memoryThatIsNotContiguousIsRefusedNamingTheFirstOffendingPage() {
            load("1");
            Session s = open(root, NIC);
            long va = root.mmap(3 * 4096); // scattered pages
            long[] frames = root.pagemap(va, 3 * 4096);

            assertThatThrownBy(() -> s.container().mapDma(root, va, 3 * 4096, frames[0], IommuProt.READ))
                    .isInstanceOf(IommuException.class)
                    .hasMessage(String.format("VFIO_IOMMU_MAP_DMA: memory at vaddr 0x%x is not physically contiguous:"
                            + " page 1 (vaddr 0x%x) is at phys 0x%x, not 0x%x; no-IOMMU mode needs one physical run",
                            va, va + 4096, frames[1], frames[0] + 4096))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThat(root.lockedPages()).isZero();
        }

        @Test
        void anIovaThatIsNotThePhysicalAddressIsRefused() {
            load("1");
            Session s = open(root, NIC);
            long va = root.mmapContiguous(2 * 4096);
            long phys = root.virtToPhys(va);
            assertThatThrownBy(() -> s.container().mapDma(root, va, 2 * 4096, 0x10000, IommuProt.READ))
                    .hasMessage(String.format("VFIO_IOMMU_MAP_DMA: iova 0x10000 is not the physical address 0x%x of"
                            + " vaddr 0x%x (page 0): without an IOMMU, iova == phys", phys, va))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThat(root.lockedPages()).isZero();
            assertThat(s.container().mapDma(root, va, 2 * 4096, Vfio.ANY_IOVA, IommuProt.READ).iova())
                    .isEqualTo(phys);
        }

        @Test
        void memoryBeyondTheDevicesMaskIsRefusedNamingTheFirstPageOutOfReach() {
            Host big = Host.builder().memory(8L << 30)
                    .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(32))).build();
            big.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, "1"), "class path");
            UserProcess p = big.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
            big.vfio().bind("0000:07:00.0");
            VfioContainer c = big.vfio().openContainer(p);
            VfioGroupFile g = big.vfio().openGroup(p, "/dev/vfio/noiommu-0");
            g.setContainer(p, c);
            c.setIommu(p, Vfio.NOIOMMU_IOMMU);
            long reachable = p.mmapContiguous(4096);
            assertThat(c.mapDma(p, reachable, 4096, p.virtToPhys(reachable), IommuProt.WRITE).iova())
                    .isLessThan(1L << 32);
            // take the rest of the low 4 GiB, so that the next large contiguous buffer lands above it
            big.pageAllocator().allocateContiguous(((4L << 30) - (4L << 20)) >>> 12, 1L << 32);
            long high = p.mmapContiguous(8L << 20);
            long phys = p.virtToPhys(high);
            assertThat(phys).isGreaterThanOrEqualTo(4L << 30);

            assertThatThrownBy(() -> c.mapDma(p, high, 8L << 20, phys, IommuProt.WRITE))
                    .isInstanceOf(IommuException.class)
                    .hasMessage(String.format("VFIO_IOMMU_MAP_DMA: page 0 (phys 0x%x) of the mapping at vaddr 0x%x is"
                            + " beyond the DMA mask 0xffffffff of 0000:07:00.0", phys, high))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThat(p.lockedPages()).isEqualTo(1);
        }

        @Test
        void aGroupWhoseDeviceCannotReachAnExistingMappingCannotJoinTheContainer() {
            Host big = Host.builder().memory(8L << 30)
                    .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
                    .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(32))).build();
            big.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, "1"), "class path");
            UserProcess p = big.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
            big.vfio().bind("0000:06:0d.0");
            big.vfio().bind("0000:07:00.0");
            VfioContainer c = big.vfio().openContainer(p);
            big.vfio().openGroup(p, "/dev/vfio/noiommu-0").setContainer(p, c);
            c.setIommu(p, Vfio.NOIOMMU_IOMMU);
            big.pageAllocator().allocateContiguous(((4L << 30) - (4L << 20)) >>> 12, 1L << 32);
            long high = p.mmapContiguous(8L << 20);
            long phys = p.virtToPhys(high);
            assertThat(phys).isGreaterThanOrEqualTo(4L << 30);
            c.mapDma(p, high, 8L << 20, phys, IommuProt.WRITE);

            VfioGroupFile narrow = big.vfio().openGroup(p, "/dev/vfio/noiommu-1");
            assertThatThrownBy(() -> narrow.setContainer(p, c))
                    .isInstanceOf(IommuException.class)
                    .hasMessage(String.format("VFIO_GROUP_SET_CONTAINER: page 0 (phys 0x%x) of the mapping at vaddr"
                            + " 0x%x is beyond the DMA mask 0xffffffff of 0000:07:00.0", phys, high))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThat(c.groupIds()).hasSize(1);
            assertThat(narrow.status(p).viable()).isTrue();

            c.unmapDma(p, phys, 8L << 20);
            narrow.setContainer(p, c);
            assertThat(c.groupIds()).hasSize(2);
        }

        @Test
        void theKernelFaithfulModeRefusesMapWithEnotty() {
            host.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, "1",
                    NoiommuProvider.KERNEL_FAITHFUL, "1"), "class path");
            Session s = open(root, NIC);
            long va = root.mmapContiguous(4096);
            assertThatThrownBy(() -> s.container().mapDma(root, va, 4096, root.virtToPhys(va), IommuProt.READ))
                    .hasMessage("VFIO_IOMMU_MAP_DMA: vfio-noiommu does not map: there is no IOMMU; program the"
                            + " physical addresses of your pinned buffer (pagemap) into the device")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOTTY);
            assertThat(root.lockedPages()).isZero();
        }
    }

    @Test
    void aDeviceInANoiommuGroupCanCorruptMemoryItWasNeverGiven() {
        load("1");
        UserProcess victim = host.spawn("sshd", 0, Set.of());
        long secretVa = victim.mmap(4096);
        victim.write(secretVa, "root password hash".getBytes(StandardCharsets.US_ASCII));
        long secretPhys = victim.virtToPhys(secretVa);
        Session s = open(root, NIC);
        long va = root.mmapContiguous(4096);
        s.container().mapDma(root, va, 4096, root.virtToPhys(va), IommuProt.WRITE);

        // a stray write, far from the one page the user mapped: nothing stops it
        host.pci(NIC).dmaWrite(secretPhys, "0wned".getBytes(StandardCharsets.US_ASCII));

        assertThat(victim.read(secretVa, 18)).asString(StandardCharsets.US_ASCII).isEqualTo("0wnedpassword hash");
        assertThat(host.pci(NIC).faultCount()).isZero();
        assertThat(host.taint().isSet(TaintFlag.USER)).isTrue();
    }

    @Test
    void theDmaApiIsNommuIdentityWithTheOldOverflowMessage() {
        load("1");
        Host big = Host.builder().memory(8L << 30)
                .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(32))).build();
        big.modules().insert(new NoiommuProvider(), Map.of(), "class path");
        PciDevice narrow = big.pci("0000:07:00.0");
        assertThat(big.dma().map(narrow, 0x1000, 4096, DmaDirection.TO_DEVICE)).isEqualTo(0x1000);
        assertThatThrownBy(() -> big.dma().map(narrow, 0x1_0000_0000L, 4096, DmaDirection.TO_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("nommu_map_single: overflow 100000000+4096 of device mask ffffffff");
        assertThat(big.log().messages()).contains("noiommu: nommu_map_single: overflow 100000000+4096 of device mask"
                + " ffffffff");
    }

    @Test
    void hotRemoveTearsTheGroupDownUnbindReleasesItAndNeitherClearsTheTaint() {
        load("1");
        host.vfio().bind(NIC);
        host.vfio().bind("0000:08:00.0");
        assertThat(host.iommu().groups()).hasSize(2);

        host.buses().remove(NIC);
        host.vfio().unbind("0000:08:00.0");
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(host.vfio().deviceNodes()).isEmpty();
        assertThat(host.taint().isSet(TaintFlag.USER)).isTrue();
    }

    @Test
    void theModuleCannotBeUnloadedWhileAContainerUsesItAndUnloadingUnbindsItsDevices() {
        load("1");
        Session s = open(root, NIC);
        assertThatThrownBy(() -> host.modules().remove("noiommu"))
                .hasMessage("Module noiommu is in use")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        s.device().close(root);
        s.group().close(root);
        s.container().close(root);
        host.modules().remove("noiommu");
        assertThat(host.pci(NIC).driver()).isNull();
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(host.taint().isSet(TaintFlag.USER)).isTrue();
    }

    /** Issue 12 #6: the kernel's order of checks in drivers/vfio/group.c and container.c (Linux v6.12). */
    @Nested
    class KernelOrder {
        @Test
        void theVfioModulesBootParameterIsTheOptIn() {
            Host booted = Host.builder().commandLine("vfio.enable_unsafe_noiommu_mode=1")
                    .pciDevice(PciDeviceSpec.of(NIC)).build();
            LoadedModule m = booted.modules().insert(new NoiommuProvider(), Map.of(), "class path");
            booted.vfio().bind(NIC);
            assertThat(booted.vfio().deviceNodes()).containsExactly("/dev/vfio/noiommu-0");
            assertThat(m.parameters().get(NoiommuProvider.ENABLE)).isEqualTo("N");
            assertThat(booted.log().messages()).contains("noiommu: UNSAFE no-IOMMU mode enabled: devices bound to"
                    + " VFIO get no isolation and no DMA translation, and the kernel will be tainted");

            Host off = Host.builder().commandLine("vfio.enable_unsafe_noiommu_mode=0")
                    .pciDevice(PciDeviceSpec.of(NIC)).build();
            off.modules().insert(new NoiommuProvider(), Map.of(), "class path");
            assertThatThrownBy(() -> off.vfio().bind(NIC))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        }

        @Test
        void getDeviceFdWithAnUnknownNameIsEnodevBeforeAnyContainerCheck() {
            load("1");
            host.vfio().bind(NIC);
            VfioGroupFile group = host.vfio().openGroup(root, "/dev/vfio/noiommu-0");
            assertThatThrownBy(() -> group.getDevice(root, "0000:99:00.0"))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("no device 0000:99:00.0 bound to VFIO in /dev/vfio/noiommu-0; its devices:"
                            + " [0000:06:0d.0]")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        }

        @Test
        void withoutAContainerACallerLackingRawioGetsEinvalAsTheContainerIsCheckedFirst() {
            load("1");
            host.vfio().bind(NIC);
            VfioGroupFile group = host.vfio().openGroup(root, "/dev/vfio/noiommu-0");
            group.passTo(root, user);
            assertThatThrownBy(() -> group.getDevice(user, NIC))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("/dev/vfio/noiommu-0 is not ready for device access: it must be viable and in a"
                            + " container whose iommu type is set")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);

            VfioContainer container = host.vfio().openContainer(root);
            container.passTo(root, user);
            assertThatThrownBy(() -> group.setContainer(user, container))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
            group.setContainer(root, container);
            // a repeated VFIO_GROUP_SET_CONTAINER: "already in a container" comes before the capability
            assertThatThrownBy(() -> group.setContainer(user, container))
                    .hasMessage("/dev/vfio/noiommu-0 is already in a container: unset it first")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            // in a container without an iommu type: still EINVAL before the capability
            assertThatThrownBy(() -> group.getDevice(user, NIC))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            container.setIommu(root, Vfio.NOIOMMU_IOMMU);
            assertThatThrownBy(() -> group.getDevice(user, NIC))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        }

        @Test
        void withTheKernelsMapRuleUnmapIsEnottyToo() {
            host.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, "1",
                    NoiommuProvider.KERNEL_FAITHFUL, "1"), "class path");
            Session s = open(root, NIC);
            assertThatThrownBy(() -> s.container().unmapDma(root, 0x10000, 0x1000))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("VFIO_IOMMU_UNMAP_DMA: vfio-noiommu does not unmap: there is no IOMMU, so nothing is"
                            + " ever mapped")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOTTY);
            // ENOTTY before the arguments are looked at, as the kernel's driver answers every ioctl but one
            assertThatThrownBy(() -> s.container().unmapDma(root, 0x10001, 0, 0x80))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOTTY);
            assertThatThrownBy(() -> s.container().mapDma(root, 1, 0, 3, IommuProt.CACHE))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOTTY);
        }

        @Test
        void getInfoIsEnottyForTheNoiommuDriver() {
            load("1");
            Session s = open(root, NIC);
            assertThatThrownBy(() -> s.container().iommuInfo(root))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("VFIO_IOMMU_GET_INFO: vfio-noiommu implements only VFIO_CHECK_EXTENSION"
                            + " (Inappropriate ioctl for device)")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOTTY);
        }

        @Test
        void anExitedProcessOpensNothingAndKeepsNoModuleReference() {
            load("1");
            host.vfio().bind(NIC);
            UserProcess gone = host.spawn("qemu", 1000, Set.of(Capability.CAP_SYS_RAWIO));
            gone.exit();
            assertThatThrownBy(() -> host.vfio().openGroup(gone, "/dev/vfio/noiommu-0"))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("process qemu:" + gone.pid() + " has exited")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ESRCH);
            host.vfio().openGroup(root, "/dev/vfio/noiommu-0").close(root);
            host.modules().remove("noiommu");
            assertThat(host.modules().find("noiommu")).isEmpty();
        }
    }
}
