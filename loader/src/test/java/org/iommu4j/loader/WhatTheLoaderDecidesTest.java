package org.iommu4j.loader;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.loader.BackendCandidate.Standing;
import org.iommu4j.loader.BackendLoadException.Kind;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The loader decides what it can know itself: in-tree or not from where the jar came from, the metadata from one
 * call of {@code info()}, which of two backends of one name a load means; and it refuses in words a Java
 * developer understands.
 */
class WhatTheLoaderDecidesTest {
    @TempDir
    Path work;
    private Path plugins;
    private PluginJars jars;
    private final Host host = Host.builder().build();
    private final String calls = "iommu4j.test.info.calls." + System.nanoTime();

    @BeforeEach
    void setUp() throws Exception {
        plugins = Files.createDirectories(work.resolve("plugins"));
        jars = new PluginJars(work);
    }

    @AfterEach
    void clearMark() {
        System.clearProperty(calls);
    }

    private BackendLoader loader() {
        return new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(plugins));
    }

    /** A provider whose info() body is given, counting its calls in a system property. */
    private String provider(String pkg, String infoBody, String stop) {
        return "package " + pkg + ";\n"
                + "import org.iommu4j.api.*;\n"
                + "public final class Provider implements BackendProvider {\n"
                + "  private int calls;\n"
                + "  public ModuleInfo info() {\n"
                + "    calls++;\n"
                + "    System.setProperty(\"" + calls + "\", Integer.toString(Integer.getInteger(\"" + calls
                + "\", 0) + 1));\n"
                + "    " + infoBody + "\n"
                + "  }\n"
                + "  public Backend start(KernelServices kernel) {\n"
                + "    return new Backend() { public void stop() { " + stop + " } };\n"
                + "  }\n"
                + "}\n";
    }

    private Path plugin(String pkg, String infoBody) {
        return jars.jar().source(pkg + ".Provider", provider(pkg, infoBody, "")).services(pkg + ".Provider")
                .writeTo(plugins.resolve(pkg + ".jar"));
    }

    @Test
    void aPluginThatSaysInTreeIsOutOfTreeAndItsLoadTaintsO() {
        plugin("liar", "return ModuleInfo.builder(\"liar\").version(\"1.0\").license(\"GPL\").inTree(true).build();");
        BackendLoader loader = loader();

        assertThat(loader.find("liar")).hasValueSatisfying(c -> {
            assertThat(c.inTree()).isFalse();
            assertThat(c.info().inTree()).isFalse();
        });
        assertThat(loader.modinfo("liar")).contains("intree:         N");
        LoadedModule m = loader.load(host, "liar", Map.of());

        assertThat(m.info().inTree()).isFalse();
        assertThat(m.taints()).contains(TaintFlag.OOT_MODULE, TaintFlag.UNSIGNED_MODULE);
        assertThat(host.taint().isSet(TaintFlag.OOT_MODULE)).isTrue();
        assertThat(host.log().messages()).contains("liar: loading out-of-tree module taints kernel.");
    }

    @Test
    void theBuilderDefaultsToOutOfTree() {
        assertThat(org.iommu4j.api.ModuleInfo.builder("x").build().inTree()).isFalse();
    }

    @Test
    void infoIsReadOnceAndThatAnswerIsWhatIsListedAndLoaded() {
        plugin("fickle", "return calls == 1"
                + " ? ModuleInfo.builder(\"fickle\").version(\"0.1\").license(\"GPL\").build()"
                + " : ModuleInfo.builder(\"fickle\").version(\"0.2\").license(\"Proprietary\").build();");
        BackendLoader loader = loader();

        assertThat(loader.backends()).filteredOn(c -> c.name().equals("fickle")).singleElement()
                .satisfies(c -> assertThat(c.info().version()).isEqualTo("0.1"));
        assertThat(loader.modinfo("fickle")).contains("version:        0.1", "license:        GPL");
        LoadedModule m = loader.load(host, "fickle", Map.of());

        assertThat(m.info().version()).isEqualTo("0.1");
        assertThat(m.info().license()).isEqualTo("GPL");
        assertThat(m.taints()).doesNotContain(TaintFlag.PROPRIETARY_MODULE)
                .contains(TaintFlag.OOT_MODULE, TaintFlag.UNSIGNED_MODULE);
        assertThat(Integer.getInteger(calls)).as("calls of info()").isEqualTo(1);
    }

    @Test
    void aNullInfoIsReportedAsNull() {
        Path jar = plugin("nothing", "return null;");
        BackendLoader loader = loader();

        assertThat(loader.broken()).containsExactly(new BrokenPlugin(jar.toString(), "nothing.Provider.info()"
                + " returned null; it must return the backend's ModuleInfo (ModuleInfo.builder(name)...build())"));
        assertThat(loader.find("nothing")).isEmpty();
        assertThat(loader.load(host, "swiotlb", Map.of()).name()).isEqualTo("swiotlb");
    }

    @Test
    void aThrowingInfoIsReportedAsThrowingNotAsUninstantiable() {
        Path jar = plugin("moody", "throw new IllegalStateException(\"no metadata today\");");
        BackendLoader loader = loader();

        assertThat(loader.broken()).containsExactly(new BrokenPlugin(jar.toString(), "moody.Provider.info() threw"
                + " java.lang.IllegalStateException: no metadata today; info() must return the backend's metadata"
                + " without failing"));
    }

    @Test
    void aJarNeedingANewerMinorApiIsRefusedUnread() {
        String mark = "iommu4j.test.instantiated.newer";
        jars.jar().source("newer.Provider", "package newer;\n"
                + "public final class Provider implements org.iommu4j.api.BackendProvider {\n"
                + "  public Provider() { System.setProperty(\"" + mark + "\", \"yes\"); }\n"
                + "  public org.iommu4j.api.ModuleInfo info() { return null; }\n"
                + "  public org.iommu4j.api.Backend start(org.iommu4j.api.KernelServices k) { return null; }\n"
                + "}\n").services("newer.Provider")
                .manifest(BackendLoader.NAME_ATTRIBUTE, "newer").manifest("Iommu4j-Api-Version", "1.9")
                .writeTo(plugins.resolve("newer.jar"));
        BackendLoader loader = loader();

        assertThatThrownBy(() -> loader.load(host, "newer", Map.of()))
                .isInstanceOf(BackendLoadException.class)
                .hasMessage("newer: built for iommu4j API 1.9, newer than this host's API 1.2 (it may call methods"
                        + " this host does not have); run it on an iommu4j with API 1.9 or later, or build it against"
                        + " API 1.2. In the kernel's words: newer: disagrees about version of symbol module_layout")
                .extracting(e -> ((BackendLoadException) e).kind()).isEqualTo(Kind.INCOMPATIBLE);
        assertThat(System.getProperty(mark)).as("instantiated").isNull();
        assertThat(host.modules().modules()).isEmpty();
        System.clearProperty(mark);
    }

    @Test
    void theManifestNameMustBeTheInfoName() {
        Path jar = jars.jar().source("alias.Provider", provider("alias",
                "return ModuleInfo.builder(\"real-name\").license(\"GPL\").build();", ""))
                .services("alias.Provider").manifest(BackendLoader.NAME_ATTRIBUTE, "fake-name")
                .writeTo(plugins.resolve("alias.jar"));
        BackendLoader loader = loader();

        assertThat(loader.broken()).containsExactly(new BrokenPlugin(jar.toString(), "its manifest says"
                + " Iommu4j-Backend-Name: fake-name, but alias.Provider.info() names the backend 'real_name'; make the"
                + " two agree (the manifest names the backend so that it can be listed and refused without being"
                + " instantiated)"));
        assertThat(loader.find("real-name")).isEmpty();
        assertThat(loader.find("fake-name")).isEmpty();
    }

    @Test
    void aPluginNamedAsAnInTreeBackendOverridesItAndTaintsOAndTheInTreeOneComesBackWhenItGoes() throws Exception {
        Path jar = plugin("updates", "return ModuleInfo.builder(\"noiommu\").version(\"9.9\").license(\"GPL\")"
                + ".inTree(true).build();");
        BackendLoader loader = loader();

        assertThat(loader.backends()).filteredOn(c -> c.name().equals("noiommu"))
                .extracting(BackendCandidate::origin, BackendCandidate::standing, BackendCandidate::status)
                .containsExactlyInAnyOrder(
                        org.assertj.core.groups.Tuple.tuple("class path", Standing.OVERRIDDEN,
                                "overridden by " + jar),
                        org.assertj.core.groups.Tuple.tuple(jar.toString(), Standing.OVERRIDES,
                                "overrides in-tree " + inTreeJar()));
        assertThat(loader.find("noiommu")).hasValueSatisfying(c -> assertThat(c.origin()).isEqualTo(jar.toString()));
        LoadedModule m = loader.load(host, "noiommu", Map.of());
        assertThat(m.info().version()).isEqualTo("9.9");
        assertThat(m.origin()).isEqualTo(jar.toString());
        assertThat(m.taints()).contains(TaintFlag.OOT_MODULE);
        loader.unload(host, "noiommu");

        Files.delete(jar);
        loader.rescan();
        LoadedModule inTree = loader.load(host, "noiommu", Map.of());
        assertThat(inTree.info().version()).isEqualTo("1.0.0");
        assertThat(inTree.taints()).isEmpty();
    }

    /** Where the in-tree noiommu's provider class came from: its jar, or its module's target/classes. */
    private static String inTreeJar() {
        return PluginRepository.codeSource(org.iommu4j.backend.noiommu.NoiommuProvider.class);
    }

    @Test
    void theTestingModeLoadsTheJarUnderTestWithoutItsClassPathCopy() throws Exception {
        Path jar = jars.jar().source("mine.Provider", provider("mine",
                "return ModuleInfo.builder(\"mine\").version(\"1.0\").license(\"GPL\").build();", ""))
                .services("mine.Provider").writeTo(work.resolve("target/mine-1.0.jar"));
        // the project's own target/classes: the same provider, listed by the same services file
        ClassLoader testClassPath = new URLClassLoader("test-class-path", new URL[] {jar.toUri().toURL()},
                getClass().getClassLoader());
        BackendLoader plain = new BackendLoader(new LoaderConfig(List.of(), testClassPath, List.of())
                .withPluginDirectories(Files.createDirectories(work.resolve("copy"))));
        Files.copy(jar, work.resolve("copy/mine-1.0.jar"));
        assertThat(plain.backends()).filteredOn(c -> c.name().equals("mine")).hasSize(2);

        BackendLoader testing = new BackendLoader(new LoaderConfig(List.of(), testClassPath, List.of(), jar));
        assertThat(testing.backends()).filteredOn(c -> c.name().equals("mine")).singleElement()
                .satisfies(c -> {
                    assertThat(c.origin()).isEqualTo(jar.toString());
                    assertThat(c.standing()).isEqualTo(Standing.ONLY);
                });
        LoadedModule m = testing.load(host, "mine", Map.of());
        assertThat(m.classLoader()).isInstanceOf(PluginClassLoader.class);
        assertThat(m.taints()).contains(TaintFlag.OOT_MODULE);
        assertThat(testing.searched()).containsExactly("class path", jar.toString());
    }

    @Test
    void aThrowingStopIsLoggedAndTheModuleIsRemovedOnce() {
        jars.jar().source("clumsy.Provider", provider("clumsy",
                "return ModuleInfo.builder(\"clumsy\").license(\"GPL\").build();",
                "throw new IllegalStateException(\"exit went wrong\");"))
                .services("clumsy.Provider").writeTo(plugins.resolve("clumsy.jar"));
        BackendLoader loader = loader();
        LoadedModule m = loader.load(host, "clumsy", Map.of());

        UnloadResult r = loader.unload(host, "clumsy");

        assertThat(r).isEqualTo(new UnloadResult("clumsy", List.of(),
                "java.lang.IllegalStateException: exit went wrong"));
        assertThat(m.state()).isEqualTo(org.iommu4j.kernel.module.ModuleState.UNLOADED);
        assertThat(host.log().messages()).containsOnlyOnce("clumsy: exit failed: java.lang.IllegalStateException:"
                + " exit went wrong; the module was removed all the same");
        assertThatThrownBy(() -> loader.unload(host, "clumsy")).hasMessage("Module clumsy is not currently loaded");
        assertThat(loader.load(host, "clumsy", Map.of()).name()).isEqualTo("clumsy");
    }
}
