package org.iommu4j.backend.xen;

import java.util.Map;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;

/** Xen platforms for the driver's tests: Domain-0 with swiotlb and xen loaded, guests booted on demand. */
final class Machines {
    private Machines() {
    }

    /** A platform with the devices, Domain-0's command line, and swiotlb (512 slabs) and xen loaded in it. */
    static XenPlatform platform(String dom0CommandLine, PciDeviceSpec... devices) {
        XenPlatform.Builder b = XenPlatform.builder().machineMemory(16L << 30).dom0CommandLine(dom0CommandLine);
        for (PciDeviceSpec d : devices) {
            b.pciDevice(d);
        }
        XenPlatform platform = b.build();
        loadDriver(platform.dom0().host(), Map.of());
        return platform;
    }

    /** Loads swiotlb (512 slabs) and xen with the given parameters. */
    static LoadedModule loadDriver(Host host, Map<String, String> xen) {
        host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"), "class path");
        return host.modules().insert(new XenProvider(), xen, "class path");
    }

    /** A guest of 256 MiB with swiotlb and xen loaded, given the devices (which Domain-0's pciback must hold). */
    static XenDomain guest(XenPlatform platform, String name, String... devices) {
        XenDomain guest = platform.createGuest(name, 256L << 20, "");
        loadDriver(guest.host(), Map.of());
        for (String d : devices) {
            platform.attach(d, guest);
        }
        return guest;
    }

    static ModuleAttribute attribute(LoadedModule module, String name) {
        return module.backend().attributes().stream().filter(a -> a.name().equals(name)).findFirst().orElseThrow();
    }
}
