package org.iommu4j.loader;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PciAcs;
import org.iommu4j.api.PciBridge;
import org.iommu4j.api.PciBridgeType;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The out-of-tree VT-d-like example (examples/vtd-backend) loaded from a plugin directory, on a host with a PCI
 * tree; and a plugin built for API 1.1 still loading on API 1.2.
 */
class TranslatingPluginTest {
    private static final Path VTD = Path.of("..", "examples", "vtd-backend", "src", "main", "java");

    @TempDir
    Path work;

    @Test
    void theVtdExampleGroupsByTopologyAndTheDmaApiGivesItsDevicesIovas() throws Exception {
        Path plugins = Files.createDirectories(work.resolve("plugins"));
        new PluginJars(work).jar().sourceTree(VTD).services("org.iommu4j.examples.vtd.VtdProvider")
                .manifest(BackendLoader.NAME_ATTRIBUTE, "vtd").manifest("Iommu4j-Api-Version", "1.2")
                .writeTo(plugins.resolve("vtd").resolve("vtd.jar"));
        PciBridge legacy = PciBridge.of("0000:00:01.0", PciBridgeType.PCI_BRIDGE, 6);
        PciBridge port = PciBridge.of("0000:00:1c.0", PciBridgeType.ROOT_PORT, 7).withAcs(PciAcs.REQUIRED);
        Host host = Host.builder()
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0").below(legacy))
                .pciDevice(PciDeviceSpec.of("0000:06:0e.0").below(legacy))
                .pciDevice(PciDeviceSpec.of("0000:07:00.0").below(port))
                .build();

        LoadedModule m = new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(plugins))
                .load(host, "vtd", Map.of());

        assertThat(m.taintLetters()).isEqualTo("OE");
        PciDevice nic = host.pci("0000:06:0d.0");
        assertThat(host.pci("0000:06:0e.0").group()).isSameAs(nic.group());
        assertThat(host.pci("0000:07:00.0").group()).isNotSameAs(nic.group());
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/type")).hasValue("DMA-FQ");
        long phys = host.pageAllocator().allocatePages(0, Long.MAX_VALUE);
        long dma = host.dma().map(nic, phys, 64, DmaDirection.FROM_DEVICE);
        byte[] packet = "a packet through the vtd example's second-level table".getBytes(StandardCharsets.US_ASCII);
        nic.dmaWrite(dma, packet);
        byte[] seen = new byte[packet.length];
        host.memory().read(phys, seen, 0, seen.length);
        assertThat(dma).isNotEqualTo(phys).isEqualTo(0xffff_f000L);
        assertThat(seen).isEqualTo(packet);

        // a live iommu-dma mapping lives in vtd's domain: the module stays until it is unmapped
        BackendLoader loader = new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(plugins));
        assertThatThrownBy(() -> loader.unload(host, "vtd")).isInstanceOf(IommuException.class)
                .hasMessage("Module vtd is in use by: 1 live DMA-API mapping; nothing was unbound or unloaded");
        host.dma().unmap(nic, dma, 64, DmaDirection.FROM_DEVICE);
        loader.unload(host, "vtd");
        assertThat(host.iommu().groups()).isEmpty();

        // iommu.passthrough=1: identity domains, and the DMA API hands out physical addresses
        Host pt = Host.builder().commandLine("iommu.passthrough=1")
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0").below(legacy)).build();
        loader.load(pt, "vtd", Map.of());
        assertThat(pt.sysfs().read("/sys/kernel/iommu_groups/0/type")).hasValue("identity");
        assertThat(pt.dma().map(pt.pci("0000:06:0d.0"), phys, 64, DmaDirection.TO_DEVICE)).isEqualTo(phys);
    }

    @Test
    void aPluginBuiltForApi11StillLoads() throws Exception {
        Path plugins = Files.createDirectories(work.resolve("plugins"));
        // only 1.1-era api: registerOps, allocateGroup, an IommuOps without any 1.2 method
        new PluginJars(work).jar()
                .source("old.Provider", PluginJars.provider("old", "old11", "GPL", List.of(),
                        "kernel.iommu().registerOps(BusType.PCI, new IommuOps() {"
                        + " public boolean probeDevice(Device d) { return true; }"
                        + " public DomainType defaultDomainType(Device d) { return DomainType.IDENTITY; }"
                        + " public IommuDomain allocateDomain(DomainType t) {"
                        + " throw new IommuException(Errno.EOPNOTSUPP, \"none\"); } });"))
                .services("old.Provider").manifest("Iommu4j-Api-Version", "1.1")
                .writeTo(plugins.resolve("old11.jar"));
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        BackendLoader loader = new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(plugins));

        LoadedModule m = loader.load(host, "old11", Map.of());

        assertThat(ApiVersion.CURRENT).isEqualTo(new ApiVersion(1, 2));
        assertThat(host.pci("0000:06:0d.0").group().sysfsType()).isEqualTo("identity");
        assertThat(m.taintLetters()).isEqualTo("OE");
        assertThat(host.log().messages()).contains("pci 0000:06:0d.0: Adding to iommu group 0");
    }
}
