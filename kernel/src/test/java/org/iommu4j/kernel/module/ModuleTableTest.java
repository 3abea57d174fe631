package org.iommu4j.kernel.module;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.ParameterType;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.Test;
import org.mockito.Mockito;

class ModuleTableTest {
    private final Host host = Host.builder()
            .commandLine("test-iommu.verbose=1 test_iommu.level=3")
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
            .build();

    private static BackendProvider provider(String name, Consumer<KernelServices> init) {
        return providerOf(ModuleInfo.builder(name).version("1.0").description("test backend").inTree(true)
                .parameter(new ParameterSpec("verbose", ParameterType.BOOL, "n", "log more", true))
                .parameter(new ParameterSpec("level", ParameterType.INT, "1", "how hard", false))
                .build(), init);
    }

    private static BackendProvider outOfTree(String name, String license) {
        return providerOf(ModuleInfo.builder(name).version("1.0").description("vendor backend").license(license)
                .inTree(false).parameter(new ParameterSpec("level", ParameterType.INT, "1", "how hard", false))
                .build(), k -> { });
    }

    private static BackendProvider providerOf(ModuleInfo info, Consumer<KernelServices> init) {
        return new BackendProvider() {
            @Override
            public ModuleInfo info() {
                return info;
            }

            @Override
            public Backend start(KernelServices kernel) {
                init.accept(kernel);
                return new Backend() {
                };
            }
        };
    }

    @Test
    void anOutOfTreeModuleRefusedForABadParameterHasTaintedTheKernelAllTheSame() {
        assertThatThrownBy(() -> host.modules().insert(outOfTree("wl", "MIXED/Proprietary"), Map.of("level", "hard"),
                new LoadFacts("/opt/plugins/wl.jar", false)))
                .isInstanceOf(InvalidParameterException.class);
        assertThat(host.modules().modules()).isEmpty();
        assertThat(host.taint().taintedString()).isEqualTo("Tainted: P           OE      ");
        assertThat(host.log().messages()).containsSubsequence("wl: loading out-of-tree module taints kernel.",
                "wl: module license 'MIXED/Proprietary' taints kernel.",
                "wl: module verification failed: signature and/or required key missing - tainting kernel");
    }

    @Test
    void aDuplicateIsRefusedWithEexistBeforeAnyTaintOrLicenceMessageAndAnUnsignedOneUnderEnforcementBeforeAnything() {
        Host h = Host.builder().build();
        h.modules().insert(outOfTree("wl", "GPL"), Map.of(), new LoadFacts("/opt/wl.jar", true));
        assertThat(h.taint().flags()).containsExactly(TaintFlag.OOT_MODULE);
        int logged = h.log().messages().size();
        assertThatThrownBy(() -> h.modules().insert(outOfTree("wl", "Proprietary"), Map.of(),
                new LoadFacts("/opt/wl2.jar", false)))
                .hasMessage("Module wl is already loaded (from /opt/wl.jar)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EEXIST);
        // Linux v6.12 (since v6.4): early_mod_check refuses the duplicate before module_augment_kernel_taints
        assertThat(h.taint().flags()).containsExactly(TaintFlag.OOT_MODULE);
        assertThat(h.log().messages()).hasSize(logged);

        Host enforcing = Host.builder().commandLine("module.sig_enforce=1").build();
        enforcing.modules().insert(outOfTree("wl", "GPL"), Map.of(), new LoadFacts("/opt/wl.jar", true));
        assertThatThrownBy(() -> enforcing.modules().insert(outOfTree("wl", "Proprietary"), Map.of(),
                new LoadFacts("/opt/wl2.jar", false)))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EKEYREJECTED);
        assertThat(enforcing.taint().isSet(TaintFlag.PROPRIETARY_MODULE)).isFalse();
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({
        "module.sig_enforce=1, true", "module.sig_enforce=y, true", "module.sig_enforce=Yes, true",
        "module.sig_enforce=on, true", "module.sig_enforce=true, true", "module.sig_enforce=enable, true",
        "module.sig_enforce, true",
        "module.sig_enforce=0, false", "module.sig_enforce=n, false", "module.sig_enforce=no, false",
        "module.sig_enforce=off, false", "module.sig_enforce=false, false", "module.sig_enforce=disable, false",
        "module.sig_enforce=2, false", "module.sig_enforce=x, false", "module.sig_enforce=o, false",
        "module.sig_enforce=oy, false"
    })
    void sigEnforceParsesAsKstrtoboolAndABadValueKeepsTheDefault(String word, boolean enforced) {
        Host h = Host.builder().commandLine(word).build();
        if (enforced) {
            assertThatThrownBy(() -> h.modules().insert(outOfTree("wl", "GPL"), Map.of(),
                    new LoadFacts("/opt/wl.jar", false)))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EKEYREJECTED);
            assertThat(h.modules().modules()).isEmpty();
        } else {
            assertThat(h.modules().insert(outOfTree("wl", "GPL"), Map.of(), new LoadFacts("/opt/wl.jar", false))
                    .state()).isEqualTo(ModuleState.LIVE);
            assertThat(h.taint().isSet(TaintFlag.UNSIGNED_MODULE)).isTrue();
        }
    }

    @Test
    void eachTaintMessageIsPrintedOnlyWhileItsFlagIsNotSetYet() {
        host.modules().insert(outOfTree("wl", "Proprietary"), Map.of(), new LoadFacts("/opt/wl.jar", false));
        host.modules().insert(outOfTree("nvidia", "NVIDIA"), Map.of(), new LoadFacts("/opt/nvidia.jar", false));
        assertThat(host.log().messages()).filteredOn(m -> m.contains("taints kernel") || m.contains("tainting"))
                .containsExactly("wl: loading out-of-tree module taints kernel.",
                        "wl: module license 'Proprietary' taints kernel.",
                        "wl: module verification failed: signature and/or required key missing - tainting kernel");
        assertThat(host.taint().records()).extracting(r -> r.who()).containsExactly("wl", "wl", "wl", "nvidia",
                "nvidia", "nvidia");
        assertThat(host.modules().modules()).extracting(m -> m.taints().size()).containsOnly(3);
    }

    @Test
    void aListenerThatThrowsIsLoggedAndTheModuleStillComesUpAndGoesAway() {
        host.modules().addListener((module, from, to) -> {
            throw new IllegalStateException("listener bug");
        });
        LoadedModule m = host.modules().insert(provider("test-iommu", k -> { }), Map.of(), "class path");
        assertThat(m.state()).isEqualTo(ModuleState.LIVE);
        host.modules().remove("test-iommu");
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
        assertThat(host.modules().modules()).isEmpty();
        assertThat(host.log().messages()).anyMatch(l -> l.startsWith("test_iommu: module listener ")
                && l.endsWith("failed on COMING -> LIVE: java.lang.IllegalStateException: listener bug"));
    }

    @Test
    void insertRunsInitWithParametersFromTheCommandLineAndTheCallThenRemoveTearsDown() {
        PageTableIommu ops = new PageTableIommu();
        LoadedModule m = host.modules().insert(provider("test-iommu", k -> {
            k.iommu().registerOps(BusType.PCI, ops);
            k.log().log(LogLevel.INFO, "level " + k.parameters().get("level"));
        }), Map.of("level", "0x10"), "class path");

        assertThat(m.state()).isEqualTo(ModuleState.LIVE);
        assertThat(m.name()).isEqualTo("test_iommu");
        assertThat(m.parameters().getBool("verbose")).isTrue();
        assertThat(m.parameters().get("level")).isEqualTo("16");
        assertThat(host.log().messages()).contains("test_iommu: level 16");
        assertThat(host.pci("0000:06:0d.0").group()).isNotNull();

        host.modules().remove("test-iommu");
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
        assertThat(host.modules().modules()).isEmpty();
        assertThat(host.pci("0000:06:0d.0").group()).isNull();
        assertThat(host.log().messages()).contains("test_iommu: left 1 registrations behind at exit; removed them");
    }

    @Test
    void aFailingInitLeavesNothingRegistered() {
        java.util.List<String> states = new java.util.ArrayList<>();
        host.modules().addListener((m, from, to) -> states.add(from + "->" + to));
        assertThatThrownBy(() -> host.modules().insert(provider("broken", k -> {
            k.iommu().registerOps(BusType.PCI, new PageTableIommu());
            throw new IommuException(Errno.ENODEV, "broken: no hardware");
        }), Map.of(), "class path"))
                .hasMessage("broken: no hardware");
        assertThat(host.modules().find("broken")).isEmpty();
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(host.iommu().ops(BusType.PCI)).isEmpty();
        assertThat(states).containsExactly("UNFORMED->COMING", "COMING->FAILED");
    }

    @Test
    void anUnknownParameterIsRefusedByNameAndNothingLoads() {
        assertThatThrownBy(() -> host.modules().insert(provider("test-iommu", k -> { }),
                Map.of("speed", "9"), "class path"))
                .isInstanceOf(InvalidParameterException.class)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
        assertThat(host.modules().modules()).isEmpty();
    }

    @Test
    void aModuleInUseCannotBeRemoved() {
        LoadedModule m = host.modules().insert(provider("test-iommu", k -> { }), Map.of(), "class path");
        assertThat(m.tryGet()).isTrue();
        assertThatThrownBy(() -> host.modules().remove("test_iommu"))
                .isInstanceOf(IommuException.class)
                .hasMessage("Module test_iommu is in use")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        assertThat(m.state()).isEqualTo(ModuleState.LIVE);
        m.put();
        host.modules().remove("test_iommu");
        assertThat(m.tryGet()).isFalse();
        assertThatThrownBy(() -> host.modules().remove("test_iommu"))
                .hasMessage("Module test_iommu is not currently loaded");
    }

    @Test
    void aModuleWhoseSymbolAnotherUsesIsHeldByIt() {
        BounceBufferPool pool = Mockito.mock(BounceBufferPool.class);
        host.modules().insert(provider("pool", k -> k.symbols().export(BounceBufferPool.class, pool)), Map.of(),
                "class path");
        host.modules().insert(provider("user", k -> assertThat(k.symbols().lookup(BounceBufferPool.class))
                .isSameAs(pool)), Map.of(), "class path");

        assertThatThrownBy(() -> host.modules().remove("pool")).hasMessage("Module pool is in use by: user");
        host.modules().remove("user");
        host.modules().remove("pool");
        assertThatThrownBy(() -> host.modules().insert(provider("late",
                k -> k.symbols().lookup(BounceBufferPool.class)), Map.of(), "class path"))
                .hasMessage("late: Unknown symbol org.iommu4j.api.BounceBufferPool (err -2)");
    }

    @Test
    void onlyTheExporterWithdrawsASymbolAndThenNothingIsLeftForTheKernel() {
        BounceBufferPool pool = Mockito.mock(BounceBufferPool.class);
        AtomicReference<KernelServices> exporter = new AtomicReference<>();
        AtomicReference<KernelServices> other = new AtomicReference<>();
        host.modules().insert(provider("pool", k -> {
            exporter.set(k);
            k.symbols().export(BounceBufferPool.class, pool);
        }), Map.of(), "class path");
        host.modules().insert(provider("other", other::set), Map.of(), "class path");

        assertThatThrownBy(() -> other.get().symbols().unexport(BounceBufferPool.class))
                .isInstanceOf(IommuException.class)
                .hasMessage("other: does not export org.iommu4j.api.BounceBufferPool (owned by pool)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
        assertThat(other.get().symbols().lookup(BounceBufferPool.class)).isSameAs(pool);
        host.modules().remove("other");

        exporter.get().symbols().unexport(BounceBufferPool.class);
        assertThatThrownBy(() -> exporter.get().symbols().lookup(BounceBufferPool.class))
                .hasMessage("pool: Unknown symbol org.iommu4j.api.BounceBufferPool (err -2)");
        assertThatThrownBy(() -> exporter.get().symbols().unexport(BounceBufferPool.class))
                .hasMessage("pool: does not export org.iommu4j.api.BounceBufferPool")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
        host.modules().remove("pool");
        assertThat(host.log().messages()).noneMatch(m -> m.contains("registrations behind at exit"));
    }

    @Test
    void taintThroughModuleServicesIsRecordedAgainstTheModule() {
        LoadedModule m = host.modules().insert(provider("test-iommu", k -> {
            k.taint().add(TaintFlag.USER, "unsafe thing");
            k.taint().add(TaintFlag.OOT_MODULE, "out of tree");
        }), Map.of(), "class path");
        assertThat(m.taints()).containsExactly(TaintFlag.OOT_MODULE);
        assertThat(m.taintLetters()).isEqualTo("O");
        assertThat(host.taint().records()).extracting(r -> r.who() + ":" + r.flag())
                .containsExactly("test_iommu:USER", "test_iommu:OOT_MODULE");
    }

    @Test
    void aSecondModuleOfTheSameNameIsRefused() {
        host.modules().insert(provider("test-iommu", k -> { }), Map.of(), "class path");
        assertThatThrownBy(() -> host.modules().insert(provider("test_iommu", k -> { }), Map.of(), "/tmp/x.jar"))
                .hasMessage("Module test_iommu is already loaded (from class path)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EEXIST);
    }
}
