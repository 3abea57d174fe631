package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.api.Test;

/**
 * Who holds a device in Domain-0, and what xen says when it changes or refuses: pciback's {@code unbind} under a
 * bound driver or while a guest has the device, unloading under vfio-pci, a load the SWIOTLB-IOMMU stands in
 * the way of, VFIO refused a device pciback holds for guests, and the log of blocked devices.
 */
class XenOwnershipTest {
    private static final String NIC = "0000:06:0d.0";
    private static final String GPU = "0000:00:02.0";
    private static final String OTHER = "0000:08:00.0";

    private static XenPlatform platform(String dom0CommandLine) {
        return XenPlatform.builder().machineMemory(4L << 30).dom0Memory(256L << 20).dom0CommandLine(dom0CommandLine)
                .pciDevice(PciDeviceSpec.of(GPU).withIds(0x8086, 0x46a6, 0x030000).withDriver("i915"))
                .pciDevice(PciDeviceSpec.of(NIC)).pciDevice(PciDeviceSpec.of(OTHER)).build();
    }

    private static Host dom0(String cmdline) {
        Host host = platform(cmdline).dom0().host();
        host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"), "class path");
        return host;
    }

    private static LoadedModule loadXen(Host host) {
        return host.modules().insert(new XenProvider(), Map.of(), "class path");
    }

    private static String type(Host host, String device) {
        return host.pci(device).group().sysfsType();
    }

    private static Errno errno(Throwable e) {
        return ((IommuException) e).errno();
    }

    @Test
    void pcibackUnbindIsRefusedWhileAHostDriverIsBound() {
        Host host = dom0("xen-pciback.hide=(" + GPU + ")");
        LoadedModule xen = loadXen(host);
        assertThat(type(host, GPU)).isEqualTo("blocked");
        assertThatThrownBy(() -> Machines.attribute(xen, "unbind").write(GPU))
                .hasMessage("pciback: " + GPU + " is bound to i915: unbind i915 first")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
        assertThat(host.pci(GPU).driver()).isEqualTo("i915");
        assertThat(type(host, GPU)).isEqualTo("blocked");
    }

    @Test
    void vfioInDomain0IsRefusedADevicePcibackHoldsForGuestsWithTheReason() {
        Host host = dom0("xen-pciback.hide=(" + OTHER + ")");
        loadXen(host);
        assertThatThrownBy(() -> host.vfio().bind(OTHER))
                .isInstanceOf(IommuException.class)
                .hasMessage("vfio-pci " + OTHER + ": probe with driver vfio-pci failed with error -22: its IOMMU (xen)"
                        + " does not report IOMMU_CAP_CACHE_COHERENCY for it, which VFIO requires: xen: " + OTHER + " is"
                        + " not assigned to d0, so the hypervisor blocks its DMA: pciback holds it for guests; unbind"
                        + " it from pciback to have it back in Domain-0")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EINVAL);
        assertThat(host.pci(OTHER).driver()).isNull();
        host.vfio().bind(NIC);
        assertThat(host.pci(NIC).driver()).isEqualTo("vfio-pci");
    }

    @Test
    void unloadingXenIsRefusedWhileAVfioUserHoldsAGroupAndLogsEachDeviceItTakesFromVfioPci() {
        Host host = dom0("");
        loadXen(host);
        host.vfio().bind(NIC);
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        VfioGroupFile group = host.vfio().openGroup(qemu, host.pci(NIC).group().id());
        assertThatThrownBy(() -> host.modules().remove("xen"))
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EAGAIN);
        assertThat(host.pci(NIC).driver()).isEqualTo("vfio-pci");
        group.close(qemu);

        // bound, but no user: the module's reference count does not hold xen, so the unload is told
        host.modules().remove("xen");
        assertThat(host.pci(NIC).driver()).isNull();
        assertThat(host.log().messages()).containsOnlyOnce("xen: unloading took " + NIC + " from vfio-pci: its"
                + " iommu group went away with xen's IOMMU driver");
        assertThat(host.pci(GPU).driver()).isEqualTo("i915");
        assertThat(host.log().messages()).noneMatch(m -> m.contains("unloading took " + GPU));
    }

    @Test
    void aLoadTheSwiotlbIommuStandsInTheWayOfSaysHowToFixItAndDoesNothing() {
        Host host = platform("").dom0().host();
        host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512", "enable_unsafe_swiotlb_iommu", "1"),
                "class path");
        assertThatThrownBy(() -> loadXen(host))
                .hasMessage("xen: the pci bus's IOMMU ops are the SWIOTLB-IOMMU's (swiotlb was loaded with"
                        + " enable_unsafe_swiotlb_iommu=1): set swiotlb.enable_unsafe_swiotlb_iommu=0 (xen and the"
                        + " SWIOTLB-IOMMU cannot both drive the PCI bus)")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
        assertThat(host.log().messages()).noneMatch(l -> l.contains("machine-contiguous"));
        assertThat(host.modules().find("xen")).isEmpty();
        host.modules().require("swiotlb").parameters().set("enable_unsafe_swiotlb_iommu", "0");
        loadXen(host);
        assertThat(host.log().messages()).anyMatch(l -> l.contains("machine-contiguous"));
    }

    @Test
    void devicesPcibackHoldsAreLoggedOnceAsBlockedAndTheRestAreDomain0s() {
        Host host = dom0("xen-pciback.hide=(" + NIC + ")(" + OTHER + ")");
        loadXen(host);
        assertThat(type(host, GPU)).isEqualTo("DMA");
        assertThat(host.log().messages()).containsOnlyOnce("xen: " + NIC + " is not assigned to d0 (pciback holds"
                + " it for guests): the hypervisor blocks its DMA");
        assertThat(host.log().messages()).noneMatch(l -> l.startsWith("xen: " + GPU + " is not assigned"));
    }

    @Test
    void pcibackLettingGoOfADeviceAGuestStillHasWarnsAsPcistubRemoveDoesAndTheGuestKeepsIt() {
        XenPlatform platform = platform("xen-pciback.hide=(" + NIC + ")");
        Host host = platform.dom0().host();
        LoadedModule xen = Machines.loadDriver(host, Map.of());
        XenDomain guest = Machines.guest(platform, "guest", NIC);
        Machines.attribute(xen, "unbind").write(NIC);
        assertThat(host.log().messages()).contains(
                "xen: ****** removing device " + NIC + " while still in-use by a guest! ******",
                "xen: ****** driver domain may still access this device's i/o resources!");
        assertThat(platform.assignment(NIC)).contains(guest);
        assertThat(type(host, NIC)).isEqualTo("blocked");
        assertThat(guest.host().pci(NIC).group().sysfsType()).isEqualTo("DMA");

        // pciback cannot seize it again while the guest has it: bind reports the hypervisor's refusal
        assertThatThrownBy(() -> Machines.attribute(xen, "bind").write(NIC))
                .hasMessage("xen: " + NIC + " is assigned to d1 (guest): detach it from that guest first (xl"
                        + " pci-detach)")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
        assertThat(type(host, NIC)).isEqualTo("blocked");
        assertThat(host.log().messages()).contains("xen: " + NIC + " is assigned to d1 (guest): detach it from that"
                + " guest first (xl pci-detach); pciback lets " + NIC + " go");
    }

    @Test
    void aGuestIgnoresHideAndHasNoPcibackAttributes() {
        XenPlatform platform = platform("");
        Machines.loadDriver(platform.dom0().host(), Map.of());
        XenDomain guest = platform.createGuest("guest", 64L << 20, "xen-pciback.hide=(" + NIC + ")");
        LoadedModule xen = Machines.loadDriver(guest.host(), Map.of());
        assertThat(xen.backend().attributes()).isEmpty();
        assertThat(guest.host().log().messages()).contains("xen: d1 is not the initial domain: xen-pciback.hide is"
                + " ignored (pciback runs in Domain-0, which gives devices to guests)");
        assertThatThrownBy(() -> platform.attach(NIC, guest))
                .hasMessage("xl: " + NIC + " is not assignable: bind it to pciback in Domain-0 first"
                        + " (xen-pciback.hide=(" + NIC + "), or new_slot then bind)")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EINVAL);
        assertThat(guest.host().buses().all()).isEmpty();
    }

    @Test
    void unloadingSwiotlbWhileXenUsesItsPoolIsRefused() {
        Host host = dom0("");
        loadXen(host);
        assertThatThrownBy(() -> host.modules().remove("swiotlb"))
                .hasMessage("Module swiotlb is in use by: xen")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EAGAIN);
        host.modules().remove("xen");
        host.modules().remove("swiotlb");
        assertThat(host.pci(NIC).group()).isNull();
    }
}
