package org.iommu4j.cli;

import static org.assertj.core.api.Assertions.assertThat;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.iommu4j.kernel.Host;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.loader.LoaderConfig;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Every command run in-process: its output, its errors and its exit code. */
class IommuctlTest {
    private static final Path SCENARIOS = Path.of("..", "examples", "scenarios");
    private static final Path README = Path.of("..", "README.md");

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

    /** The example out-of-tree backend, built by its module, in a plugin directory of its own. */
    static Path fslNonePlugin(Path plugins) throws IOException {
        Path built;
        try (Stream<Path> s = Files.list(Path.of("..", "examples", "oot-backend", "target"))) {
            built = s.filter(p -> p.getFileName().toString().matches("iommu4j-example-oot-backend-.*\\.jar"))
                    .findFirst().orElseThrow();
        }
        Files.createDirectories(plugins.resolve("fsl-none"));
        Files.copy(built, plugins.resolve("fsl-none").resolve("fsl-none.jar"));
        return plugins;
    }

    /** Asserts that an error output is exactly one line. */
    static void assertOneLine(String err) {
        assertThat(err).endsWith("\n");
        assertThat(err.strip()).doesNotContain("\n").doesNotContain("\r");
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
                    .containsPattern("xen +VFIO_TYPE1v2_IOMMU\\(3\\) +/dev/vfio/0 +yes +translated by the IOMMU +ok / ok +0"
                            + " +faulted +-")
                    .contains("'iommuctl demo --unsafe' runs them too.");
        }

        @Test
        void withUnsafeTheStrayWriteCorruptsMemoryUnderTheBackendsThatDoNotIsolate() {
            Run r = iommuctl("demo", "--unsafe");
            assertThat(r.code()).isZero();
            assertThat(r.err()).isEmpty();
            assertThat(r.out())
                    .contains("backend  VFIO type                  iommu group          isolated  mapping")
                    .containsPattern("noiommu +VFIO_NOIOMMU_IOMMU\\(8\\) +/dev/vfio/noiommu-0 +no"
                            + " +iova == phys, no translation +ok / ok +0 +corrupted +U")
                    .containsPattern("swiotlb +VFIO_SWIOTLB_IOMMU\\(20736\\) +/dev/vfio/noiommu-0 +no"
                            + " +bounced through the swiotlb pool +ok / ok +16512 +corrupted +U")
                    .containsPattern("xen +VFIO_TYPE1v2_IOMMU\\(3\\) +/dev/vfio/0 +yes +translated by the IOMMU"
                            + " +ok / ok +0 +faulted +-");
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
        void xenOpensTheContainerWithoutCapSysRawioBecauseTheHypervisorIsolates() {
            Run r = iommuctl("demo", "--backend", "xen");
            assertThat(r.code()).isZero();
            assertThat(r.err()).isEmpty();
            assertThat(r.out()).containsPattern("\n  container: VFIO_TYPE1v2_IOMMU\\(3\\) via vfio-iommu-type1,"
                    + " opened by iommu-demo:\\d+ without CAP_SYS_RAWIO: the hypervisor isolates, so no privilege is"
                    + " needed\n")
                    .doesNotContain("with CAP_SYS_RAWIO")
                    .contains("device wrote a 64-byte packet; the process read it intact")
                    .contains("FAULTED, nothing written");
            // A group without isolation still needs the privilege, and the demo says it has it.
            assertThat(iommuctl("demo", "--backend", "swiotlb", "--unsafe").out())
                    .containsPattern("opened by iommu-demo:\\d+ with CAP_SYS_RAWIO\n");
        }

        @ParameterizedTest
        @ValueSource(strings = {"demo --unsafe", "demo --backend xen"})
        void theReadmeShowsTheRealOutputOfTheDemo(String arguments) throws IOException {
            List<String> readme = Files.readAllLines(README, StandardCharsets.UTF_8);
            int command = readme.indexOf("$ ./iommuctl " + arguments);
            assertThat(command).as("README.md has a line '$ ./iommuctl " + arguments + "'").isNotNegative();
            // The output follows the command in the same fenced block, or opens the next block.
            int from = command + 1;
            if (command == 0 || !readme.get(command - 1).startsWith("```")) {
                while (from < readme.size() && readme.get(from).isBlank()) {
                    from++;
                }
                assertThat(from).as("a fenced block follows the command").isLessThan(readme.size());
                assertThat(readme.get(from)).startsWith("```");
                from++;
            }
            int to = from;
            while (to < readme.size() && !readme.get(to).startsWith("```")) {
                to++;
            }
            assertThat(to).as("the block is closed").isLessThan(readme.size());
            String shown = String.join("\n", readme.subList(from, to));

            Run r = iommuctl(arguments.split(" "));
            assertThat(r.code()).isZero();
            assertThat(r.err()).isEmpty();
            String output = r.out().endsWith("\n") ? r.out().substring(0, r.out().length() - 1) : r.out();
            assertThat(shown).as("the block after '$ ./iommuctl " + arguments + "' in README.md").isEqualTo(output);
        }

        @ParameterizedTest
        @ValueSource(strings = {"noiommu", "swiotlb"})
        void anUnsafeBackendWithoutUnsafeIsBadUsageNamingTheOptIn(String backend) {
            Run r = iommuctl("demo", "--backend", backend);
            assertThat(r.code()).isEqualTo(2);
            assertThat(r.out()).isEmpty();
            assertThat(r.err()).isEqualTo("iommuctl demo: --backend: " + backend + " gives no DMA isolation and taints"
                    + " the kernel: add --unsafe to run it (see 'iommuctl demo --help')\n");
            assertThat(iommuctl("demo", "--backend", backend, "--json").code()).isEqualTo(2);
        }

        @Test
        void aBackendThatGivesNoIsolationNeedsUnsafeAndOneThatOffersVfioNothingIsSkippedNotFailed(
                @TempDir Path plugins) throws Exception {
            fslNonePlugin(plugins);
            Run r = iommuctl("demo", "--plugin-dir", plugins.toString());
            assertThat(r.code()).isZero();
            assertThat(r.err()).isEmpty();
            assertThat(r.out()).containsPattern("\nfsl_none +skipped: needs --unsafe\n");
            Run unsafe = iommuctl("--plugin-dir", plugins.toString(), "demo", "--unsafe");
            assertThat(unsafe.code()).isZero();
            assertThat(unsafe.err()).isEmpty();
            assertThat(unsafe.out()).containsPattern("\nfsl_none +skipped: offers VFIO no iommu type\n")
                    .containsPattern("xen +VFIO_TYPE1v2_IOMMU\\(3\\) +/dev/vfio/0 +yes");

            Run one = iommuctl("demo", "--backend", "fsl-none", "--plugin-dir", plugins.toString());
            assertThat(one.code()).isEqualTo(2);
            assertThat(one.err()).isEqualTo("iommuctl demo: --backend: fsl_none gives no DMA isolation: add --unsafe"
                    + " to run it (see 'iommuctl demo --help')\n");
            Run told = iommuctl("demo", "--backend", "fsl-none", "--unsafe", "--plugin-dir", plugins.toString());
            assertThat(told.code()).isZero();
            assertThat(told.out()).contains("fsl_none offers VFIO no iommu type for /dev/vfio/noiommu-");
        }

        @Test
        void jsonCarriesTheSameFacts() throws Exception {
            Run r = iommuctl("demo", "--backend", "xen", "--json");
            JsonNode j = r.json();
            assertThat(j.get("backend").asText()).isEqualTo("xen");
            assertThat(j.get("isolated").asBoolean()).isTrue();
            assertThat(j.get("strayDma").asText()).isEqualTo("faulted");
            assertThat(j.get("taint").asText()).isEqualTo("Not tainted");
            assertThat(j.get("group").asText()).isEqualTo("/dev/vfio/0");
            JsonNode all = iommuctl("demo", "--unsafe", "--json").json();
            assertThat(all).hasSize(3);
            assertThat(all.get(1).get("bouncedBytes").asLong()).isEqualTo(16512);
        }

        @Test
        void anUnknownBackendListsTheAvailableOnesAndFails() {
            Run r = iommuctl("demo", "--backend", "intel-iommu");
            assertThat(r.code()).isEqualTo(2);
            assertThat(r.out()).isEmpty();
            assertThat(r.err()).isEqualTo("iommuctl demo: --backend: No backend named 'intel-iommu'. Available:"
                    + " [noiommu, swiotlb, xen]. Searched: [class path]\n");
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
        assertThat(unknownOption.err()).isEqualTo("iommuctl demo: Unknown option: '--bogus' (see 'iommuctl demo"
                + " --help')\n");
        Run missing = iommuctl("modinfo");
        assertThat(missing.code()).isEqualTo(2);
        assertThat(missing.err()).isEqualTo("iommuctl modinfo: Missing required parameter: 'NAME' (see 'iommuctl"
                + " modinfo --help')\n");
        Run none = iommuctl();
        assertThat(none.code()).isEqualTo(2);
        assertThat(none.err()).startsWith("iommuctl: a command is required");
    }

    @Test
    void backendsListsTreeLicenseAndTheTaintLoadingBrings() throws Exception {
        Run r = iommuctl("backends");
        assertThat(r.code()).isZero();
        assertThat(r.out()).containsPattern("noiommu +1\\.0\\.0 +in-tree +GPL v2 +U when its unsafe mode is used +ok"
                + " +class path").containsPattern("xen +2\\.0\\.0 +in-tree +GPL v2 +none +ok +class path");
        JsonNode j = iommuctl("backends", "--json").json();
        assertThat(j.get("backends")).hasSize(3);
        assertThat(j.get("searched").get(0).asText()).isEqualTo("class path");
    }

    @Test
    void anOutOfTreeBackendShowsUpEverywhereWithItsTaint(@TempDir Path plugins) throws Exception {
        fslNonePlugin(plugins);

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
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("name:           noiommu").contains("parm:           enable_unsafe_noiommu_mode:");
        JsonNode j = iommuctl("modinfo", "noiommu", "--json").json();
        assertThat(j.get("license").asText()).isEqualTo("GPL v2");
        assertThat(j.get("parm")).hasSize(2);
    }

    @Test
    void modinfoOfAnUnknownNameFailsListingTheAvailableOnes() {
        Run r = iommuctl("modinfo", "NO_SUCH");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEqualTo("iommuctl modinfo: No backend named 'NO_SUCH'. Available: [noiommu, swiotlb,"
                + " xen]. Searched: [class path]\n");
    }

    @Test
    void groupsTaintAndDmesgLookAtTheHostTheOptionsPrepare() throws Exception {
        String[] setup = {"--load", "noiommu", "--cmdline", "noiommu.enable_unsafe_noiommu_mode=1", "--bind",
                "0000:06:0d.0"};
        Run groups = iommuctl(concat("groups", setup));
        assertThat(groups.code()).isZero();
        assertThat(groups.err()).isEmpty();
        assertThat(groups.out()).isEqualTo(String.join("\n",
                "/sys/kernel/iommu_groups",
                "`-- 0  type=unknown name=vfio-noiommu  /dev/vfio/noiommu-0",
                "    `-- devices",
                "        `-- 0000:06:0d.0 -> ../../../../devices/pci0000:00/0000:00:01.0/0000:06:0d.0  [vfio-pci]",
                ""));
        Run taint = iommuctl(concat("taint", setup));
        assertThat(taint.code()).isZero();
        assertThat(taint.err()).isEmpty();
        assertThat(taint.out()).startsWith("Tainted: G     U" + " ".repeat(13) + "\n/proc/sys/kernel/tainted: 64\n")
                .contains("U USER               set by noiommu: vfio-noiommu group for 0000:06:0d.0");
        Run dmesg = iommuctl(concat("dmesg", setup));
        assertThat(dmesg.code()).isZero();
        assertThat(dmesg.err()).isEmpty();
        assertThat(dmesg.out()).contains("] vfio-pci 0000:06:0d.0: Adding kernel taint for vfio-noiommu group on"
                + " device");
        JsonNode log = iommuctl(concat("dmesg", concat("--json", setup))).json();
        assertThat(log.get(0).get("text").asText()).startsWith("Linux version");
        Run noGroups = iommuctl("groups", "--json");
        assertThat(noGroups.code()).isZero();
        assertThat(noGroups.json()).isEmpty();
        Run badDevice = iommuctl("groups", "--load", "xen", "--bind", "0000:99:00.0");
        assertThat(badDevice.code()).isEqualTo(1);
        assertOneLine(badDevice.err());
        assertThat(iommuctl("taint", "--bogus").code()).isEqualTo(2);
        assertThat(iommuctl("dmesg", "--load", "intel-iommu").code()).isEqualTo(2);
    }

    static Stream<org.junit.jupiter.params.provider.Arguments> malformedCommandLines() {
        return Stream.of(
                org.junit.jupiter.params.provider.Arguments.of("taint", "xen", "xen.hide=(0000:06:0d.0",
                        "invalid kernel command line word 'xen.hide=(0000:06:0d.0': a '(' is not closed"),
                org.junit.jupiter.params.provider.Arguments.of("groups", "xen", "xen.hide=0000:06:0d.0)",
                        "invalid kernel command line word 'xen.hide=0000:06:0d.0)': a ')' closes no '('"),
                org.junit.jupiter.params.provider.Arguments.of("dmesg", "noiommu",
                        "noiommu.enable_unsafe_noiommu_mode=\"1", "invalid kernel command line word"
                                + " 'noiommu.enable_unsafe_noiommu_mode=\"1': a quote is not closed"),
                org.junit.jupiter.params.provider.Arguments.of("taint", "noiommu",
                        "noiommu.enable_unsafe_noiommu_mode=banana", "invalid value 'banana' for bool parameter"
                                + " noiommu.enable_unsafe_noiommu_mode: expected one of"),
                org.junit.jupiter.params.provider.Arguments.of("groups", "xen", "xen.hide=(zz)",
                        "xen.hide=(zz): Error parsing pci_devs_to_hide at \"(zz)\": expected " + CommandLineCheck.HIDE_FORM));
    }

    @ParameterizedTest(name = "{0} --cmdline {2}")
    @MethodSource("malformedCommandLines")
    void aMalformedCommandLineIsBadUsageOnOneLine(String command, String backend, String line, String error) {
        Run r = iommuctl(command, "--load", backend, "--cmdline", line);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertOneLine(r.err());
        assertThat(r.err()).startsWith("iommuctl " + command + ": --cmdline: " + error);
        assertThat(iommuctl(command, "--json", "--load", backend, "--cmdline", line).code()).isEqualTo(2);
        // Without a backend to read it, a malformed line is still malformed.
        if (error.startsWith("invalid kernel command line word")) {
            assertThat(iommuctl(command, "--cmdline", line).code()).isEqualTo(2);
        }
    }

    @Test
    void anUnknownModuleParameterOnTheCommandLineIsIgnoredAsTheKernelDoesAndShown() {
        Run r = iommuctl("dmesg", "--load", "noiommu", "--cmdline", "noiommu.bogus=1");
        assertThat(r.code()).isZero();
        assertThat(r.err()).isEqualTo("iommuctl dmesg: warning: noiommu: unknown parameter 'bogus' ignored\n");
        assertThat(r.out()).contains("] noiommu: unknown parameter 'bogus' ignored\n");
    }

    @ParameterizedTest
    @ValueSource(strings = {"groups", "taint", "dmesg"})
    void anUnknownBackendToLoadFailsListingTheAvailableNamesAndTheSearchedPlaces(String command,
            @TempDir Path plugins) {
        Run r = iommuctl(command, "--load", "intel-iommu");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEqualTo("iommuctl " + command + ": --load: No backend named 'intel-iommu'. Available:"
                + " [noiommu, swiotlb, xen]. Searched: [class path]\n");
        Run withPlugins = iommuctl(command, "--plugin-dir", plugins.toString(), "--load", "intel-iommu",
                "--cmdline", "noiommu.enable_unsafe_noiommu_mode=1");
        assertThat(withPlugins.code()).isEqualTo(2);
        assertThat(withPlugins.err()).isEqualTo("iommuctl " + command + ": --load: No backend named 'intel-iommu'."
                + " Available: [noiommu, swiotlb, xen]. Searched: [class path, " + plugins + "]\n");
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
    void aScenarioWithAMalformedKernelCommandLineIsBadUsage(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("cmdline.json");
        Files.writeString(file, "{\"host\": {\"cmdline\": \"xen.hide=(0000:06:0d.0\","
                + " \"devices\": [{\"bdf\": \"0000:06:0d.0\"}]}, \"steps\": []}");
        Run r = iommuctl("run", file.toString());
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).startsWith("iommuctl run: ").contains("host.cmdline: ").contains("xen.hide=(0000:06:0d.0")
                .endsWith("\n").doesNotContain("\n\n");
        assertThat(r.err().lines()).hasSize(1);
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
        assertThat(r.err()).isEqualTo("iommuctl run: step 1 (bind) failed: EINVAL: vfio-pci 0000:06:0d.0: probe with"
                + " driver vfio-pci failed with error -22: the device has no iommu group; load an IOMMU backend that"
                + " manages it, or one that provides groups for devices without an IOMMU\n");
    }

    @Test
    void stepLinesShowNonPrintableBytesEscaped() {
        Run r = iommuctl("run", SCENARIOS.resolve("swiotlb-bounce.json").toString());
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("step 5: dpdk:1000 read \"\\x00\\x00\\x00\\x00\"\n")
                .contains("step 7: dpdk:1000 read \"bounced packet\"\n")
                .doesNotContain("\0");
        assertThat(Scenario.escape(new byte[] {'a', 0, '\n', '"', '\\', (byte) 0xff, '\t', 0x7f}))
                .isEqualTo("a\\x00\\n\\\"\\\\\\xff\\t\\x7f");
    }

    @Test
    void onATerminalProgressGoesToStandardErrorAndIsClearedBeforeEachStepLine() {
        String scenario = SCENARIOS.resolve("swiotlb-bounce.json").toString();
        String piped = iommuctl("run", scenario).out();

        // Standard output and error to one terminal, as a shell shows them.
        StringWriter terminal = new StringWriter();
        PrintWriter screen = new PrintWriter(terminal);
        assertThat(Iommuctl.execute(new String[] {"run", scenario}, screen, screen, true)).isZero();
        String raw = terminal.toString();
        assertThat(raw).contains("[step 1/12]").contains("[step 12/12]\r\u001b[Kstep 12: ")
                .containsPattern("\n\r\u001b\\[K\\[step 2/12\\]\r\u001b\\[Kstep 2: [^\r\u001b]+\n");
        assertThat(render(raw)).isEqualTo(piped);

        // Apart, standard output has clean lines only, and standard error ends cleared.
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        assertThat(Iommuctl.execute(new String[] {"run", scenario}, new PrintWriter(out), new PrintWriter(err), true))
                .isZero();
        assertThat(out.toString()).isEqualTo(piped).doesNotContain("\r").doesNotContain("\u001b")
                .doesNotContain("[step");
        assertThat(err.toString()).startsWith("\r\u001b[K[step 1/12]").endsWith("[step 12/12]\r\u001b[K");
        assertThat(err.toString().replaceAll("\r\u001b\\[K(\\[step \\d+/12\\])?", "")).isEmpty();

        StringWriter jsonErr = new StringWriter();
        Iommuctl.execute(new String[] {"run", "--json", scenario}, new PrintWriter(new StringWriter()),
                new PrintWriter(jsonErr), true);
        assertThat(jsonErr.toString()).as("no progress with --json").isEmpty();
    }

    @Test
    void whenPipedThereIsNoProgressAtAll() {
        assumeTrue(System.console() == null, "the tests run without a terminal");
        PrintStream saved = System.err;
        ByteArrayOutputStream systemErr = new ByteArrayOutputStream();
        Run r;
        try {
            System.setErr(new PrintStream(systemErr, true, StandardCharsets.UTF_8));
            r = iommuctl("run", SCENARIOS.resolve("swiotlb-bounce.json").toString());
        } finally {
            System.setErr(saved);
        }
        assertThat(r.code()).isZero();
        assertThat(r.err()).isEmpty();
        assertThat(systemErr.toString(StandardCharsets.UTF_8)).isEmpty();
        assertThat(r.out()).doesNotContain("\r").doesNotContain("[step");
    }

    /** What a terminal shows for text with carriage returns and erase-to-end-of-line. */
    private static String render(String raw) {
        List<String> lines = new ArrayList<>();
        StringBuilder line = new StringBuilder();
        int col = 0;
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c == '\r') {
                col = 0;
            } else if (c == '\n') {
                lines.add(line.toString());
                line.setLength(0);
                col = 0;
            } else if (raw.startsWith("\u001b[K", i)) {
                line.setLength(col);
                i += 2;
            } else {
                if (col < line.length()) {
                    line.setCharAt(col, c);
                } else {
                    line.append(c);
                }
                col++;
            }
        }
        assertThat(line).as("the last line was cleared").isEmpty();
        return lines.stream().map(l -> l + "\n").reduce("", String::concat);
    }

    @Test
    void aHostWithoutDevicesIsTheEmbeddedOneOfTheRequestedSize(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("small.json");
        Files.writeString(file, "{\"host\": {\"memoryMiB\": 512, \"cpus\": 4}, \"steps\": []}");
        Host host = new Scenario(new BackendLoader(LoaderConfig.classPathOnly()), ScenarioReader.read(file), line -> { },
                null).run().host();
        assertThat(host.memory().size()).isEqualTo(512L << 20);
        assertThat(host.cpuCount()).isEqualTo(4);
        assertThat(host.buses().find(EmbeddedHost.NIC)).isPresent();
        assertThat(host.buses().find("0000:00:02.0")).isPresent();
        assertThat(iommuctl("dmesg", "--scenario", file.toString()).out()).contains("4 CPUs");

        Path defaults = dir.resolve("defaults.json");
        Files.writeString(defaults, "{\"steps\": []}");
        Host embedded = new Scenario(new BackendLoader(LoaderConfig.classPathOnly()), ScenarioReader.read(defaults),
                line -> { }, null).run().host();
        assertThat(embedded.memory().size()).isEqualTo(Host.DEFAULT_MEMORY);
        assertThat(embedded.cpuCount()).isEqualTo(2);
    }

    @Test
    void anErrorMessageIsCutAtItsFirstLine() {
        assertThat(Iommuctl.oneLine("Unexpected character: fix this\n at [Source: (File); line: 1]"))
                .isEqualTo("Unexpected character: fix this");
        assertThat(Iommuctl.oneLine("one line")).isEqualTo("one line");
        assertThat(Iommuctl.oneLine("windows line\r\nsecond")).isEqualTo("windows line");
        assertThat(Iommuctl.oneLine(null)).isEmpty();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "unexpected errno|{\"do\": \"expect-error\", \"errno\": \"ENOMEM\", \"step\": {\"do\": \"unload\","
                + " \"backend\": \"noiommu\"}}|step 4 (expect-error) failed: expected ENOMEM but got EAGAIN",
        "wrong bytes|{\"do\": \"cpu-read\", \"process\": \"p\", \"buffer\": \"b\", \"expect\": \"xy\"}"
                + "|step 4 (cpu-read) failed: expected \"xy\" but found \"\\x00\\x00\"",
        "a step that errs|{\"do\": \"unload\", \"backend\": \"noiommu\"}|step 4 (unload) failed: EAGAIN: "})
    void aStepThatRunsAndFailsIsExitOne(String what, String step, String error, @TempDir Path dir) throws Exception {
        Path file = dir.resolve("fails.json");
        Files.writeString(file, "{\"host\": {\"cmdline\": \"noiommu.enable_unsafe_noiommu_mode=1\"},"
                + " \"backends\": [{\"name\": \"noiommu\"}],"
                + " \"processes\": [{\"name\": \"p\", \"capabilities\": [\"CAP_SYS_RAWIO\"]}],"
                + " \"steps\": [{\"do\": \"bind\", \"device\": \"0000:06:0d.0\"},"
                + " {\"do\": \"open\", \"process\": \"p\", \"device\": \"0000:06:0d.0\"},"
                + " {\"do\": \"map\", \"process\": \"p\", \"device\": \"0000:06:0d.0\", \"buffer\": \"b\","
                + " \"contiguous\": true, \"iova\": \"phys\"}, " + step + "]}");
        Run r = iommuctl("run", file.toString());
        assertThat(r.code()).as(what).isEqualTo(1);
        assertOneLine(r.err());
        assertThat(r.err()).startsWith("iommuctl run: " + error);
        assertThat(r.err()).doesNotContain("\0");
    }
}
