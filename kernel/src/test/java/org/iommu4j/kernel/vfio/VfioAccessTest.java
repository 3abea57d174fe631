package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.UnisolatedTestDriver;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A group without isolation: CAP_SYS_RAWIO at every access point, for whoever makes the call, so a file a
 * privileged process opened is worth nothing to an unprivileged one.
 */
class VfioAccessTest {
    private final Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:00:07.0")).build();
    private final UserProcess root = host.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO));
    private final UserProcess user = host.spawn("mallory", 1000, Set.of(Capability.CAP_IPC_LOCK));

    @BeforeEach
    void bind() {
        host.vfioDrivers().register(new UnisolatedTestDriver(host.iommu()), ModuleRef.KERNEL);
        host.vfio().bind("0000:00:07.0");
    }

    @Test
    void bindingMakesAFakeGroupAndTaintsWithTheKernelsLines() {
        assertThat(host.vfio().deviceNodes()).containsExactly("/dev/vfio/noiommu-0");
        assertThat(host.sysfs().readlink("/sys/bus/pci/devices/0000:00:07.0/iommu_group"))
                .hasValue("../../../kernel/iommu_groups/0");
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/name")).hasValue("vfio-noiommu");
        assertThat(host.taint().isSet(TaintFlag.USER)).isTrue();
        assertThat(host.log().messages()).containsSubsequence(
                "vfio-pci 0000:00:07.0: Adding to iommu group 0",
                "vfio-pci 0000:00:07.0: Adding kernel taint for vfio-noiommu group on device");
    }

    @Test
    void openingNeedsRawio() {
        assertThatThrownBy(() -> host.vfio().openGroup(user, "/dev/vfio/noiommu-0"))
                .isInstanceOf(IommuException.class)
                .hasMessage("opening /dev/vfio/noiommu-0 requires CAP_SYS_RAWIO (it has no IOMMU isolation);"
                        + " mallory:" + user.pid() + " does not have it")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> host.vfio().openGroup(root, "/dev/vfio/0"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
    }

    @Test
    void everyLaterStepChecksTheCallerToo() {
        VfioGroupFile group = host.vfio().openGroup(root, "/dev/vfio/noiommu-0");
        VfioContainer container = host.vfio().openContainer(root);
        // the privileged opener hands both files to an unprivileged process: holding them is not enough
        group.passTo(root, user);
        container.passTo(root, user);

        assertThatThrownBy(() -> group.setContainer(user, container))
                .hasMessageStartingWith("adding to a container /dev/vfio/noiommu-0 requires CAP_SYS_RAWIO")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        group.setContainer(root, container);
        assertThatThrownBy(() -> container.setIommu(user, Vfio.NOIOMMU_IOMMU))
                .hasMessage("setting the iommu type of a container with vfio-test-noiommu requires CAP_SYS_RAWIO"
                        + " (its iommu driver gives no DMA isolation); mallory:" + user.pid() + " does not have it")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        container.setIommu(root, Vfio.NOIOMMU_IOMMU);
        assertThatThrownBy(() -> group.getDevice(user, "0000:00:07.0"))
                .hasMessageStartingWith("getting a device from /dev/vfio/noiommu-0 requires CAP_SYS_RAWIO");
        assertThat(host.log().messages()).noneMatch(m -> m.contains("opened by user"));

        long va = user.mmapContiguous(4096);
        assertThatThrownBy(() -> container.mapDma(user, va, 4096, user.virtToPhys(va), IommuProt.WRITE))
                .hasMessageStartingWith("mapping DMA in a container with vfio-test-noiommu requires CAP_SYS_RAWIO");
        assertThat(user.lockedPages()).isZero();

        VfioDeviceFile device = group.getDevice(root, "0000:00:07.0");
        assertThat(host.log().messages()).contains(
                "vfio-pci 0000:00:07.0: vfio-noiommu device opened by user (hct_test:" + root.pid() + ")");
        assertThatThrownBy(() -> device.configRead(user, 0, 2))
                .hasMessageStartingWith("[vfio-device] 0000:00:07.0: Bad file descriptor: mallory:")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBADF);
        device.passTo(root, user);
        assertThatThrownBy(() -> device.configRead(user, 0, 2))
                .hasMessageStartingWith("accessing a device of /dev/vfio/noiommu-0 requires CAP_SYS_RAWIO");
        assertThat(device.configRead(root, 0, 2)).isEqualTo(0x8086);
    }

    @Test
    void unisolatedAndIsolatedGroupsDoNotMixAndAnIsolatingDriverIsNotOffered() {
        VfioGroupFile group = host.vfio().openGroup(root, "/dev/vfio/noiommu-0");
        VfioContainer container = host.vfio().openContainer(root);
        assertThat(container.checkExtension(root, Vfio.TYPE1v2_IOMMU)).isEqualTo(1);
        group.setContainer(root, container);
        assertThat(container.checkExtension(root, Vfio.TYPE1v2_IOMMU)).isZero();
        assertThat(container.checkExtension(root, Vfio.NOIOMMU_IOMMU)).isEqualTo(1);
        assertThatThrownBy(() -> container.setIommu(root, Vfio.TYPE1v2_IOMMU))
                .hasMessage("VFIO_SET_IOMMU: no VFIO iommu driver offers VFIO_TYPE1v2_IOMMU(3) for unisolated"
                        + " (no-IOMMU) groups; registered: [vfio-iommu-type1, vfio-test-noiommu]")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
    }
}
