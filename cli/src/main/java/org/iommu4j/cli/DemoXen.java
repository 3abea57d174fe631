package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;

/**
 * The demo's machine for {@code xen}, which loads only in a Xen domain: the embedded machine's devices on a
 * Xen platform, Domain-0 running xen with pciback holding the NIC for guests, and two guests of 1 GiB; the NIC
 * is given to {@code guest-a}, where the demo runs, and the stray DMA aims at a page of {@code guest-b}.
 */
final class DemoXen {
    private static final long MACHINE_MEMORY = 8L << 30;
    private static final long DOM0_MEMORY = 256L << 20;
    private static final long GUEST_MEMORY = Host.DEFAULT_MEMORY;

    private final XenPlatform platform;
    private final XenDomain guestA;
    private final XenDomain guestB;
    private final List<String> story = new ArrayList<>();

    DemoXen(BackendLoader loader) {
        XenPlatform.Builder b = XenPlatform.builder().machineMemory(MACHINE_MEMORY).dom0Memory(DOM0_MEMORY)
                .cpus(EmbeddedHost.CPUS);
        EmbeddedHost.pciDevices().forEach(b::pciDevice);
        this.platform = b.build();
        String hide = "(" + EmbeddedHost.NIC + ")";
        loader.load(platform.dom0().host(), "xen", Map.of("hide", hide));
        this.guestA = platform.createGuest("guest-a", GUEST_MEMORY, "");
        this.guestB = platform.createGuest("guest-b", GUEST_MEMORY, "");
        platform.attach(EmbeddedHost.NIC, guestA);
        story.add(String.format("machine: Xen, %d GiB of machine memory, devices %s", MACHINE_MEMORY >> 30,
                platform.dom0().host().buses().all().stream().map(BusDevice::name).toList()));
        story.add(String.format("Domain-0 (%d MiB) loaded xen with hide=%s: pciback holds the NIC for guests",
                DOM0_MEMORY >> 20, hide));
        story.add(String.format("guests: guest-a and guest-b, %d MiB each; xl pci-attach %s guest-a: guest-a sees"
                + " %s, guest-b sees %s", GUEST_MEMORY >> 20, EmbeddedHost.NIC, devices(guestA), devices(guestB)));
    }

    private static List<String> devices(XenDomain d) {
        return d.host().buses().all().stream().map(BusDevice::name).toList();
    }

    /** @return the guest the demo runs in, which has the NIC */
    Host host() {
        return guestA.host();
    }

    /** @return the other guest, whose page the stray DMA aims at */
    Host victimHost() {
        return guestB.host();
    }

    /** @return what the platform's set-up did, one line each */
    List<String> story() {
        return story;
    }

    /**
     * @param phys a pseudo-physical address of guest-b
     * @return the machine address behind it, which is what a device puts on the bus to reach it
     */
    long victimBusAddress(long phys) {
        return (guestB.mfn(phys >>> 12) << 12) | (phys & 0xfff);
    }

    /** @return the hypervisor's last log line, where an IOMMU fault is reported with device and domain */
    String lastHypervisorLine() {
        List<String> lines = platform.log().messages();
        return lines.get(lines.size() - 1);
    }
}
