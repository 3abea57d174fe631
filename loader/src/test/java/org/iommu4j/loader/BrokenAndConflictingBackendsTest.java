package org.iommu4j.loader;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.iommu4j.kernel.Host;
import org.iommu4j.loader.BackendLoadException.Kind;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Every way a plugin directory can go wrong gets its own message, and the loader stays usable. */
class BrokenAndConflictingBackendsTest {
    @TempDir
    Path work;
    private Path plugins;
    private PluginJars jars;
    private final Host host = Host.builder().build();

    @BeforeEach
    void setUp() throws Exception {
        plugins = Files.createDirectories(work.resolve("plugins"));
        jars = new PluginJars(work);
    }

    private BackendLoader loader() {
        return new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(plugins));
    }

    private void plugin(String pkg, String name, List<String> depends) {
        jars.jar().source(pkg + ".Provider", PluginJars.provider(pkg, name, "GPL", depends, ""))
                .services(pkg + ".Provider").writeTo(plugins.resolve(pkg + ".jar"));
    }

    private void loaderStillWorks(BackendLoader loader) {
        assertThat(loader.load(host, "swiotlb", Map.of()).name()).isEqualTo("swiotlb");
    }

    @Test
    void twoBackendsWithOneNameAreBothNamedAndNeitherLoads() {
        plugin("one", "twin", List.of());
        plugin("two", "twin", List.of());
        BackendLoader loader = loader();
        assertThatThrownBy(() -> loader.load(host, "twin", Map.of()))
                .isInstanceOf(BackendLoadException.class)
                .hasMessage("Duplicate backend 'twin': provided by one.Provider (" + plugins.resolve("one.jar")
                        + ") and two.Provider (" + plugins.resolve("two.jar") + "); remove all but one")
                .extracting(e -> ((BackendLoadException) e).kind()).isEqualTo(Kind.DUPLICATE);
        assertThat(loader.backends()).extracting(BackendCandidate::name).filteredOn("twin"::equals).hasSize(2);
        assertThat(host.modules().modules()).isEmpty();
        loaderStillWorks(loader);
    }

    @Test
    void aBackendForAnotherApiMajorIsRefusedWithoutBeingInstantiated() {
        jars.jar().source("future.Provider", "package future;\n"
                + "public final class Provider implements org.iommu4j.api.BackendProvider {\n"
                + "  public Provider() { throw new IllegalStateException(\"instantiated\"); }\n"
                + "  public org.iommu4j.api.ModuleInfo info() { return null; }\n"
                + "  public org.iommu4j.api.Backend start(org.iommu4j.api.KernelServices k) { return null; }\n"
                + "}\n")
                .services("future.Provider")
                .manifest(BackendLoader.NAME_ATTRIBUTE, "future-iommu").manifest("Iommu4j-Api-Version", "2.1")
                .writeTo(plugins.resolve("future.jar"));
        BackendLoader loader = loader();
        assertThatThrownBy(() -> loader.load(host, "future-iommu", Map.of()))
                .isInstanceOf(BackendLoadException.class)
                .hasMessage("future_iommu: disagrees about version of symbol module_layout: built for iommu4j API 2.1"
                        + " (major 2), but this host runs API 1.0")
                .extracting(e -> ((BackendLoadException) e).kind()).isEqualTo(Kind.INCOMPATIBLE);
        assertThat(loader.broken()).isEmpty();
        assertThat(loader.find("future_iommu")).hasValueSatisfying(c -> assertThat(c.loadable()).isFalse());
        loaderStillWorks(loader);
    }

    @Test
    void brokenPluginsAreReportedWithPathAndCauseAndHideNothingElse() throws Exception {
        plugin("good", "good", List.of());
        jars.jar().source("missing.Other", "package missing; public final class Other { }")
                .services("missing.Provider").writeTo(plugins.resolve("no-class.jar"));
        jars.jar().source("thrower.Provider", "package thrower;\n"
                + "public final class Provider implements org.iommu4j.api.BackendProvider {\n"
                + "  public Provider() { throw new IllegalStateException(\"no hardware here\"); }\n"
                + "  public org.iommu4j.api.ModuleInfo info() { return null; }\n"
                + "  public org.iommu4j.api.Backend start(org.iommu4j.api.KernelServices k) { return null; }\n"
                + "}\n").services("thrower.Provider").writeTo(plugins.resolve("thrower.jar"));
        jars.jar().source("plain.Thing", "package plain; public final class Thing { }")
                .writeTo(plugins.resolve("no-services.jar"));
        Files.createDirectories(plugins.resolve("empty-dir"));
        Files.writeString(plugins.resolve("corrupt.jar"), "not a zip");

        BackendLoader loader = loader();
        assertThat(loader.broken()).extracting(BrokenPlugin::path).containsExactlyInAnyOrder(
                plugins.resolve("corrupt.jar").toString(), plugins.resolve("empty-dir").toString(),
                plugins.resolve("no-class.jar").toString(), plugins.resolve("no-services.jar").toString(),
                plugins.resolve("thrower.jar").toString());
        assertThat(loader.broken()).filteredOn(b -> b.path().endsWith("thrower.jar")).singleElement()
                .extracting(BrokenPlugin::cause).asString()
                .isEqualTo("thrower.Provider could not be instantiated: java.lang.IllegalStateException: no hardware"
                        + " here");
        assertThat(loader.broken()).filteredOn(b -> b.path().endsWith("no-class.jar")).singleElement()
                .extracting(BrokenPlugin::cause).asString().contains("missing.Provider not found");
        assertThat(loader.broken()).filteredOn(b -> b.path().endsWith("empty-dir")).singleElement()
                .extracting(BrokenPlugin::cause).isEqualTo("holds no jar");
        assertThat(loader.backends()).extracting(BackendCandidate::name)
                .containsExactly("good", "noiommu", "swiotlb", "xen");
        loaderStillWorks(loader);
    }

    @Test
    void aMissingDependencyNamesTheChain() {
        plugin("needy", "needy", List.of("middle"));
        plugin("middle", "middle", List.of("absent"));
        BackendLoader loader = loader();
        assertThatThrownBy(() -> loader.load(host, "needy", Map.of()))
                .isInstanceOf(BackendLoadException.class)
                .hasMessage("middle depends on absent, which was not found (chain: needy -> middle -> absent)."
                        + " Available: [middle, needy, noiommu, swiotlb, xen]. Searched: [class path, " + plugins + "]")
                .extracting(e -> ((BackendLoadException) e).kind()).isEqualTo(Kind.MISSING_DEPENDENCY);
        assertThat(host.modules().modules()).isEmpty();
        loaderStillWorks(loader);
    }

    @Test
    void aDependencyCycleNamesTheCycleAndLoadsNothing() {
        plugin("alpha", "alpha", List.of("beta"));
        plugin("beta", "beta", List.of("gamma"));
        plugin("gamma", "gamma", List.of("alpha"));
        BackendLoader loader = loader();
        assertThatThrownBy(() -> loader.load(host, "alpha", Map.of()))
                .isInstanceOf(BackendLoadException.class)
                .hasMessage("dependency cycle: alpha -> beta -> gamma -> alpha")
                .extracting(e -> ((BackendLoadException) e).kind()).isEqualTo(Kind.DEPENDENCY_CYCLE);
        assertThat(host.modules().modules()).isEmpty();
        loaderStillWorks(loader);
    }

    @Test
    void namesMatchWithDashesAndUnderscoresAlike() {
        plugin("dashed", "my-backend", List.of());
        assertThat(loader().load(host, "my_backend", Map.of()).name()).isEqualTo("my_backend");
    }
}
