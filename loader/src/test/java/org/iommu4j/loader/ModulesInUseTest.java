package org.iommu4j.loader;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.module.ModuleState;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.api.Test;

/**
 * A backend in real use cannot be unloaded through the loader, and the loader stays usable: an open VFIO
 * container with a live DMA mapping, a live DMA-API mapping through the backend's ops, a dependent module.
 */
class ModulesInUseTest {
    private static final String NIC = "0000:06:0d.0";
    private static final long HIGH = 6L << 30;

    private final BackendLoader loader = new BackendLoader(LoaderConfig.classPathOnly());

    private static void inUse(Throwable e, String message) {
        assertThat(e).isInstanceOf(IommuException.class).hasMessage(message);
        assertThat(((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
    }

    /** xen loads only in a Xen domain: a guest of a Xen platform of its own. */
    private static Host guest() {
        return XenPlatform.builder().machineMemory(4L << 30).build().createGuest("guest", 256L << 20, "").host();
    }

    /** The loader is not wedged by a refused unload: it still finds backends and loads them elsewhere. */
    private void loaderStillWorks() {
        assertThat(loader.find("xen")).isPresent();
        assertThat(loader.modinfo("swiotlb")).contains("name:           swiotlb");
        Host other = guest();
        assertThat(loader.load(other, "xen", Map.of()).state()).isEqualTo(ModuleState.LIVE);
        loader.unload(other, "xen");
        loader.unload(other, "swiotlb");
    }

    @Test
    void anOpenVfioContainerWithALiveMappingKeepsNoiommuLoaded() {
        Host host = Host.builder().pciDevice(PciDeviceSpec.of(NIC)).build();
        UserProcess root = host.spawn("dpdk-testpmd", 0, Set.of(Capability.CAP_SYS_RAWIO));
        LoadedModule noiommu = loader.load(host, "noiommu", Map.of("enable_unsafe_noiommu_mode", "1"));

        host.vfio().bind(NIC);
        VfioContainer container = host.vfio().openContainer(root);
        VfioGroupFile group = host.vfio().openGroup(root, host.pci(NIC).group().id());
        group.setContainer(root, container);
        container.setIommu(root, Vfio.NOIOMMU_IOMMU);
        long va = root.mmapContiguous(4 * 4096);
        VfioDmaMapping mapping = container.mapDma(root, va, 4 * 4096, root.virtToPhys(va),
                IommuProt.READ | IommuProt.WRITE);

        assertThatThrownBy(() -> loader.unload(host, "noiommu"))
                .satisfies(e -> inUse(e, "Module noiommu is in use by: /dev/vfio/noiommu-0 (" + NIC + ") open by"
                        + " dpdk-testpmd:1000; 1 more reference (an open VFIO container using its iommu driver, or"
                        + " another try_module_get); nothing was unbound or unloaded"));
        assertThat(host.pci(NIC).driver()).as("a refused unload unbinds nothing").isEqualTo("vfio-pci");
        assertThat(noiommu.state()).isEqualTo(ModuleState.LIVE);
        assertThat(host.modules().find("noiommu")).containsSame(noiommu);
        loaderStillWorks();

        container.unmapDma(root, mapping.iova(), 4 * 4096);
        assertThatThrownBy(() -> loader.unload(host, "noiommu")) // the container still has noiommu's iommu
                .satisfies(e -> inUse(e, "Module noiommu is in use by: /dev/vfio/noiommu-0 (" + NIC + ") open by"
                        + " dpdk-testpmd:1000; 1 more reference (an open VFIO container using its iommu driver, or"
                        + " another try_module_get); nothing was unbound or unloaded"));
        container.close(root);
        group.close(root);
        assertThat(loader.unload(host, "noiommu").unboundDevices())
                .as("bound to vfio-pci in a noiommu group, nothing open: unbound first, as module removal does")
                .containsExactly(NIC);
        assertThat(host.pci(NIC).driver()).isNull();
        assertThat(host.log().messages()).contains("noiommu: unbound " + NIC + " from vfio-pci before unloading the"
                + " module that provides its iommu group");
        assertThat(noiommu.state()).isEqualTo(ModuleState.UNLOADED);
        assertThat(host.modules().modules()).isEmpty();
    }

    @Test
    void aLiveDmaApiMappingBouncedThroughSwiotlbKeepsSwiotlbLoaded() {
        Host host = Host.builder().memory(8L << 30)
                .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(32))).build();
        LoadedModule swiotlb = loader.load(host, "swiotlb", Map.of());
        PciDevice narrow = host.pci(NIC);

        long dma = host.dma().map(narrow, HIGH, 4096, DmaDirection.TO_DEVICE);
        assertThat(dma).as("a 32-bit device reaches a buffer at 6 GiB only through a bounce buffer")
                .isLessThan(1L << 32).isNotEqualTo(HIGH);
        assertThat(host.dma().liveMappings(swiotlb)).isEqualTo(1);

        assertThatThrownBy(() -> loader.unload(host, "swiotlb"))
                .satisfies(e -> inUse(e, "Module swiotlb is in use by: 1 live DMA-API mapping; nothing was unbound"
                        + " or unloaded"));
        assertThat(swiotlb.state()).isEqualTo(ModuleState.LIVE);
        loaderStillWorks();

        host.dma().unmap(narrow, dma, 4096, DmaDirection.TO_DEVICE);
        loader.unload(host, "swiotlb");
        assertThat(swiotlb.state()).isEqualTo(ModuleState.UNLOADED);
    }

    @Test
    void xenLoadedLaterOnAnAlreadyLoadedSwiotlbStillKeepsItLoaded() {
        Host host = guest();
        LoadedModule swiotlb = loader.load(host, "swiotlb", Map.of());
        LoadedModule xen = loader.load(host, "xen", Map.of()); // swiotlb is there: only xen is inserted

        assertThat(swiotlb.holders()).containsExactly(xen);
        assertThatThrownBy(() -> loader.unload(host, "swiotlb"))
                .satisfies(e -> inUse(e, "Module swiotlb is in use by: xen"));
        assertThat(swiotlb.state()).isEqualTo(ModuleState.LIVE);
        loaderStillWorks();

        loader.unload(host, "xen");
        loader.unload(host, "swiotlb");
        assertThat(host.modules().modules()).isEmpty();
    }
}
