package org.iommu4j.cli;

import java.util.List;
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

    static Host guest(BackendLoader loader, ScenarioFile.HostSpec h) {
        String hide = h.xen().hide() == null ? "" : h.xen().hide();
        XenPlatform.Builder b = XenPlatform.builder().machineMemory(MACHINE_MEMORY)
                .cpus(h.cpus() == null ? EmbeddedHost.CPUS : h.cpus());
        List<ScenarioFile.DeviceSpec> devices = h.devices() == null ? List.of() : h.devices();
        if (h.devices() == null) {
            EmbeddedHost.pciDevices().forEach(b::pciDevice);
        }
        for (ScenarioFile.DeviceSpec d : devices) {
            PciDeviceSpec spec = PciDeviceSpec.of(d.bdf().toString()).withDmaMask(DmaMasks.bits(
                    d.dmaMaskBits() == null ? 64 : d.dmaMaskBits()));
            b.pciDevice(d.driver() != null ? spec.withDriver(d.driver()) : spec);
        }
        XenPlatform platform = b.build();
        loader.load(platform.dom0().host(), "xen", Map.of("hide", hide));
        long memory = (h.memoryMiB() == null ? Host.DEFAULT_MEMORY >> 20 : h.memoryMiB()) << 20;
        XenDomain guest = platform.createGuest("guest", memory, h.cmdline() == null ? "" : h.cmdline());
        List<PciSlotPattern> slots = PciSlotPattern.parseList(hide);
        List<PciAddress> all = h.devices() == null ? EmbeddedHost.PCI_DEVICES
                : devices.stream().map(ScenarioFile.DeviceSpec::bdf).toList();
        for (PciAddress a : all) {
            if (slots.stream().anyMatch(p -> p.matches(a))) {
                platform.attach(a.toString(), guest);
            }
        }
        return guest.host();
    }
}
