package org.iommu4j.cli;

import java.util.List;
import org.iommu4j.api.PciAddress;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.bus.PlatformDeviceSpec;

/**
 * The machine {@code iommuctl} runs on when nothing else is asked for: 1 GiB, 2 CPUs, a graphics device that
 * its host driver owns, the NIC the demo assigns ({@value #NIC}), a 32-bit DMA device and a platform DMA
 * engine.
 */
final class EmbeddedHost {
    /** The device the demo hands to VFIO. */
    static final String NIC = "0000:06:0d.0";

    private EmbeddedHost() {
    }

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

    /** @return the embedded machine's PCI devices */
    static List<PciDeviceSpec> pciDevices() {
        return List.of(PciDeviceSpec.of("0000:00:02.0").withIds(0x8086, 0x46a6, 0x030000).withDriver("i915"),
                PciDeviceSpec.of(NIC),
                PciDeviceSpec.of("0000:07:00.0").withIds(0x10ec, 0x8139, 0x020000).withDmaMask(DmaMasks.bits(32)));
    }

    static String describe(Host host) {
        return String.format("%d MiB, %d CPUs", host.memory().size() >> 20, host.cpuCount());
    }
}
