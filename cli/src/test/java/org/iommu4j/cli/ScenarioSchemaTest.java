package org.iommu4j.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.networknt.schema.Error;
import com.networknt.schema.InputFormat;
import com.networknt.schema.Schema;
import com.networknt.schema.SchemaRegistry;
import com.networknt.schema.SpecificationVersion;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.iommu4j.cli.IommuctlTest.Run;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@code iommuctl schema} prints the schema the build generated from {@link ScenarioFile}; every shipped example
 * validates against it with an independent validator, and a misspelled key does not; each example runs as
 * written; version 1 files (today's users' files) run with the same meaning as their version 2 form.
 */
class ScenarioSchemaTest {
    private static final Path SCENARIOS = Path.of("..", "examples", "scenarios");
    private static final Path VERSION1 = Path.of("src", "test", "resources", "scenarios-v1");

    private static Schema schema() {
        Run r = IommuctlTest.iommuctl("schema");
        assertThat(r.code()).isZero();
        return SchemaRegistry.withDefaultDialect(SpecificationVersion.DRAFT_2020_12).getSchema(r.out(),
                InputFormat.JSON);
    }

    static Stream<Path> examples() throws IOException {
        try (Stream<Path> s = Files.list(SCENARIOS)) {
            List<Path> all = s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
            assertThat(all).hasSizeGreaterThanOrEqualTo(8);
            return all.stream();
        }
    }

    @ParameterizedTest
    @MethodSource("examples")
    void everyExampleValidatesAgainstTheSchemaAndRunsAsWritten(Path example, @TempDir Path plugins)
            throws IOException {
        List<Error> errors = schema().validate(Files.readString(example), InputFormat.JSON);
        assertThat(errors).as(example.toString()).isEmpty();
        String text = Files.readString(example);
        // As docs/scenarios.md says: a scenario that loads the vtd example plugin runs with --plugin-dir.
        Run r = text.contains("\"name\": \"vtd\"")
                ? IommuctlTest.iommuctl("run", "--plugin-dir", vtdPlugin(plugins).toString(), example.toString())
                : IommuctlTest.iommuctl("run", example.toString());
        assertThat(r.err()).isEmpty();
        assertThat(r.code()).isZero();
        assertThat(r.out()).containsPattern("scenario done: \\d+ steps");
    }

    @Test
    void aMisspelledKeyFailsTheSchema() throws IOException {
        String good = Files.readString(SCENARIOS.resolve("unprivileged-process.json"));
        assertThat(schema().validate(good, InputFormat.JSON)).isEmpty();
        String misspelled = good.replaceFirst("\"bytes\"", "\"byts\"");
        List<Error> errors = schema().validate(misspelled, InputFormat.JSON);
        assertThat(errors).isNotEmpty();
        assertThat(errors.toString()).contains("byts");
        assertThat(schema().validate(good.replaceFirst("\"memlock\"", "\"memlok\""), InputFormat.JSON)).isNotEmpty();
        assertThat(schema().validate(good.replace("\"prot\": \"r\"", "\"prot\": \"rwx\""), InputFormat.JSON))
                .isNotEmpty();
    }

    @Test
    void aSecondGroupJoinsTheNamedContainerAndClosingItLeavesTheFirstMapped() {
        Run r = IommuctlTest.iommuctl("run", SCENARIOS.resolve("two-groups-one-container.json").toString());
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("step 4: qemu:1000 opened /dev/vfio/1 into its container vm"
                + " (VFIO_TYPE1v2_IOMMU(3))\n")
                .contains("step 7: 0000:06:0e.0 read \"from the first\" at bus address 0x80000000\n")
                .contains("step 10: failed as expected with EFAULT: 0000:06:0e.0: iommu fault: DMA read at bus address"
                        + " 0x80000000: not mapped\n");
    }

    /** The example VT-d-like backend, built by its module, in a plugin directory of its own. */
    static Path vtdPlugin(Path plugins) throws IOException {
        Path built;
        try (Stream<Path> s = Files.list(Path.of("..", "examples", "vtd-backend", "target"))) {
            built = s.filter(p -> p.getFileName().toString().matches("iommu4j-example-vtd-backend-[^-]+-SNAPSHOT\\.jar"
                    + "|iommu4j-example-vtd-backend-[0-9.]+\\.jar")).findFirst().orElseThrow();
        }
        Files.createDirectories(plugins.resolve("vtd"));
        Files.copy(built, plugins.resolve("vtd").resolve("vtd.jar"));
        return plugins;
    }

    @Test
    void twoFunctionsWithoutAcsShareOneGroupThatOneOpenServesAndOneMapFeedsBoth(@TempDir Path plugins)
            throws IOException {
        Path example = SCENARIOS.resolve("two-devices-one-group.json");
        Run r = IommuctlTest.iommuctl("run", "--plugin-dir", vtdPlugin(plugins).toString(), example.toString());
        assertThat(r.err()).isEmpty();
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("step 3: qemu:1000 opened /dev/vfio/0 with VFIO_TYPE1v2_IOMMU(3)\n")
                .contains("step 4: qemu:1000 opened 0000:02:00.1 of /dev/vfio/0, which it has open\n")
                .contains("step 7: 0000:02:00.1 read \"function 0 wrote this\" at bus address 0x100000\n")
                .contains("step 9: qemu:1000 read \"and 1 this\"")
                .containsPattern("scenario done: 11 steps");
        Run groups = IommuctlTest.iommuctl("groups", "--plugin-dir", plugins.toString(), "--scenario",
                example.toString());
        assertThat(groups.code()).isZero();
        assertThat(groups.out()).isEqualTo("""
                /sys/kernel/iommu_groups
                `-- 0  type=DMA-FQ  /dev/vfio/0
                    `-- devices
                        |-- 0000:02:00.0 -> ../../../../devices/pci0000:00/0000:00:1c.0/0000:02:00.0  [vfio-pci]
                        `-- 0000:02:00.1 -> ../../../../devices/pci0000:00/0000:00:1c.0/0000:02:00.1  [vfio-pci]
                """);
    }

    @Test
    void withAcsOnTheFunctionsEachHasAGroupOfItsOwnThatASecondOpenAddsToTheContainer(@TempDir Path plugins)
            throws IOException {
        String acs = Files.readString(SCENARIOS.resolve("two-devices-one-group.json")).replace(
                "\"multifunction\": true}", "\"multifunction\": true, \"acs\": [\"SV\", \"RR\", \"CR\", \"UF\"]}");
        Path file = plugins.resolveSibling(plugins.getFileName() + "-acs.json");
        Files.writeString(file, acs);
        Run r = IommuctlTest.iommuctl("run", "--plugin-dir", vtdPlugin(plugins).toString(), file.toString());
        Files.delete(file);
        assertThat(r.err()).isEmpty();
        assertThat(r.code()).isZero();
        assertThat(r.out()).contains("step 3: qemu:1000 opened /dev/vfio/0 with VFIO_TYPE1v2_IOMMU(3)\n")
                .contains("step 4: qemu:1000 opened /dev/vfio/1 into its container vm (VFIO_TYPE1v2_IOMMU(3))\n");
    }

    @Test
    void aFailedOpenClosesWhatItOpenedSoTheNextOpenWorks() throws IOException {
        Path file = Files.createTempFile("open", ".json");
        Files.writeString(file, "{\"version\": 2, \"host\": {\"cmdline\": \"noiommu.enable_unsafe_noiommu_mode=1\"},"
                + " \"backends\": [{\"name\": \"noiommu\"}], \"processes\": [{\"name\": \"p\", \"capabilities\":"
                + " [\"CAP_SYS_RAWIO\"]}], \"steps\": [{\"step\": \"bind\", \"device\": \"0000:06:0d.0\"},"
                + " {\"step\": \"expect-error\", \"errno\": \"ENODEV\", \"try\": {\"step\": \"open\", \"process\":"
                + " \"p\", \"device\": \"0000:06:0d.0\", \"type\": \"TYPE1v2\"}}, {\"step\": \"open\","
                + " \"process\": \"p\", \"device\": \"0000:06:0d.0\", \"type\": \"NOIOMMU\"}]}");
        Run r = IommuctlTest.iommuctl("run", file.toString());
        Files.delete(file);
        assertThat(r.err()).isEmpty();
        assertThat(r.out()).contains("step 3: p:1000 opened /dev/vfio/noiommu-0 with VFIO_NOIOMMU_IOMMU(8)\n");
    }

    @Test
    void docsScenariosMdNamesEveryStepAndEveryField() throws IOException {
        String doc = Files.readString(Path.of("..", "docs", "scenarios.md"));
        for (Class<?> type : List.of(ScenarioFile.class, ScenarioFile.HostSpec.class, ScenarioFile.DeviceSpec.class,
                ScenarioFile.BridgeSpec.class, ScenarioFile.BackendSpec.class, ScenarioFile.ProcessSpec.class)) {
            for (var c : type.getRecordComponents()) {
                assertThat(doc).as(type.getSimpleName() + "." + c.getName()).contains("| `" + c.getName() + "` |");
            }
        }
        for (Class<?> step : ScenarioFile.Step.class.getPermittedSubclasses()) {
            String name = ScenarioFile.Step.NAMES.stream().filter(n -> n.replace("-", "").replace("_", "")
                    .equalsIgnoreCase(step == ScenarioFile.MapDma.class ? "map" : step.getSimpleName())).findFirst()
                    .orElseThrow();
            int row = doc.indexOf("| `" + name + "` |");
            assertThat(row).as(name).isPositive();
            String line = doc.substring(row, doc.indexOf('\n', row));
            for (var c : step.getRecordComponents()) {
                var json = c.getAccessor().getAnnotation(com.fasterxml.jackson.annotation.JsonProperty.class);
                String field = json != null && !json.value().isEmpty() ? json.value() : c.getName();
                assertThat(line).as(name + "." + field).contains("`" + field + "`");
            }
        }
    }

    @Test
    void theDocsCopyIsTheGeneratedSchema() throws IOException {
        assertThat(Files.readString(Path.of("..", "docs", "scenario.schema.json")))
                .isEqualTo(IommuctlTest.iommuctl("schema").out());
    }

    static Stream<String> version1() throws IOException {
        try (Stream<Path> s = Files.list(VERSION1)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList().stream();
        }
    }

    @ParameterizedTest
    @MethodSource("version1")
    void aVersion1FileRunsWithTheSameMeaningAsItsVersion2Form(String name) {
        Run v1 = IommuctlTest.iommuctl("run", VERSION1.resolve(name).toString());
        Run v2 = IommuctlTest.iommuctl("run", SCENARIOS.resolve(name).toString());
        assertThat(v1.code()).isZero();
        assertThat(v1.err()).isEmpty();
        assertThat(v1.out()).isEqualTo(v2.out());
    }
}
