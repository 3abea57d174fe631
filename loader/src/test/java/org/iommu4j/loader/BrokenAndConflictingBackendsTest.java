package org.iommu4j.loader;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.ApiVersion;
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
                .hasMessage("future_iommu: built for iommu4j API 2.1 (major 2), but this host runs API 1.2; build it"
                        + " against API 1.x, at most 1.2. In the kernel's words: future_iommu: disagrees about version"
                        + " of symbol module_layout")
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
                .extracting(BrokenPlugin::cause).isEqualTo("META-INF/services/org.iommu4j.api.BackendProvider lists"
                        + " missing.Provider, but no class of that name is in the plugin's jars; correct the entry to"
                        + " the fully qualified name of the public class implementing"
                        + " org.iommu4j.api.BackendProvider, or add that class");
        assertThat(loader.broken()).filteredOn(b -> b.path().endsWith("no-services.jar")).singleElement()
                .extracting(BrokenPlugin::cause)
                .isEqualTo("lists no org.iommu4j.api.BackendProvider in META-INF/services");
        assertThat(loader.broken()).filteredOn(b -> b.path().endsWith("corrupt.jar")).singleElement()
                .extracting(BrokenPlugin::cause).isEqualTo("not a readable jar: zip END header not found (the file"
                        + " is not a zip archive, or it is truncated or corrupt; build the jar again or copy it"
                        + " again)");
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

    /** A provider whose construction leaves a mark (a system property) and then fails as a linkage error. */
    private static String markingProvider(String pkg, String mark) {
        return "package " + pkg + ";\n"
                + "public final class Provider implements org.iommu4j.api.BackendProvider {\n"
                + "  public Provider() { System.setProperty(\"" + mark + "\", \"instantiated\");"
                + " throw new NoSuchMethodError(\"org.iommu4j.api.KernelServices.iommus()\"); }\n"
                + "  public org.iommu4j.api.ModuleInfo info() { return null; }\n"
                + "  public org.iommu4j.api.Backend start(org.iommu4j.api.KernelServices k) { return null; }\n"
                + "}\n";
    }

    /** A loader whose class path (the in-tree backends) is extended by the given jars. */
    private BackendLoader classPathLoader(Path... jarsOnClassPath) throws Exception {
        URL[] urls = new URL[jarsOnClassPath.length];
        for (int i = 0; i < urls.length; i++) {
            urls[i] = jarsOnClassPath[i].toUri().toURL();
        }
        ClassLoader app = new URLClassLoader("test-app", urls, getClass().getClassLoader());
        return new BackendLoader(new LoaderConfig(List.of(), app, List.of()));
    }

    @Test
    void aPluginJarWithoutTheApiVersionAttributeIsBrokenAndNeverInstantiated() {
        String mark = "iommu4j.test.instantiated.oldapi";
        jars.jar().source("oldapi.Provider", markingProvider("oldapi", mark)).services("oldapi.Provider")
                .withoutManifest(ApiVersion.MANIFEST_ATTRIBUTE).manifest(BackendLoader.NAME_ATTRIBUTE, "oldapi")
                .writeTo(plugins.resolve("oldapi.jar"));
        BackendLoader loader = loader();
        try {
            assertThat(loader.broken()).singleElement().satisfies(b -> {
                assertThat(b.path()).isEqualTo(plugins.resolve("oldapi.jar").toString());
                assertThat(b.cause()).isEqualTo("no Iommu4j-Api-Version attribute in its jar manifest, so the API"
                        + " it was built for cannot be checked without instantiating it; add 'Iommu4j-Api-Version:"
                        + " 1.2' (the iommu4j API it is compiled against) to the main section of its"
                        + " META-INF/MANIFEST.MF (with Maven: <manifestEntries><Iommu4j-Api-Version>1.2"
                        + "</Iommu4j-Api-Version></manifestEntries> in the maven-jar-plugin's archive"
                        + " configuration)");
            });
            assertThat(System.getProperty(mark)).as("the provider was instantiated").isNull();
            assertThat(loader.find("oldapi")).isEmpty();
            loaderStillWorks(loader);
        } finally {
            System.clearProperty(mark);
        }
    }

    @Test
    void aClassPathJarForAnotherApiMajorIsRefusedFromItsManifestWithoutBeingInstantiated() throws Exception {
        String mark = "iommu4j.test.instantiated.nextgen";
        Path jar = jars.jar().source("nextgen.Provider", markingProvider("nextgen", mark))
                .services("nextgen.Provider").manifest(BackendLoader.NAME_ATTRIBUTE, "next-gen")
                .manifest(ApiVersion.MANIFEST_ATTRIBUTE, "2.0").writeTo(work.resolve("cp").resolve("next-gen.jar"));
        BackendLoader loader = classPathLoader(jar);
        try {
            assertThatThrownBy(() -> loader.load(host, "next-gen", Map.of()))
                    .isInstanceOf(BackendLoadException.class)
                    .hasMessage("next_gen: built for iommu4j API 2.0 (major 2), but this host runs API 1.2; build it"
                            + " against API 1.x, at most 1.2. In the kernel's words: next_gen: disagrees about version"
                            + " of symbol module_layout")
                    .extracting(e -> ((BackendLoadException) e).kind()).isEqualTo(Kind.INCOMPATIBLE);
            assertThat(System.getProperty(mark)).as("the provider was instantiated").isNull();
            assertThat(loader.broken()).isEmpty();
            assertThat(loader.find("next_gen")).hasValueSatisfying(c -> {
                assertThat(c.loadable()).isFalse();
                assertThat(c.inTree()).isTrue();
                assertThat(c.className()).isEqualTo("nextgen.Provider");
            });
            assertThat(loader.modinfo("next-gen")).contains("refused:").contains("major 2");
            loaderStillWorks(loader);
        } finally {
            System.clearProperty(mark);
        }
    }

    @Test
    void twoClassPathProvidersWithOneNameAreNamedWithBothClassesAndBothJars() throws Exception {
        Path cp = work.resolve("cp");
        Path one = jars.jar().source("one.Provider", PluginJars.provider("one", "twin", "GPL", List.of(), ""))
                .services("one.Provider").writeTo(cp.resolve("one.jar"));
        Path two = jars.jar().source("two.Provider", PluginJars.provider("two", "twin", "GPL", List.of(), ""))
                .services("two.Provider").writeTo(cp.resolve("two.jar"));
        BackendLoader loader = classPathLoader(one, two);
        assertThatThrownBy(() -> loader.load(host, "twin", Map.of()))
                .isInstanceOf(BackendLoadException.class)
                .hasMessage("Duplicate backend 'twin': provided by one.Provider (" + one + ") and two.Provider ("
                        + two + "); remove all but one")
                .extracting(e -> ((BackendLoadException) e).kind()).isEqualTo(Kind.DUPLICATE);
        assertThat(host.modules().modules()).isEmpty();
        loaderStillWorks(loader);
    }

    @Test
    void brokenClassPathEntriesAreReportedWithTheirJars() throws Exception {
        Path cp = work.resolve("cp");
        Path noClass = jars.jar().source("missing.Other", "package missing; public final class Other { }")
                .services("missing.Provider").writeTo(cp.resolve("no-class.jar"));
        Path thrower = jars.jar().source("thrower.Provider", "package thrower;\n"
                + "public final class Provider implements org.iommu4j.api.BackendProvider {\n"
                + "  public Provider() { throw new IllegalStateException(\"no hardware here\"); }\n"
                + "  public org.iommu4j.api.ModuleInfo info() { return null; }\n"
                + "  public org.iommu4j.api.Backend start(org.iommu4j.api.KernelServices k) { return null; }\n"
                + "}\n").services("thrower.Provider").writeTo(cp.resolve("thrower.jar"));
        Path badName = jars.jar().source("plain.Thing", "package plain; public final class Thing { }")
                .services("9lives.Provider").writeTo(cp.resolve("bad-name.jar"));
        BackendLoader loader = classPathLoader(noClass, thrower, badName);

        assertThat(loader.broken()).extracting(BrokenPlugin::path).containsExactlyInAnyOrder(noClass.toString(),
                thrower.toString(), badName.toString());
        assertThat(loader.broken()).filteredOn(b -> b.path().equals(noClass.toString())).singleElement()
                .extracting(BrokenPlugin::cause).isEqualTo("META-INF/services/org.iommu4j.api.BackendProvider lists"
                        + " missing.Provider, but no class of that name is on the class path; correct the entry to"
                        + " the fully qualified name of the public class implementing"
                        + " org.iommu4j.api.BackendProvider, or add that class");
        assertThat(loader.broken()).filteredOn(b -> b.path().equals(thrower.toString())).singleElement()
                .extracting(BrokenPlugin::cause).isEqualTo("thrower.Provider could not be instantiated:"
                        + " java.lang.IllegalStateException: no hardware here");
        assertThat(loader.broken()).filteredOn(b -> b.path().equals(badName.toString())).singleElement()
                .extracting(BrokenPlugin::cause).isEqualTo("org.iommu4j.api.BackendProvider: "
                        + badName.toUri().toString().replaceFirst("^file:/+", "jar:file:/")
                        + "!/META-INF/services/org.iommu4j.api.BackendProvider:1: Illegal provider-class name:"
                        + " 9lives.Provider");
        assertThat(loader.backends()).extracting(BackendCandidate::name).containsExactly("noiommu", "swiotlb", "xen");
        loaderStillWorks(loader);
    }
}
