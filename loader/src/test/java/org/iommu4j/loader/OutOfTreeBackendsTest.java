package org.iommu4j.loader;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.ref.WeakReference;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Plugins built as real jars in a temporary directory, loaded from a plugin directory. */
class OutOfTreeBackendsTest {
    private static final Path EXAMPLE = Path.of("..", "examples", "oot-backend", "src", "main", "java");

    @TempDir
    Path work;

    private Path plugins() throws Exception {
        return Files.createDirectories(work.resolve("plugins"));
    }

    private BackendLoader loader(Path plugins) {
        return new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(plugins));
    }

    private Path exampleJar(Path plugins) {
        return new PluginJars(work).jar().sourceTree(EXAMPLE)
                .services("org.iommu4j.examples.fslnone.FslNoneProvider")
                .manifest(BackendLoader.NAME_ATTRIBUTE, "fsl-none").manifest("Iommu4j-Api-Version", "1.0")
                .writeTo(plugins.resolve("fsl-none").resolve("fsl-none.jar"));
    }

    @Test
    void theExampleBackendLoadsFromThePluginDirectoryAndTaintsAsAnUnsignedOutOfTreeModule() throws Exception {
        Path plugins = plugins();
        exampleJar(plugins);
        BackendLoader loader = loader(plugins);
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();

        assertThat(loader.find("fsl_none")).hasValueSatisfying(c -> {
            assertThat(c.inTree()).isFalse();
            assertThat(c.origin()).isEqualTo(plugins.resolve("fsl-none").toString());
        });
        LoadedModule m = loader.load(host, "fsl_none", Map.of());

        assertThat(m.taintLetters()).isEqualTo("OE");
        assertThat(host.taint().taintedString()).isEqualTo("Tainted: G           OE      ");
        assertThat(host.log().messages()).containsSubsequence(
                "fsl_none: loading out-of-tree module taints kernel.",
                "fsl_none: module verification failed: signature and/or required key missing - tainting kernel",
                "pci 0000:06:0d.0: Adding to iommu group 0");
        assertThat(host.sysfs().read("/sys/kernel/iommu_groups/0/name")).hasValue("fsl-none");
        assertThat(loader.modinfo("fsl-none")).contains("intree:         N").contains("signed:         N");
        loader.unload(host, "fsl-none");
        assertThat(host.taint().isSet(TaintFlag.OOT_MODULE)).isTrue();
    }

    @Test
    void aPluginSeesTheApiButNotTheApplicationAndRunsWithItsOwnContextLoader() throws Exception {
        Path plugins = plugins();
        new PluginJars(work).jar()
                .source("probe.Provider", PluginJars.provider("probe", "probe", "GPL", List.of(),
                        "try { Class.forName(\"org.iommu4j.kernel.Host\", false, getClass().getClassLoader());"
                        + " kernel.log().log(LogLevel.INFO, \"saw the application\"); }"
                        + " catch (ClassNotFoundException e) { kernel.log().log(LogLevel.INFO, \"cannot see \""
                        + " + e.getMessage()); }"
                        + " kernel.log().log(LogLevel.INFO, \"context loader is mine: \""
                        + " + (Thread.currentThread().getContextClassLoader() == getClass().getClassLoader()));"
                        + " kernel.devices().addListener(new BusListener() { public void deviceAdded(Device d) {"
                        + " kernel.log().log(LogLevel.INFO, \"told of \" + d.name() + \" with my context loader: \""
                        + " + (Thread.currentThread().getContextClassLoader() == getClass().getClassLoader())); } });"))
                .services("probe.Provider")
                .writeTo(plugins.resolve("probe.jar"));
        Host host = Host.builder().build();
        loader(plugins).load(host, "probe", Map.of());
        host.buses().addPci(PciDeviceSpec.of("0000:09:00.0")); // a later call into the plugin, from the kernel
        assertThat(Thread.currentThread().getContextClassLoader()).isNotInstanceOf(PluginClassLoader.class);
        assertThat(host.log().messages()).contains("probe: cannot see org.iommu4j.kernel.Host",
                "probe: context loader is mine: true", "probe: told of 0000:09:00.0 with my context loader: true");
    }

    @Test
    void aProprietaryLicenseTaintsPWithTheKernelsLinesInTheKernelsOrder() throws Exception {
        Path plugins = plugins();
        new PluginJars(work).jar()
                .source("wl.Provider", PluginJars.provider("wl", "wl", "MIXED/Proprietary", List.of(), ""))
                .services("wl.Provider").writeTo(plugins.resolve("wl.jar"));
        Host host = Host.builder().build();
        LoadedModule m = loader(plugins).load(host, "wl", Map.of());
        assertThat(host.log().messages()).containsSubsequence(
                "wl: loading out-of-tree module taints kernel.",
                "wl: module license 'MIXED/Proprietary' taints kernel.",
                "Disabling lock debugging due to kernel taint",
                "wl: module verification failed: signature and/or required key missing - tainting kernel");
        assertThat(m.taintLetters()).isEqualTo("POE");
        assertThat(host.taint().taintedString()).isEqualTo("Tainted: P           OE      ");
        assertThat(host.taint().records()).extracting(r -> r.who()).containsOnly("wl");
    }

    @Test
    void underSignatureEnforcementAnUnsignedPluginIsRefusedAndNothingIsTainted() throws Exception {
        Path plugins = plugins();
        exampleJar(plugins);
        Host host = Host.builder().commandLine("module.sig_enforce=1").build();
        assertThatThrownBy(() -> loader(plugins).load(host, "fsl-none", Map.of()))
                .isInstanceOf(IommuException.class)
                .hasMessage("Loading of unsigned module is rejected: fsl_none is not signed by a trusted key and"
                        + " module.sig_enforce=1")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EKEYREJECTED);
        assertThat(host.log().messages()).contains("Loading of unsigned module is rejected");
        assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
        assertThat(host.modules().modules()).isEmpty();
    }

    @Test
    void aJarSignedByATrustedKeyLoadsUnderEnforcementAndTaintsOnlyAsOutOfTree() throws Exception {
        Path plugins = plugins();
        Path jar = exampleJar(plugins);
        Path keystore = work.resolve("keys.p12");
        Path bin = Path.of(System.getProperty("java.home"), "bin");
        run(bin.resolve("keytool").toString(), "-genkeypair", "-alias", "vendor", "-keyalg", "RSA", "-keysize", "2048",
                "-dname", "CN=out-of-tree vendor", "-validity", "2", "-keystore", keystore.toString(),
                "-storetype", "PKCS12", "-storepass", "changeit", "-keypass", "changeit");
        run(bin.resolve("jarsigner").toString(), "-keystore", keystore.toString(), "-storepass", "changeit",
                jar.toString(), "vendor");
        java.security.KeyStore ks = java.security.KeyStore.getInstance("PKCS12");
        try (var in = Files.newInputStream(keystore)) {
            ks.load(in, "changeit".toCharArray());
        }
        BackendLoader trusting = new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(plugins)
                .withTrustedCertificates(List.of(ks.getCertificate("vendor"))));
        Host host = Host.builder().commandLine("module.sig_enforce=1").build();

        LoadedModule m = trusting.load(host, "fsl-none", Map.of());
        assertThat(m.taintLetters()).isEqualTo("O");
        assertThat(trusting.modinfo("fsl-none")).contains("signed:         Y");
        assertThat(host.log().messages()).noneMatch(l -> l.contains("verification failed"));
        // the same jar, but nobody trusts the key: unsigned as far as this host is concerned
        assertThat(loader(plugins).find("fsl-none")).hasValueSatisfying(c -> assertThat(c.signed()).isFalse());
    }

    private static void run(String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertThat(p.waitFor()).as("%s: %s", command[0], out).isZero();
    }

    @Test
    void anUnloadedPluginsClassLoaderIsCollected() throws Exception {
        Path plugins = plugins();
        exampleJar(plugins);
        BackendLoader loader = loader(plugins);
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        WeakReference<ClassLoader> pluginLoader = loadAndUnload(loader, host);

        for (int i = 0; i < 50 && pluginLoader.get() != null; i++) {
            System.gc();
            Thread.sleep(20);
        }
        assertThat(pluginLoader.get()).isNull();
        assertThat(loader.find("fsl-none")).isPresent(); // found afresh by the next scan
    }

    private static WeakReference<ClassLoader> loadAndUnload(BackendLoader loader, Host host) {
        LoadedModule m = loader.load(host, "fsl-none", Map.of());
        WeakReference<ClassLoader> ref = new WeakReference<>(m.classLoader());
        assertThat(ref.get()).isInstanceOf(PluginClassLoader.class);
        loader.unload(host, "fsl-none");
        return ref;
    }

    private static void awaitCollected(WeakReference<ClassLoader> ref) throws InterruptedException {
        for (int i = 0; i < 50 && ref.get() != null; i++) {
            System.gc();
            Thread.sleep(20);
        }
        assertThat(ref.get()).as("the plugin's class loader was collected").isNull();
    }

    @Test
    void aPluginWhoseJarWasDeletedAfterLoadIsStillClosedAndCollectedOnUnload() throws Exception {
        Path plugins = plugins();
        Path jar = exampleJar(plugins);
        BackendLoader loader = loader(plugins);
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        WeakReference<ClassLoader> pluginLoader = loadDeleteAndUnload(loader, host, jar);

        awaitCollected(pluginLoader);
        assertThat(loader.find("fsl-none")).isEmpty();
        assertThat(loader.broken()).extracting(BrokenPlugin::path)
                .containsExactly(plugins.resolve("fsl-none").toString()); // "holds no jar"
    }

    private static WeakReference<ClassLoader> loadDeleteAndUnload(BackendLoader loader, Host host, Path jar)
            throws Exception {
        LoadedModule m = loader.load(host, "fsl-none", Map.of());
        WeakReference<ClassLoader> ref = new WeakReference<>(m.classLoader());
        Files.delete(jar);
        loader.rescan(); // the plugin directory no longer has it; its module is still loaded
        assertThat(loader.find("fsl-none")).isEmpty();
        loader.unload(host, "fsl-none");
        assertThat(m.state()).isEqualTo(org.iommu4j.kernel.module.ModuleState.UNLOADED);
        return ref;
    }

    @Test
    void aPluginWhoseExitThrowsIsStillClosedAndCollectedOnUnload() throws Exception {
        Path plugins = plugins();
        new PluginJars(work).jar().source("sloppy.Provider", "package sloppy;\n"
                + "import org.iommu4j.api.*;\n"
                + "public final class Provider implements BackendProvider {\n"
                + "  public ModuleInfo info() {\n"
                + "    return ModuleInfo.builder(\"sloppy\").version(\"1.0\").description(\"test plugin\")"
                + ".license(\"GPL\").inTree(false).build();\n"
                + "  }\n"
                + "  public Backend start(KernelServices kernel) {\n"
                + "    return new Backend() { public void stop() { throw new IllegalStateException(\"exit failed\"); } };\n"
                + "  }\n"
                + "}\n").services("sloppy.Provider").writeTo(plugins.resolve("sloppy.jar"));
        BackendLoader loader = loader(plugins);
        Host host = Host.builder().build();
        WeakReference<ClassLoader> pluginLoader = loadAndFailToExit(loader, host);

        awaitCollected(pluginLoader);
        assertThat(host.modules().find("sloppy")).isEmpty();
        assertThat(loader.load(host, "sloppy", Map.of()).classLoader()).isInstanceOf(PluginClassLoader.class);
    }

    private static WeakReference<ClassLoader> loadAndFailToExit(BackendLoader loader, Host host) {
        LoadedModule m = loader.load(host, "sloppy", Map.of());
        WeakReference<ClassLoader> ref = new WeakReference<>(m.classLoader());
        UnloadResult result = loader.unload(host, "sloppy");
        assertThat(result.exitFailure()).isEqualTo("java.lang.IllegalStateException: exit failed");
        assertThat(host.log().messages()).contains("sloppy: exit failed: java.lang.IllegalStateException: exit failed;"
                + " the module was removed all the same");
        assertThatThrownBy(() -> loader.unload(host, "sloppy")).as("removed once")
                .hasMessage("Module sloppy is not currently loaded");
        assertThat(m.state()).isEqualTo(org.iommu4j.kernel.module.ModuleState.UNLOADED);
        return ref;
    }
}
