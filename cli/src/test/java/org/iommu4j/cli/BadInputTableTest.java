package org.iommu4j.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.cli.IommuctlTest.Run;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every kind of malformed input the issue lists, one row each: the exit code (2, bad input), the exact message,
 * and that no step ran (nothing on standard output, no step in --json).
 */
class BadInputTableTest {
    /** A version 1 prefix that gets a process and an open device, so that a map step is the thing checked. */
    private static final String OPENED = "\"processes\": [{\"name\": \"q\"}], \"steps\": [{\"do\": \"bind\","
            + " \"device\": \"0000:06:0d.0\"}, {\"do\": \"open\", \"process\": \"q\", \"device\": \"0000:06:0d.0\"},"
            + " {\"do\": \"map\", \"process\": \"q\", \"device\": \"0000:06:0d.0\", \"buffer\": \"b\"";
    private static final String V2_OPENED = "\"version\": 2, \"processes\": [{\"name\": \"q\"}], \"steps\":"
            + " [{\"step\": \"bind\", \"device\": \"0000:06:0d.0\"}, {\"step\": \"open\", \"process\": \"q\","
            + " \"device\": \"0000:06:0d.0\", \"type\": \"ANY\"}, {\"step\": \"map\", \"process\": \"q\", \"device\":"
            + " \"0000:06:0d.0\", \"buffer\": \"b\"";
    private static final String SIZE = "expected " + Values.SIZE_FORM;

    static Stream<Arguments> scenarios() {
        return Stream.of(
                row("memory as a word", "{\"host\": {\"memoryMiB\": \"lots\"}, \"steps\": []}",
                        "host.memoryMiB: \"lots\" is not a whole number: expected a JSON number without a fraction or"
                                + " quotes, -2147483648 to 2147483647"),
                row("memory out of range", "{\"host\": {\"memoryMiB\": 3}, \"steps\": []}",
                        "host.memoryMiB: 3 is out of range: expected 16 to 1048576 MiB"),
                row("capabilities as a string", "{\"processes\": [{\"name\": \"q\", \"capabilities\":"
                        + " \"CAP_SYS_RAWIO\"}], \"steps\": []}",
                        "processes[0].capabilities: \"CAP_SYS_RAWIO\" is not a list: expected a JSON array [...]"),
                row("unknown capability", "{\"processes\": [{\"name\": \"q\", \"capabilities\": [\"CAP_NET_ADMIN\"]}],"
                        + " \"steps\": []}", "processes[0].capabilities[0]: \"CAP_NET_ADMIN\" is not a capability:"
                        + " expected one of " + Values.capabilityNames()),
                row("negative uid", "{\"processes\": [{\"name\": \"q\", \"uid\": -5}], \"steps\": []}",
                        "processes[0].uid: -5 is out of range: expected 0 to 2147483647"),
                row("a process twice", "{\"processes\": [{\"name\": \"q\"}, {\"name\": \"q\"}], \"steps\": []}",
                        "processes[1].name: \"q\" is declared twice: process names are unique"),
                row("offset as a word", "{" + OPENED + "}, {\"do\": \"cpu-read\", \"buffer\": \"b\", \"offset\":"
                        + " \"ten\", \"expect\": \"a\"}]}", "steps[3].offset: \"ten\" is not a size: " + SIZE),
                row("prot rwx", "{" + OPENED + ", \"prot\": \"rwx\"}]}", "steps[2].prot: \"rwx\" is not a protection:"
                        + " expected " + Values.PROT_FORM),
                row("prot empty", "{" + OPENED + ", \"prot\": \"\"}]}", "steps[2].prot: \"\" is not a protection:"
                        + " expected " + Values.PROT_FORM),
                row("bytes true", "{" + OPENED + ", \"bytes\": true}]}", "steps[2].bytes: true is not a size: " + SIZE),
                row("bytes with a fraction", "{" + OPENED + ", \"bytes\": 8192.5}]}",
                        "steps[2].bytes: 8192.5 is not a size: " + SIZE),
                row("bytes 2^64", "{" + OPENED + ", \"bytes\": 18446744073709551616}]}",
                        "steps[2].bytes: 18446744073709551616 is too large: a size is at most 2^63 - 1 bytes"),
                row("bytes 1e30", "{" + OPENED + ", \"bytes\": 1e30}]}", "steps[2].bytes: 1.0E30 is not a size: "
                        + SIZE),
                row("bytes 8 TiB", "{" + OPENED + ", \"bytes\": \"8 TiB\"}]}", "steps[2].bytes: 8796093022208 is out"
                        + " of range: expected 1 to 1099511627776 bytes (1 TiB)"),
                row("a negative iova", "{" + OPENED + ", \"iova\": \"-0x1000\"}]}", "steps[2].iova: \"-0x1000\" is not"
                        + " an iova: expected " + Values.IOVA_FORM),
                row("misspelled bytes", "{" + OPENED + ", \"byts\": 4096}]}", "steps[2].byts: unknown field \"byts\""
                        + " in a map step: expected buffer, bytes, container, contiguous, device, iova, process, prot"),
                row("version 2 without bytes", "{" + V2_OPENED + ", \"iova\": \"any\", \"prot\": \"rw\"}]}",
                        "steps[2].bytes: missing: a map step needs \"bytes\" (see docs/scenarios.md)"),
                row("version 2 without prot", "{" + V2_OPENED + ", \"iova\": \"any\", \"bytes\": 4096}]}",
                        "steps[2].prot: missing: a map step needs \"prot\" (see docs/scenarios.md)"),
                row("version 2 without iova", "{" + V2_OPENED + ", \"prot\": \"rw\", \"bytes\": 4096}]}",
                        "steps[2].iova: missing: a map step needs \"iova\" (see docs/scenarios.md)"),
                row("version 2 open without type", "{\"version\": 2, \"processes\": [{\"name\": \"q\"}], \"steps\":"
                        + " [{\"step\": \"open\", \"process\": \"q\", \"device\": \"0000:06:0d.0\"}]}",
                        "steps[0].type: missing: an open step needs \"type\" (see docs/scenarios.md)"),
                row("misspelled host", "{\"hots\": {}, \"steps\": []}", "hots: unknown field \"hots\": expected"
                        + " backends, description, host, processes, steps, version"),
                row("devices as a string", "{\"host\": {\"devices\": \"0000:06:0d.0\"}, \"steps\": []}",
                        "host.devices: \"0000:06:0d.0\" is not a list: expected a JSON array [...]"),
                row("an empty object", "{}", "steps: missing: required (see docs/scenarios.md)"),
                row("an unknown step after a good one", "{\"steps\": [{\"do\": \"bind\", \"device\": \"0000:06:0d.0\"},"
                        + " {\"do\": \"frob\"}]}", "steps[1].do: \"frob\" is not a step: expected one of "
                        + String.join(", ", ScenarioFile.Step.NAMES)),
                row("a step without its kind", "{\"steps\": [{\"device\": \"0000:06:0d.0\"}]}", "steps[0].do: missing:"
                        + " every step names its kind, one of " + String.join(", ", ScenarioFile.Step.NAMES)),
                row("a step that is no object", "{\"steps\": [\"bind\"]}", "steps[0]: \"bind\" is not a step: expected"
                        + " an object like {\"do\": \"bind\", \"device\": \"0000:06:0d.0\"}"),
                row("a malformed B:D.F in an expect-error", "{\"steps\": [{\"do\": \"expect-error\", \"errno\":"
                        + " \"ENODEV\", \"step\": {\"do\": \"bind\", \"device\": \"0000:06:0d\"}}]}",
                        "steps[0].step.device: invalid PCI address '0000:06:0d': expected DDDD:BB:DD.F in hex, for"
                                + " example 0000:06:0d.0"),
                row("a device the host does not have", "{\"steps\": [{\"do\": \"bind\", \"device\": \"0000:06:0e.0\"}]}",
                        "steps[0].device: 0000:06:0e.0 is not a device of the host: expected one of [0000:00:02.0,"
                                + " 0000:06:0d.0, 0000:07:00.0] (or one a hot-add step adds before)"),
                row("an unknown errno", "{\"steps\": [{\"do\": \"expect-error\", \"errno\": \"EWHAT\", \"step\":"
                        + " {\"do\": \"unload\", \"backend\": \"xen\"}}]}", "steps[0].errno: \"EWHAT\" is not an errno"
                        + " name: expected one of " + Values.errnoNames()),
                row("expect-error without its step", "{\"steps\": [{\"do\": \"expect-error\", \"errno\": \"EBUSY\"}]}",
                        "steps[0].step: missing: an expect-error step needs \"try\" (see docs/scenarios.md)"),
                row("an unknown process", "{\"steps\": [{\"do\": \"open\", \"process\": \"nobody\", \"device\":"
                        + " \"0000:06:0d.0\"}]}", "steps[0].process: \"nobody\" is not a process of the scenario:"
                        + " expected one of none (declare it under \"processes\")"),
                row("a buffer never mapped", "{\"steps\": [{\"do\": \"cpu-read\", \"buffer\": \"x\", \"expect\":"
                        + " \"a\"}]}", "steps[0].buffer: \"x\" is not a buffer an earlier map step makes: expected one"
                        + " of none yet (map it first)"),
                row("an unknown backend", "{\"steps\": [{\"do\": \"bind\", \"device\": \"0000:06:0d.0\"}, {\"do\":"
                        + " \"load\", \"backend\": \"intel-iommu\"}]}", "steps[1].backend: No backend named"
                        + " 'intel-iommu'. Available: [noiommu, swiotlb, xen]. Searched: [class path]"),
                row("an unknown parameter given with a load", "{\"backends\": [{\"name\": \"noiommu\", \"params\":"
                        + " {\"bogus\": \"1\"}}], \"steps\": []}", "backends[0].params.bogus: noiommu: Unknown"
                        + " parameter `bogus'; valid parameters: [enable_unsafe_noiommu_mode, kernel_faithful_map]"),
                row("a hide list that does not parse", "{\"host\": {\"cmdline\": \"xen.hide=(0000:06:0d.9)\"},"
                        + " \"steps\": []}", "host.cmdline: xen.hide=(0000:06:0d.9): " + hideError("(0000:06:0d.9)") + ": expected "
                        + CommandLineCheck.HIDE_FORM),
                row("a hide parameter that does not parse", "{\"backends\": [{\"name\": \"swiotlb\", \"params\":"
                        + " {\"hide\": \"0000:06:0d.0\"}}], \"steps\": []}", "backends[0].params.hide: swiotlb.hide="
                        + "0000:06:0d.0: Error parsing pci_devs_to_hide at \"0000:06:0d.0\": expected "
                        + CommandLineCheck.HIDE_FORM),
                row("a null", "{\"host\": {\"memoryMiB\": null}, \"steps\": []}", "host.memoryMiB: null is not"
                        + " allowed: leave the field out for its default (see docs/scenarios.md)"),
                row("an unknown version", "{\"version\": 3, \"steps\": []}", "version: 3 is not a scenario version:"
                        + " expected 2 (or 1, the form without \"version\", whose steps say \"do\")"),
                row("a version 2 step in a version 1 file", "{\"steps\": [{\"step\": \"bind\", \"device\":"
                        + " \"0000:06:0d.0\"}]}", "steps[0].step: \"step\" names a step's kind in version 2: add"
                        + " \"version\": 2 at the top of the file, or write \"do\" as version 1 does"),
                row("a map of a container never opened", "{\"version\": 2, \"processes\": [{\"name\": \"q\"}],"
                        + " \"steps\": [{\"step\": \"map\", \"process\": \"q\", \"container\": \"vm\", \"buffer\":"
                        + " \"b\", \"bytes\": 4096, \"iova\": \"any\", \"prot\": \"rw\"}]}", "steps[0].container: \"vm\""
                        + " is not a container q opens in an earlier step: name it in an open step's \"container\""
                        + " first"),
                row("a new_slot that does not parse", "{\"version\": 2, \"backends\": [{\"name\": \"xen\"}],"
                        + " \"steps\": [{\"step\": \"new_slot\", \"backend\": \"xen\", \"slot\": \"06:0d\"}]}",
                        "steps[0].slot: invalid PCI slot '06:0d': expected DDDD:BB:SS.F or BB:SS.F in hex, with * for"
                                + " the device and function (DDDD:BB:SS.*, DDDD:BB:*.*)"));
    }

    /** What the one hide= parser says of a list, so that the CLI's message is shown to be built on it. */
    static String hideError(String list) {
        try {
            org.iommu4j.api.PciSlotPattern.parseList(list);
        } catch (org.iommu4j.api.IommuException e) {
            return e.getMessage();
        }
        throw new AssertionError(list + " parses");
    }

    private static Arguments row(String what, String json, String message) {
        return Arguments.of(what, json, message);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("scenarios")
    void aMalformedScenarioIsExitTwoWithItsPathValueAndWhatIsAcceptedAndRunsNoStep(String what, String json,
            String message, @TempDir Path dir) throws Exception {
        Path file = dir.resolve("s.json");
        Files.writeString(file, json);
        Run r = IommuctlTest.iommuctl("run", file.toString());
        assertThat(r.code()).as(what).isEqualTo(2);
        assertThat(r.out()).as("no step ran").isEmpty();
        assertThat(r.err()).isEqualTo("iommuctl run: " + file + ": " + message + "\n");

        Run json2 = IommuctlTest.iommuctl("run", "--json", file.toString());
        assertThat(json2.code()).isEqualTo(2);
        JsonNode error = json2.json().get("error");
        assertThat(error.get("errno").isNull()).isTrue();
        assertThat(error.get("message").asText()).isEqualTo(file + ": " + message);
        assertThat(error.get("path").asText()).isEqualTo(message.substring(0, message.indexOf(": ")));
        assertThat(json2.json().get("steps")).isEmpty();

        Run groups = IommuctlTest.iommuctl("groups", "--scenario", file.toString());
        assertThat(groups.code()).isEqualTo(2);
        assertThat(groups.out()).isEmpty();
        assertThat(groups.err()).isEqualTo("iommuctl groups: " + file + ": " + message + "\n");
    }

    static Stream<Arguments> files() {
        return Stream.of(
                Arguments.of("a directory", null, "cannot read scenario %s: it is a directory"),
                Arguments.of("no such file", "", "cannot read scenario %s: no such file"),
                Arguments.of("not UTF-8", "\u00ff", "scenario %s is not UTF-8 text: a scenario is a JSON file in UTF-8"),
                Arguments.of("a comment", "// notes\n{}", "scenario %s is not valid JSON at line 1, column 1: comments"
                        + " are not JSON (say it in \"description\")"),
                Arguments.of("a duplicate key", "{\"steps\": [], \"steps\": []}", "scenario %s is not valid JSON at"
                        + " line 1, column 22: duplicate key 'steps'"),
                Arguments.of("a missing comma", "{\n  \"steps\": [\n    {\"do\": \"bind\" \"device\": \"x\"}\n  ]\n}\n",
                        "scenario %s is not valid JSON at line 3, column 19: Unexpected character ('\"' (code 34)): was"
                                + " expecting comma to separate Object entries"),
                Arguments.of("not an object", "[]", "scenario %s is not a JSON object: expected {\"version\": 2,"
                        + " \"host\": {...}, \"steps\": [...]} (see docs/scenarios.md)"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("files")
    void aFileThatIsNoScenarioIsExitTwoInPlainWords(String what, String content, String message, @TempDir Path dir)
            throws Exception {
        Path file = content == null ? dir : dir.resolve("s.json");
        if (content != null && !content.isEmpty()) {
            Files.write(file, content.equals("\u00ff") ? new byte[] {(byte) 0xff, '{', '}'}
                    : content.getBytes(StandardCharsets.UTF_8));
        }
        Run r = IommuctlTest.iommuctl("run", file.toString());
        assertThat(r.code()).as(what).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEqualTo("iommuctl run: " + String.format(message, file) + "\n");
        Run json = IommuctlTest.iommuctl("run", file.toString(), "--json");
        assertThat(json.json().get("error").get("message").asText()).isEqualTo(String.format(message, file));
    }

    @Test
    void theLargestAddressIsAnAddressAndItsDmaFaultsAsAnOperationThatFailed(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("s.json");
        Files.writeString(file, "{\"steps\": [{\"do\": \"device-dma\", \"device\": \"0000:06:0d.0\", \"address\":"
                + " \"0xfffffffffffff000\", \"write\": \"x\"}]}");
        Run r = IommuctlTest.iommuctl("run", file.toString());
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("iommuctl run: step 1 (device-dma) failed: EFAULT: 0000:06:0d.0: iommu fault:"
                + " DMA write at bus address 0xfffffffffffff000: no memory there (memory ends at 0x40000000)\n");
    }

    @Test
    void aTransferCrossingTheDmaMaskNamesItsFirstByteBeyondIt(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("s.json");
        Files.writeString(file, "{\"steps\": [{\"do\": \"device-dma\", \"device\": \"0000:07:00.0\", \"address\":"
                + " \"0xfffffffe\", \"write\": \"abcd\"}]}");
        Run r = IommuctlTest.iommuctl("run", file.toString());
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("iommuctl run: step 1 (device-dma) failed: EFAULT: 0000:07:00.0: iommu fault:"
                + " DMA write at bus address 0x100000000: beyond the device's DMA mask 0xffffffff (the 4-byte transfer"
                + " starts at 0xfffffffe)\n");
    }

    static Stream<Arguments> options() {
        return Stream.of(
                Arguments.of(new String[] {"groups", "--load", "xen", "--bind", "06:0d.0"}, "iommuctl groups: --bind:"
                        + " invalid PCI address '06:0d.0': expected DDDD:BB:DD.F in hex, for example 0000:06:0d.0"),
                Arguments.of(new String[] {"taint", "--load", "xen", "--cmdline", "xen.hide=(0000:06:0d.9)"},
                        "iommuctl taint: --cmdline: xen.hide=(0000:06:0d.9): " + hideError("(0000:06:0d.9)")
                                + ": expected " + CommandLineCheck.HIDE_FORM),
                Arguments.of(new String[] {"groups", "--scenario", "x.json", "--load", "xen"}, "iommuctl groups:"
                        + " --scenario: a scenario sets up its own host: give --cmdline, --load and --bind without"
                        + " --scenario, or put them in the scenario (host.cmdline, backends, a bind step)"),
                Arguments.of(new String[] {"bogus"}, "iommuctl: " + Iommuctl.unknownCommand("bogus")),
                Arguments.of(new String[] {"help", "bogus"}, "iommuctl: " + Iommuctl.unknownCommand("bogus")),
                Arguments.of(new String[] {"modinfo", "intel-iommu"}, "iommuctl modinfo: No backend named"
                        + " 'intel-iommu'. Available: [noiommu, swiotlb, xen]. Searched: [class path]"));
    }

    @ParameterizedTest
    @MethodSource("options")
    void badOptionsAreExitTwoWithTheOptionNamed(String[] args, String message) {
        Run r = IommuctlTest.iommuctl(args);
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).isEqualTo(message + "\n");
    }

    @ParameterizedTest
    @ValueSource(strings = {"demo", "backends", "groups", "taint", "dmesg", "run", "modinfo"})
    void aMissingPluginDirectoryIsExitTwoInEveryCommandBeforeOrAfterItsName(String command, @TempDir Path dir)
            throws IOException {
        Path missing = dir.resolve("plugins");
        String[] extra = command.equals("run") ? new String[] {"x.json"} : command.equals("modinfo")
                ? new String[] {"xen"} : new String[0];
        for (boolean before : new boolean[] {true, false}) {
            String[] args = before ? concat(new String[] {"--plugin-dir", missing.toString(), command}, extra)
                    : concat(new String[] {command, "--plugin-dir", missing.toString()}, extra);
            Run r = IommuctlTest.iommuctl(args);
            assertThat(r.code()).isEqualTo(2);
            assertThat(r.err()).isEqualTo("iommuctl " + command + ": --plugin-dir: " + missing + ": no such"
                    + " directory\n");
        }
        Path file = Files.writeString(dir.resolve("a-file"), "");
        Run r = IommuctlTest.iommuctl(concat(new String[] {command, "--plugin-dir", file.toString()}, extra));
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).isEqualTo("iommuctl " + command + ": --plugin-dir: " + file + ": not a directory (give"
                + " the directory that holds the plugin jars)\n");
    }

    @Test
    void aBackendNameMatchingAJarSkippedAsBrokenSaysSo(@TempDir Path plugins) throws IOException {
        Files.write(plugins.resolve("fsl-none.jar"), new byte[] {'n', 'o', 't', ' ', 'a', ' ', 'j', 'a', 'r'});
        Run r = IommuctlTest.iommuctl("modinfo", "fsl-none", "--plugin-dir", plugins.toString());
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).startsWith("iommuctl modinfo: backend fsl-none was skipped as broken: "
                + plugins.resolve("fsl-none.jar") + ": ");
    }

    @Test
    void jsonErrorsHaveOneShapeInEveryCommand() throws Exception {
        for (String[] args : new String[][] {{"demo", "--backend", "nope", "--json"}, {"modinfo", "nope", "--json"},
            {"--json", "groups", "--load", "nope"}, {"run", "nope.json", "--json"}}) {
            Run r = IommuctlTest.iommuctl(args);
            assertThat(r.code()).isEqualTo(2);
            JsonNode error = r.json().get("error");
            assertThat(error.fieldNames()).toIterable().containsExactly("errno", "message", "path");
        }
        Run failed = IommuctlTest.iommuctl("groups", "--json", "--load", "noiommu", "--bind", "0000:06:0d.0");
        assertThat(failed.code()).isEqualTo(1);
        assertThat(failed.json().get("error").get("errno").asText()).isEqualTo("EINVAL");
    }

    @Test
    void kernelCommandLineWordsTheKernelOnlyWarnsAboutAreShownAndTheRunGoesOn(@TempDir Path dir) throws IOException {
        String line = "bogusmod.x=1 NOIOMMU.enable_unsafe_noiommu_mode=1 dma_debug=bogus mem=abc noiommu.foo=1";
        String warnings = "%1$s: warning: bogusmod.x=1: no backend named bogusmod (names are case-sensitive;"
                + " backends: noiommu, swiotlb, xen); ignored, as the kernel keeps parameters of modules that are"
                + " never loaded\n"
                + "%1$s: warning: NOIOMMU.enable_unsafe_noiommu_mode=1: no backend named NOIOMMU (names are"
                + " case-sensitive; backends: noiommu, swiotlb, xen); ignored, as the kernel keeps parameters of"
                + " modules that are never loaded\n"
                + "%1$s: warning: dma_debug=bogus: only dma_debug=off has an effect (on turns it off at boot);"
                + " ignored\n"
                + "%1$s: warning: noiommu: unknown parameter 'foo' ignored\n"
                + "%1$s: warning: Unknown kernel command line parameters \"mem=abc\", will be passed to user"
                + " space.\n";
        Run taint = IommuctlTest.iommuctl("taint", "--load", "noiommu", "--cmdline", line);
        assertThat(taint.code()).isZero();
        assertThat(taint.err()).isEqualTo(String.format(warnings, "iommuctl taint"));
        Path file = dir.resolve("s.json");
        Files.writeString(file, "{\"host\": {\"cmdline\": \"" + line + "\"}, \"backends\": [{\"name\":"
                + " \"noiommu\"}], \"steps\": []}");
        Run run = IommuctlTest.iommuctl("run", file.toString());
        assertThat(run.code()).isZero();
        assertThat(run.err()).isEqualTo(String.format(warnings, "iommuctl run"));
        assertThat(IommuctlTest.iommuctl("dmesg", "--scenario", file.toString()).out())
                .contains("] noiommu: unknown parameter 'foo' ignored\n");
    }

    @Test
    void aType1MapWithoutAnIovaSaysWhatToWrite(@TempDir Path dir) throws IOException {
        Path file = dir.resolve("s.json");
        Files.writeString(file, "{\"host\": {\"xen\": {\"hide\": \"(0000:06:0d.0)\"}}, \"backends\": [{\"name\":"
                + " \"xen\"}], \"processes\": [{\"name\": \"q\", \"capabilities\": [\"CAP_IPC_LOCK\"]}],"
                + " \"steps\": [{\"do\": \"bind\", \"device\": \"0000:06:0d.0\"}, {\"do\": \"open\", \"process\":"
                + " \"q\", \"device\": \"0000:06:0d.0\"}, {\"do\": \"map\", \"process\": \"q\", \"device\":"
                + " \"0000:06:0d.0\", \"buffer\": \"b\"}]}");
        Run r = IommuctlTest.iommuctl("run", file.toString());
        assertThat(r.code()).isEqualTo(1);
        assertThat(r.err()).isEqualTo("iommuctl run: step 3 (map) failed: EINVAL: vfio-iommu-type1 maps at the iova"
                + " the user chooses: give the map an \"iova\" such as \"0x40000000\" (\"any\" is for the SWIOTLB"
                + " and NOIOMMU types)\n");
    }

    @Test
    void versionComesFromTheApi() {
        Run r = IommuctlTest.iommuctl("-V");
        assertThat(r.out()).isEqualTo("iommuctl 0.1.0 (iommu4j API " + ApiVersion.CURRENT + ")\n");
    }

    @Test
    void aFailingScenarioStillShowsTheHostAsTheFailingStepLeftIt(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("s.json");
        Files.writeString(file, "{\"host\": {\"cmdline\": \"noiommu.enable_unsafe_noiommu_mode=1\"}, \"backends\":"
                + " [{\"name\": \"noiommu\"}], \"steps\": [{\"do\": \"bind\", \"device\": \"0000:06:0d.0\"},"
                + " {\"do\": \"bind\", \"device\": \"0000:06:0d.0\"}]}");
        Run groups = IommuctlTest.iommuctl("groups", "--scenario", file.toString());
        assertThat(groups.code()).isEqualTo(1);
        assertThat(groups.out()).contains("0000:06:0d.0 -> ").contains("[vfio-pci]");
        assertThat(groups.err()).startsWith("iommuctl groups: step 2 (bind) failed: EBUSY: ");
        Run json = IommuctlTest.iommuctl("taint", "--json", "--scenario", file.toString());
        assertThat(json.code()).isEqualTo(1);
        assertThat(json.json().get("error").get("path").asText()).isEqualTo("steps[1]");
        assertThat(json.json().get("steps")).hasSize(1);
        assertThat(json.json().get("taint").get("tainted").asText()).startsWith("Tainted: G     U");
    }

    private static String[] concat(String[] a, String[] b) {
        String[] all = new String[a.length + b.length];
        System.arraycopy(a, 0, all, 0, a.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }
}
