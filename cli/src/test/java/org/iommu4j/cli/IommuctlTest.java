package org.iommu4j.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Every command run in-process: its output, its errors and its exit code. */
class IommuctlTest {
    private static final Path SCENARIOS = Path.of("..", "examples", "scenarios");

    /** One run of iommuctl. */
    record Run(int code, String out, String err) {
        JsonNode json() throws Exception {
            return Json.mapper().readTree(out);
        }
    }

    static Run iommuctl(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Iommuctl.execute(args, new PrintWriter(out), new PrintWriter(err));
        return new Run(code, out.toString(), err.toString());
    }

    @Nested
    class Demo {
        @Test
        void withoutABackendItComparesEveryBackendAndSkipsTheUnsafeOnes() {
            Run r = iommuctl("demo");
            assertThat(r.code()).isZero();
            assertThat(r.err()).isEmpty();
            assertThat(r.out()).contains("backend  VFIO type")
                    .contains("noiommu  skipped: needs --unsafe")
                    .contains("swiotlb  skipped: needs --unsafe")
                    .containsPattern("xen +VFIO_TYPE1v2_IOMMU\\(3\\) +yes +translated by the IOMMU +ok / ok +0 +faulted +-")
                    .contains("'iommuctl demo --unsafe' runs them too.");
        }

        @Test
        void withUnsafeTheStrayWriteCorruptsMemoryUnderTheBackendsThatDoNotIsolate() {
            Run r = iommuctl("demo", "--unsafe");
            assertThat(r.code()).isZero();
            assertThat(r.out())
                    .containsPattern("noiommu +VFIO_NOIOMMU_IOMMU\\(8\\) +no +iova == phys, no translation +ok / ok +0"
                            + " +corrupted +U")
                    .containsPattern("swiotlb +VFIO_SWIOTLB_IOMMU\\(20736\\) +no +bounced through the swiotlb pool"
                            + " +ok / ok +16512 +corrupted +U")
                    .containsPattern("xen +VFIO_TYPE1v2_IOMMU\\(3\\) +yes +translated by the IOMMU +ok / ok +0"
                            + " +faulted +-");
        }

        @Test
        void oneBackendIsToldInPlainWords() {
            Run r = iommuctl("demo", "--backend", "noiommu", "--unsafe");
            assertThat(r.code()).isZero();
            assertThat(r.out()).startsWith("iommu4j demo: backend noiommu\n")
                    .contains("bound 0000:06:0d.0 to vfio-pci: iommu group 0, /dev/vfio/noiommu-0, NOT isolated")
                    .contains("device wrote a 64-byte packet; the process read it intact")
                    .contains("process wrote a 64-byte packet; the device read it intact")
                    .contains("CORRUPTED the other process's memory")
                    .contains("(U by noiommu: vfio-noiommu group for 0000:06:0d.0)");
        }

        @Test
        void anUnsafeBackendWithoutUnsafeSaysWhatToDo() {
            Run r = iommuctl("demo", "--backend", "swiotlb");
            assertThat(r.code()).isZero();
            assertThat(r.out()).contains("swiotlb gives no DMA isolation and taints the kernel: rerun with --unsafe"
                    + " to try it");
        }

        @Test
        void jsonCarriesTheSameFacts() throws Exception {
            Run r = iommuctl("demo", "--backend", "xen", "--json");
            JsonNode j = r.json();
            assertThat(j.get("backend").asText()).isEqualTo("xen");
            assertThat(j.get("isolated").asBoolean()).isTrue();
            assertThat(j.get("strayDma").asText()).isEqualTo("faulted");
            assertThat(j.get("taint").asText()).isEqualTo("Not tainted");
            JsonNode all = iommuctl("demo", "--unsafe", "--json").json();
            assertThat(all).hasSize(3);
            assertThat(all.get(1).get("bouncedBytes").asLong()).isEqualTo(16512);
        }

        @Test
        void anUnknownBackendListsTheAvailableOnesAndFails() {
            Run r = iommuctl("demo", "--backend", "intel-iommu");
            assertThat(r.code()).isEqualTo(1);
            assertThat(r.out()).isEmpty();
            assertThat(r.err()).isEqualTo("iommuctl demo: ENOENT: No backend named 'intel-iommu'. Available: [noiommu,"
                    + " swiotlb, xen]. Searched: [class path]\n");
        }
    }

    static Stream<String> commands() {
        return Stream.of("demo", "backends", "modinfo", "groups", "taint", "dmesg", "run");
    }

    @ParameterizedTest
    @MethodSource("commands")
    void everyCommandHasHelp(String command) {
        Run r = iommuctl(command, "--help");
        assertThat(r.code()).isZero();
        assertThat(r.out()).startsWith("Usage: iommuctl " + command).contains("--plugin-dir=DIR");
    }

    @Test
    void badUsageIsExitTwoWithOneLineNamingTheFix() {
        Run unknownOption = iommuctl("demo", "--bogus");
        assertThat(unknownOption.code()).isEqualTo(2);
        assertThat(unknownOption.err()).isEqualTo("iommuctl: Unknown option: '--bogus' (see 'iommuctl demo --help')\n");
        Run missing = iommuctl("modinfo");
        assertThat(missing.code()).isEqualTo(2);
        assertThat(missing.err()).isEqualTo("iommuctl: Missing required parameter: 'NAME' (see 'iommuctl modinfo"
                + " --help')\n");
        Run none = iommuctl();
        assertThat(none.code()).isEqualTo(2);
        assertThat(none.err()).startsWith("iommuctl: a command is required");
    }

    @Test
    void backendsListsTreeLicenseAndTheTaintLoadingBrings() throws Exception {
        Run r = iommuctl("backends");
        assertThat(r.code()).isZero();
        assertThat(r.out()).containsPattern("noiommu +1\\.0\\.0 +in-tree +GPL v2 +U when its unsafe mode is used +ok"
                + " +class path").containsPattern("xen +1\\.0\\.0 +in-tree +GPL v2 +none +ok +class path");
        JsonNode j = iommuctl("backends", "--json").json();
        assertThat(j.get("backends")).hasSize(3);
        assertThat(j.get("searched").get(0).asText()).isEqualTo("class path");
    }

    @Test
    void anOutOfTreeBackendShowsUpEverywhereWithItsTaint(@TempDir Path plugins) throws Exception {
        Path built;
        try (Stream<Path> s = Files.list(Path.of("..", "examples", "oot-backend", "target"))) {
            built = s.filter(p -> p.getFileName().toString().matches("iommu4j-example-oot-backend-.*\\.jar"))
                    .findFirst().orElseThrow();
        }
        Files.createDirectories(plugins.resolve("fsl-none"));
        Files.copy(built, plugins.resolve("fsl-none").resolve("fsl-none.jar"));

        Run list = iommuctl("backends", "--plugin-dir", plugins.toString());
        assertThat(list.out()).containsPattern("fsl_none +0\\.1\\.0 +out-of-tree +GPL v2 +OE +ok");
        Run modinfo = iommuctl("modinfo", "fsl-none", "--plugin-dir", plugins.toString());
        assertThat(modinfo.out()).contains("intree:         N");
        Run taint = iommuctl("taint", "--plugin-dir", plugins.toString(), "--load", "fsl-none");
        assertThat(taint.out()).startsWith("Tainted: G           OE      \n")
                .contains("O OOT_MODULE         set by fsl_none");
        Run groups = iommuctl("groups", "--plugin-dir", plugins.toString(), "--load", "fsl-none");
        assertThat(groups.out()).contains("type=identity name=fsl-none");
    }

    @Test
    void modinfoPrintsEveryFieldAndJsonGroupsTheParameters() throws Exception {
        Run r = iommuctl("modinfo", "noiommu");
        assertThat(r.out()).contains("name:           noiommu").contains("parm:           enable_unsafe_noiommu_mode:");
        JsonNode j = iommuctl("modinfo", "noiommu", "--json").json();
        assertThat(j.get("license").asText()).isEqualTo("GPL v2");
        assertThat(j.get("parm")).hasSize(2);
    }

    @Test
    void groupsTaintAndDmesgLookAtTheHostTheOptionsPrepare() throws Exception {
        String[] setup = {"--load", "noiommu", "--cmdline", "noiommu.enable_unsafe_noiommu_mode=1", "--bind",
                "0000:06:0d.0"};
        Run groups = iommuctl(concat("groups", setup));
        assertThat(groups.out()).isEqualTo(String.join("\n",
                "/sys/kernel/iommu_groups",
                "`-- 0  type=identity name=vfio-noiommu  /dev/vfio/noiommu-0",
                "    `-- devices",
                "        `-- 0000:06:0d.0 -> ../../../../devices/pci0000:00/0000:00:01.0/0000:06:0d.0  [vfio-pci]",
                ""));
        Run taint = iommuctl(concat("taint", setup));
        assertThat(taint.out()).startsWith("Tainted: G     U" + " ".repeat(13) + "\n/proc/sys/kernel/tainted: 64\n")
                .contains("U USER               set by noiommu: vfio-noiommu group for 0000:06:0d.0");
        Run dmesg = iommuctl(concat("dmesg", setup));
        assertThat(dmesg.out()).contains("] vfio-pci 0000:06:0d.0: Adding kernel taint for vfio-noiommu group on"
                + " device");
        JsonNode log = iommuctl(concat("dmesg", concat("--json", setup))).json();
        assertThat(log.get(0).get("text").asText()).startsWith("Linux version");
        assertThat(iommuctl("groups", "--json").json()).isEmpty();
    }

    private static String[] concat(String first, String... rest) {
        String[] all = new String[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    @ParameterizedTest
    @ValueSource(strings = {"noiommu-packet.json", "swiotlb-bounce.json", "xen-isolation.json",
        "fault-injection.json"})
    void eachExampleScenarioRunsToTheEnd(String name) throws Exception {
        Run r = iommuctl("run", SCENARIOS.resolve(name).toString());
        assertThat(r.err()).isEmpty();
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("step 1: ").containsPattern("scenario done: \\d+ steps");
        JsonNode j = iommuctl("run", "--json", SCENARIOS.resolve(name).toString()).json();
        assertThat(j.get("status").asText()).isEqualTo("ok");
    }

    @Test
    void aScenarioStopsAtTheFirstUnexpectedResultWithItsStepNumber(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("broken.json");
        Files.writeString(file, "{\"host\": {\"devices\": [{\"bdf\": \"0000:06:0d.0\"}]},"
                + " \"processes\": [{\"name\": \"p\", \"capabilities\": []}],"
                + " \"steps\": [{\"do\": \"bind\", \"device\": \"0000:06:0d.0\"},"
                + " {\"do\": \"load\", \"backend\": \"swiotlb\"}]}");
        Run r = iommuctl("run", file.toString());
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEqualTo("iommuctl run: step 1 (bind) failed: EINVAL: vfio-pci: probe of 0000:06:0d.0"
                + " failed with error -22: the device has no iommu group; load an IOMMU backend that manages it, or one"
                + " that provides groups for devices without an IOMMU\n");
    }
}
