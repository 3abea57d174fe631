package org.iommu4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Map;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciSlotPattern;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;

/**
 * A scenario's host that is a Xen guest: {@code "host": {..., "xen": {"hide": "(0000:06:0d.0)"}}}. The host's
 * devices are the machine's; Domain-0 loads xen with that {@code hide}, so that pciback holds those devices
 * for guests, and each of them is given to the guest ({@code xl pci-attach}). The guest has the host's
 * {@code memoryMiB}, {@code cpus} and {@code cmdline}, and sees only the devices it was given.
 */
final class ScenarioXen {
    private static final long MACHINE_MEMORY = 16L << 30;

    private ScenarioXen() {
    }

    static Host guest(BackendLoader loader, JsonNode h) {
        String hide = h.path("xen").path("hide").asText("");
        XenPlatform.Builder b = XenPlatform.builder().machineMemory(MACHINE_MEMORY)
                .cpus(h.path("cpus").asInt(EmbeddedHost.CPUS));
        for (JsonNode d : h.path("devices")) {
            PciDeviceSpec spec = PciDeviceSpec.of(d.path("bdf").asText()).withDmaMask(DmaMasks.bits(
                    d.path("dmaMaskBits").asInt(64)));
            b.pciDevice(d.hasNonNull("driver") ? spec.withDriver(d.get("driver").asText()) : spec);
        }
        XenPlatform platform = b.build();
        loader.load(platform.dom0().host(), "xen", Map.of("hide", hide));
        XenDomain guest = platform.createGuest("guest", h.path("memoryMiB").asLong(Host.DEFAULT_MEMORY >> 20) << 20,
                h.path("cmdline").asText(""));
        for (JsonNode d : h.path("devices")) {
            PciAddress a = PciAddress.parse(d.path("bdf").asText());
            if (PciSlotPattern.parseList(hide).stream().anyMatch(p -> p.matches(a))) {
                platform.attach(a.toString(), guest);
            }
        }
        return guest.host();
    }
}
