package org.iommu4j.loader;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.module.ModuleState;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class InTreeBackendsTest {
    private final BackendLoader loader = new BackendLoader(LoaderConfig.classPathOnly());
    private final Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
    /** xen loads only in a Xen domain: a guest of a Xen platform. */
    private final Host guest = XenPlatform.builder().machineMemory(4L << 30).build()
            .createGuest("guest", 256L << 20, "").host();

    @Test
    void theThreeInTreeBackendsAreFoundOnTheClassPath() {
        assertThat(loader.backends()).extracting(BackendCandidate::name).containsExactly("noiommu", "swiotlb", "xen");
        assertThat(loader.backends()).allMatch(BackendCandidate::inTree).allMatch(BackendCandidate::loadable);
        assertThat(loader.broken()).isEmpty();
        assertThat(loader.searched()).containsExactly("class path");
    }

    @ParameterizedTest
    @ValueSource(strings = {"noiommu", "swiotlb", "xen"})
    void eachLoadsByNameWithoutTaint(String name) {
        Host host = name.equals("xen") ? guest : this.host;
        LoadedModule m = loader.load(host, name, Map.of());
        assertThat(m.state()).isEqualTo(ModuleState.LIVE);
        assertThat(m.origin()).isEqualTo("class path");
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
    }

    @Test
    void xenLoadsSwiotlbFirstAndSwiotlbCannotGoWhileXenIsLoaded() {
        Host host = guest;
        List<String> events = new ArrayList<>();
        host.modules().addListener((m, from, to) -> events.add(m.name() + ":" + from + "->" + to));
        loader.load(host, "xen", Map.of());

        assertThat(host.modules().modules()).extracting(LoadedModule::name).containsExactly("swiotlb", "xen");
        assertThat(events).containsExactly("swiotlb:UNFORMED->COMING", "swiotlb:COMING->LIVE", "xen:UNFORMED->COMING",
                "xen:COMING->LIVE");
        assertThatThrownBy(() -> loader.unload(host, "swiotlb"))
                .isInstanceOf(IommuException.class)
                .hasMessage("Module swiotlb is in use by: xen")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        loader.unload(host, "xen");
        loader.unload(host, "swiotlb");
        assertThat(events).endsWith("swiotlb:GOING->UNLOADED");
    }

    @Test
    void parametersComeFromTheCallAndTheCommandLineAndAreCheckedByName() {
        Host cmdline = Host.builder().commandLine("noiommu.enable_unsafe_noiommu_mode=1").build();
        assertThat(loader.load(cmdline, "noiommu", Map.of()).parameters().getBool("enable_unsafe_noiommu_mode"))
                .isTrue();
        assertThatThrownBy(() -> loader.load(host, "noiommu", Map.of("enable_unsafe_iommu_mode", "1")))
                .isInstanceOf(InvalidParameterException.class)
                .hasMessage("noiommu: Unknown parameter `enable_unsafe_iommu_mode'; valid parameters:"
                        + " [enable_unsafe_noiommu_mode, kernel_faithful_map]");
        assertThat(host.modules().modules()).isEmpty();
        assertThat(loader.load(host, "noiommu", Map.of("enable_unsafe_noiommu_mode", "1")).parameters()
                .get("enable_unsafe_noiommu_mode")).isEqualTo("Y");
    }

    @Test
    void anUnknownNameListsWhatExistsAndWhereTheLoaderLooked() {
        assertThatThrownBy(() -> loader.load(host, "intel-iommu", Map.of()))
                .isInstanceOf(BackendLoadException.class)
                .hasMessage("No backend named 'intel-iommu'. Available: [noiommu, swiotlb, xen]. Searched: [class path]")
                .extracting(e -> ((BackendLoadException) e).kind()).isEqualTo(BackendLoadException.Kind.UNKNOWN);
        assertThat(loader.load(host, "swiotlb", Map.of()).name()).isEqualTo("swiotlb");
    }

    @Test
    void modinfoShowsEveryField() {
        assertThat(loader.modinfo("xen")).startsWith(String.join("\n",
                "filename:       class path",
                "name:           xen",
                "version:        2.0.0",
                "description:    Xen domain DMA driver: xen-swiotlb DMA ops, the IOMMU driver that asks the"
                        + " hypervisor, and in Domain-0 pciback's stub, which holds devices for guests",
                "author:         iommu4j",
                "license:        GPL v2",
                "intree:         Y",
                "depends:        swiotlb",
                "api:            [1.2,2.0)",
                "signed:         Y",
                "parm:           hide:Domain-0 only: devices pciback holds for guests, in xen-pciback.hide syntax:"
                        + " (DDDD:BB:SS.F)(BB:SS.*)...; xen-pciback.hide= on the kernel command line is read as well"
                        + " (charp)"));
    }

    @Test
    void aModuleInUseCannotBeUnloaded() {
        LoadedModule m = loader.load(host, "noiommu", Map.of());
        m.tryGet();
        assertThatThrownBy(() -> loader.unload(host, "noiommu")).hasMessage("Module noiommu is in use by: 1 more"
                + " reference (an open VFIO container using its iommu driver, or another try_module_get); nothing was"
                + " unbound or unloaded");
        m.put();
        loader.unload(host, "noiommu");
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
    }
}
