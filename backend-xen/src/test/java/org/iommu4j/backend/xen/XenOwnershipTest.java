package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.junit.jupiter.api.Test;

/**
 * Who holds a device under xen, and what xen says when it changes or refuses: pciback's {@code unbind} under a
 * bound driver, unloading under vfio-pci, a load the SWIOTLB-IOMMU stands in the way of, a device the
 * hypervisor will not assign, blocked devices, and hot-add of a listed device.
 */
class XenOwnershipTest {
    private static final String NIC = "0000:06:0d.0";
    private static final String GPU = "0000:00:02.0";
    private static final String OTHER = "0000:08:00.0";

    private static Host host(String cmdline, Map<String, String> swiotlb) {
        Host host = Host.builder().commandLine(cmdline)
                .pciDevice(PciDeviceSpec.of(GPU).withIds(0x8086, 0x46a6, 0x030000).withDriver("i915"))
                .pciDevice(PciDeviceSpec.of(NIC))
                .pciDevice(PciDeviceSpec.of(OTHER))
                .build();
        host.modules().insert(new SwiotlbProvider(), swiotlb, "class path");
        return host;
    }

    private static Host host(String cmdline) {
        return host(cmdline, Map.of("nslabs", "512"));
    }

    private static LoadedModule loadXen(Host host) {
        return host.modules().insert(new XenProvider(), Map.of("p2m", "contiguous"), "class path");
    }

    /** A hypervisor a test can reach into: dom0, the host's guest (domain 1) and another guest (domain 2). */
    private record Machine(XenHypervisor hypervisor, XenDomain guest, XenDomain other) {
        static Machine of(Host host) {
            long guestPages = host.memory().size() >>> PhysicalMemory.PAGE_SHIFT;
            XenHypervisor hv = new XenHypervisor(2 * guestPages + 16384);
            hv.createDomain("Domain-0", 8192, P2mLayout.contiguous());
            XenDomain guest = hv.createGuest("guest", host.memory(), P2mLayout.contiguous());
            XenDomain other = hv.createDomain("other-guest", 16, P2mLayout.contiguous());
            return new Machine(hv, guest, other);
        }

        LoadedModule load(Host host) {
            return host.modules().insert(new XenProvider(hypervisor, guest), Map.of(), "class path");
        }
    }

    private static ModuleAttribute attribute(LoadedModule xen, String name) {
        return xen.backend().attributes().stream().filter(a -> a.name().equals(name)).findFirst().orElseThrow();
    }

    private static String type(Host host, String device) {
        return host.pci(device).group().sysfsType();
    }

    private static Errno errno(Throwable e) {
        return ((IommuException) e).errno();
    }

    @Test
    void pcibackUnbindIsRefusedWhileVfioPciIsBoundEvenWithNoUser() {
        Host host = host("xen-pciback.hide=(" + NIC + ")");
        LoadedModule xen = loadXen(host);
        host.vfio().bind(NIC);
        List<String> nodes = host.vfio().deviceNodes();
        assertThat(nodes).hasSize(1);

        assertThatThrownBy(() -> attribute(xen, "unbind").write(NIC))
                .hasMessage("pciback: " + NIC + " is bound to vfio-pci: unbind vfio-pci first")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
        assertThat(host.pci(NIC).driver()).isEqualTo("vfio-pci");
        assertThat(host.vfio().deviceNodes()).isEqualTo(nodes);
        assertThat(type(host, NIC)).isEqualTo("DMA");

        host.vfio().unbind(NIC);
        attribute(xen, "unbind").write(NIC);
        assertThat(type(host, NIC)).isEqualTo("blocked");
    }

    @Test
    void pcibackUnbindIsRefusedWhileAHostDriverIsBound() {
        Host host = host("xen-pciback.hide=(" + GPU + ")");
        LoadedModule xen = loadXen(host);
        assertThat(type(host, GPU)).isEqualTo("DMA");
        assertThatThrownBy(() -> attribute(xen, "unbind").write(GPU))
                .hasMessage("pciback: " + GPU + " is bound to i915: unbind i915 first")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
        assertThat(host.pci(GPU).driver()).isEqualTo("i915");
        assertThat(type(host, GPU)).isEqualTo("DMA");
    }

    @Test
    void unloadingXenIsRefusedWhileAVfioUserHoldsAGroupAndLogsEachDeviceItTakesFromVfioPci() {
        Host host = host("xen-pciback.hide=(" + NIC + ")");
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
        assertThat(host.vfio().deviceNodes()).isEmpty();
        assertThat(host.log().messages()).containsOnlyOnce("xen: unloading took " + NIC + " from vfio-pci: its"
                + " iommu group went away with xen's IOMMU driver");
        // a host driver keeps its device: nothing to say about it
        assertThat(host.pci(GPU).driver()).isEqualTo("i915");
        assertThat(host.log().messages()).noneMatch(m -> m.contains("unloading took " + GPU));
    }

    @Test
    void aLoadTheSwiotlbIommuStandsInTheWayOfSaysHowToFixItAndDoesNothing() {
        Host host = host("", Map.of("nslabs", "512", "enable_unsafe_swiotlb_iommu", "1"));
        Machine m = Machine.of(host);
        long free = m.hypervisor().freeFrames();
        long guestMfn = m.guest().mfn(0);
        assertThatThrownBy(() -> m.load(host))
                .hasMessage("xen: the pci bus's IOMMU ops are the SWIOTLB-IOMMU's (swiotlb was loaded with"
                        + " enable_unsafe_swiotlb_iommu=1): set swiotlb.enable_unsafe_swiotlb_iommu=0 (xen and the"
                        + " SWIOTLB-IOMMU cannot both drive the PCI bus)")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
        assertThat(m.hypervisor().freeFrames()).isEqualTo(free);
        assertThat(m.guest().mfn(0)).isEqualTo(guestMfn);
        assertThat(host.log().messages()).noneMatch(l -> l.contains("machine-contiguous"));
        assertThat(host.modules().find("xen")).isEmpty();
        assertThat(m.hypervisor().assignment(PciAddress.parse(NIC))).isEmpty();

        host.modules().require("swiotlb").parameters().set("enable_unsafe_swiotlb_iommu", "0");
        m.load(host);
        assertThat(host.log().messages()).anyMatch(l -> l.contains("machine-contiguous"));
    }

    @Test
    void aDeviceTheHypervisorGaveAnotherDomainIsNotKeptAtLoadAndBindReportsTheRefusal() {
        Host host = host("xen-pciback.hide=(" + OTHER + ")");
        Machine m = Machine.of(host);
        PciAddress other = PciAddress.parse(OTHER);
        m.hypervisor().assignDevice(m.other(), other);
        LoadedModule xen = m.load(host);

        assertThat(type(host, OTHER)).isEqualTo("blocked");
        assertThat(host.log().messages()).contains("xen: " + OTHER + " is assigned to domain 2 (other-guest);"
                + " pciback lets " + OTHER + " go and it stays blocked");
        assertThatThrownBy(() -> attribute(xen, "unbind").write(OTHER))
                .hasMessage("pciback: " + OTHER + " is not bound to pciback")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.ENODEV);
        int groups = host.iommu().groups().size();
        assertThatThrownBy(() -> attribute(xen, "bind").write(OTHER))
                .hasMessage("xen: " + OTHER + " is assigned to domain 2 (other-guest)")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
        assertThat(type(host, OTHER)).isEqualTo("blocked");
        assertThat(host.iommu().groups()).hasSize(groups);
        assertThat(m.hypervisor().assignment(other)).contains(m.other());
        assertThatThrownBy(() -> attribute(xen, "unbind").write(OTHER))
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.ENODEV);

        // once the other domain lets it go, bind gives it to the guest
        m.hypervisor().deassignDevice(other);
        attribute(xen, "bind").write(OTHER);
        assertThat(type(host, OTHER)).isEqualTo("DMA");
        assertThat(m.hypervisor().assignment(other)).contains(m.guest());
    }

    @Test
    void aHotAddedListedDeviceTheHypervisorGaveAnotherDomainStaysBlockedAndIsNotSeized() {
        Host host = host("xen-pciback.hide=(0000:09:00.0)");
        Machine m = Machine.of(host);
        m.hypervisor().assignDevice(m.other(), PciAddress.parse("0000:09:00.0"));
        LoadedModule xen = m.load(host);
        host.buses().addPci(PciDeviceSpec.of("0000:09:00.0"));
        assertThat(type(host, "0000:09:00.0")).isEqualTo("blocked");
        assertThatThrownBy(() -> attribute(xen, "bind").write("0000:09:00.0"))
                .hasMessage("xen: 0000:09:00.0 is assigned to domain 2 (other-guest)")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
    }

    @Test
    void bindOfAListedDeviceAnotherDomainHasFailsWithTheHypervisorsRefusal() {
        Host host = host("");
        Machine m = Machine.of(host);
        LoadedModule xen = m.load(host);
        m.hypervisor().assignDevice(m.other(), PciAddress.parse(NIC));
        attribute(xen, "new_slot").write(NIC);
        assertThatThrownBy(() -> attribute(xen, "bind").write(NIC))
                .hasMessage("xen: " + NIC + " is assigned to domain 2 (other-guest)")
                .extracting(XenOwnershipTest::errno).isEqualTo(Errno.EBUSY);
        assertThat(type(host, NIC)).isEqualTo("blocked");
        assertThatThrownBy(() -> host.vfio().bind(NIC)).extracting(XenOwnershipTest::errno).isEqualTo(Errno.EINVAL);
    }

    @Test
    void anUnassignedDeviceIsBlockedAndLoggedOnceAsItsBlockedGroupIsMade() {
        Host host = host("xen-pciback.hide=(" + NIC + ")");
        loadXen(host);
        assertThat(type(host, GPU)).isEqualTo("blocked");
        assertThat(host.pci(GPU).driver()).isEqualTo("i915");
        assertThat(host.log().messages()).containsOnlyOnce("xen: " + GPU + " is not assigned to domain 1 (guest): the"
                + " hypervisor blocks its DMA");
        assertThat(host.log().messages()).containsOnlyOnce("xen: " + OTHER + " is not assigned to domain 1 (guest):"
                + " the hypervisor blocks its DMA");
        assertThat(host.log().messages()).noneMatch(l -> l.startsWith("xen: " + NIC + " is not assigned"));
    }

    @Test
    void aHotAddedListedDeviceIsAssignedOnItsFirstProbe() {
        Host host = host("xen-pciback.hide=(0000:09:00.*)");
        loadXen(host);
        int before = host.log().messages().size();
        host.buses().addPci(PciDeviceSpec.of("0000:09:00.0"));
        List<String> lines = host.log().messages().subList(before, host.log().messages().size()).stream()
                .filter(l -> l.contains("0000:09:00.0")).toList();
        assertThat(lines).filteredOn(l -> l.contains("Adding to iommu group")).hasSize(1);
        assertThat(lines).noneMatch(l -> l.contains("Removing from iommu group") || l.contains("not assigned")
                || l.contains("fault"));
        assertThat(type(host, "0000:09:00.0")).isEqualTo("DMA");

        // gone and back: it is seized again on its first probe
        host.buses().remove("0000:09:00.0");
        host.buses().addPci(PciDeviceSpec.of("0000:09:00.0"));
        assertThat(type(host, "0000:09:00.0")).isEqualTo("DMA");
    }
}
