package org.iommu4j.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.iommu4j.cli.IommuctlTest.iommuctl;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import javax.tools.ToolProvider;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.cli.IommuctlTest.Run;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** iommuctl tells the truth: check runs the kit and says which rule a backend breaks; demo fails a liar. */
class CheckCommandTest {
    @TempDir
    Path work;

    /** A plugin whose groups claim isolation while its domains translate nothing: iova == phys. */
    private Path lyingPlugin() throws IOException {
        Path src = Files.createDirectories(work.resolve("src/liar"));
        Files.writeString(src.resolve("Provider.java"), "package liar;\n"
                + "import org.iommu4j.api.*;\n"
                + "public final class Provider implements BackendProvider {\n"
                + "  public ModuleInfo info() {\n"
                + "    return ModuleInfo.builder(\"liar\").version(\"1.0\").license(\"GPL\").build();\n"
                + "  }\n"
                + "  public Backend start(KernelServices kernel) {\n"
                + "    IommuOps ops = new IommuOps() {\n"
                + "      public boolean probeDevice(Device d) { return true; }\n"
                + "      public IommuGroup deviceGroup(Device d, IommuCore g) { return g.allocateGroup(\"liar\", true); }\n"
                + "      public DomainType defaultDomainType(Device d) { return DomainType.IDENTITY; }\n"
                + "      public boolean capable(Device d, IommuCapability c) { return true; }\n"
                + "      public IommuDomain allocateDomain(DomainType t) {\n"
                + "        return new IommuDomain() {\n"
                + "          public DomainType type() { return t; }\n"
                + "          public void attachDevice(Device d) { }\n"
                + "          public void detachDevice(Device d) { }\n"
                + "          public void map(long iova, long pa, long size, int prot) { }\n"
                + "          public long unmap(long iova, long size) { return size; }\n"
                + "          public long translate(long iova, int access) { return iova; }\n"
                + "        };\n"
                + "      }\n"
                + "    };\n"
                + "    kernel.iommu().registerOps(BusType.PCI, ops);\n"
                + "    return new Backend() { public void stop() { kernel.iommu().unregisterOps(BusType.PCI, ops); } };\n"
                + "  }\n"
                + "}\n");
        Path classes = Files.createDirectories(work.resolve("classes"));
        int rc = ToolProvider.getSystemJavaCompiler().run(null, null, null, "-d", classes.toString(), "-classpath",
                System.getProperty("java.class.path"), "--release", "17", "-nowarn",
                src.resolve("Provider.java").toString());
        assertThat(rc).isZero();
        Manifest m = new Manifest();
        m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        m.getMainAttributes().putValue(ApiVersion.MANIFEST_ATTRIBUTE, ApiVersion.CURRENT.toString());
        m.getMainAttributes().putValue("Iommu4j-Backend-Name", "liar");
        Path plugins = Files.createDirectories(work.resolve("plugins"));
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(plugins.resolve("liar.jar")), m);
                Stream<Path> files = Files.walk(classes)) {
            for (Path p : files.filter(Files::isRegularFile).toList()) {
                out.putNextEntry(new JarEntry(classes.relativize(p).toString().replace('\\', '/')));
                out.write(Files.readAllBytes(p));
                out.closeEntry();
            }
            out.putNextEntry(new JarEntry("META-INF/services/org.iommu4j.api.BackendProvider"));
            out.write("liar.Provider\n".getBytes(StandardCharsets.UTF_8));
            out.closeEntry();
        }
        return plugins;
    }

    private static List<String> rows(String out, String result) {
        List<String> rows = new ArrayList<>();
        for (String line : out.split("\n")) {
            if (line.matches(".*  " + result + "(  .*)?")) {
                rows.add(line);
            }
        }
        return rows;
    }

    @Test
    void checkPassesAnInTreeBackendAndPrintsOneRowPerCheck() {
        Run r = iommuctl("check", "noiommu");

        assertThat(r.err()).isEmpty();
        assertThat(r.code()).isZero();
        assertThat(r.out()).containsPattern("the claims hold +claims\\.no-isolation +PASS")
                .containsPattern("iommu contracts +iommu\\.overlap +SKIP +not claimed: translation")
                .containsPattern("\nnoiommu: \\d+ passed, 0 failed, \\d+ skipped\n");
        assertThat(rows(r.out(), "FAIL")).isEmpty();
    }

    @Test
    void checkFailsTheLyingPluginForItsIsolationAndExitsOne() throws IOException {
        Path plugins = lyingPlugin();

        Run r = iommuctl("check", "liar", "--plugin-dir", plugins.toString());

        assertThat(r.code()).isEqualTo(1);
        assertThat(rows(r.out(), "FAIL").stream().filter(l -> l.contains("claims.isolation")))
                .singleElement().asString()
                .contains("[claims.isolation] a backend that claims isolation isolates: a DMA by 0000:06:0d.0 at 0x")
                .endsWith("did not fault and overwrote that process's memory");
        assertThat(r.out()).containsPattern("iommu contracts +iommu\\.map +FAIL +\\[iommu\\.map\\]");
        assertThat(r.err()).matches("iommuctl check: liar fails \\d+ checks of the backend compatibility kit\n");
    }

    @Test
    void checkOfAnUnknownBackendNamesWhatExists() {
        Run r = iommuctl("check", "nope");

        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err()).startsWith("iommuctl check: ENOENT: No backend named 'nope'. Available: [");
        assertThat(r.out()).isEmpty();
    }

    @Test
    void demoExitsNonZeroWhenAnIsolatedGroupLetsAStrayDmaCorruptMemory() throws IOException {
        Path plugins = lyingPlugin();

        Run r = iommuctl("demo", "--backend", "liar", "--plugin-dir", plugins.toString());

        assertThat(r.out()).contains("isolated").contains("CORRUPTED the other process's memory");
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("iommuctl demo: liar contradicts its claims: its iommu group is isolated, yet a"
                + " stray DMA at another process's page corrupted that memory: the backend does not isolate what it"
                + " says it does\n");
    }
}
