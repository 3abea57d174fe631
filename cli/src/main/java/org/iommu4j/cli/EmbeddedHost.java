package org.iommu4j.cli;

import java.util.List;
import org.iommu4j.api.PciAcs;
import org.iommu4j.api.PciBridge;
import org.iommu4j.api.PciBridgeType;
import org.iommu4j.api.PciAddress;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.bus.PlatformDeviceSpec;

/**
 * The machine {@code iommuctl} runs on when nothing else is asked for: 1 GiB, 2 CPUs, a graphics device that
 * its host driver owns (on the root bus), the NIC the demo assigns ({@value #NIC}, behind a conventional PCI
 * bridge), a 32-bit DMA device (behind a PCIe root port with ACS) and a platform DMA engine.
 */
final class EmbeddedHost {
    /** The device the demo hands to VFIO. */
    static final String NIC = "0000:06:0d.0";

    private EmbeddedHost() {
    }

    /** The conventional PCI bridge the NIC (a PCI e1000) sits behind, on the root bus. */
    private static final PciBridge PCI_BRIDGE = PciBridge.of("0000:00:01.0", PciBridgeType.PCI_BRIDGE, 0x06);
    /** A PCIe root port with ACS, above the 32-bit device. */
    private static final PciBridge ROOT_PORT = PciBridge.of("0000:00:1c.0", PciBridgeType.ROOT_PORT, 0x07)
            .withAcs(PciAcs.REQUIRED);

    /** The embedded host's CPU count. */
    static final int CPUS = 2;

    static Host build(String commandLine) {
        return build(commandLine, Host.DEFAULT_MEMORY, CPUS);
    }

    /**
     * @param commandLine the kernel command line
     * @param memoryBytes the memory size, in bytes
     * @param cpus the CPU count
     * @return the embedded host's devices on a machine of that size
     */
    static Host build(String commandLine, long memoryBytes, int cpus) {
        return builder(commandLine, memoryBytes, cpus).build();
    }

    /** The embedded host's PCI devices (it also has the platform device fsl-dma.0). */
    static final List<PciAddress> PCI_DEVICES = List.of(PciAddress.parse("0000:00:02.0"), PciAddress.parse(NIC),
            PciAddress.parse("0000:07:00.0"));

    /**
     * @param commandLine the kernel command line
     * @param memoryBytes the memory size, in bytes
     * @param cpus the CPU count
     * @return a builder with the embedded host's devices on a machine of that size
     */
    static Host.Builder builder(String commandLine, long memoryBytes, int cpus) {
        Host.Builder b = Host.builder()
                .memory(memoryBytes)
                .cpus(cpus)
                .commandLine(commandLine)
                .platformDevice(PlatformDeviceSpec.of("fsl-dma.0"));
        pciDevices().forEach(b::pciDevice);
        return b;
    }

    /** @return the embedded machine's PCI devices, in their tree */
    static List<PciDeviceSpec> pciDevices() {
        return List.of(PciDeviceSpec.of("0000:00:02.0").withIds(0x8086, 0x46a6, 0x030000).withDriver("i915"),
                PciDeviceSpec.of(NIC).below(PCI_BRIDGE),
                PciDeviceSpec.of("0000:07:00.0").withIds(0x10ec, 0x8139, 0x020000).withDmaMask(DmaMasks.bits(32))
                        .below(ROOT_PORT));
    }

    static String describe(Host host) {
        return String.format("%d MiB, %d CPUs", host.memory().size() >> 20, host.cpuCount());
    }
}
