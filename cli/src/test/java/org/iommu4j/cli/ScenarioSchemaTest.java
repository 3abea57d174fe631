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
    void everyExampleValidatesAgainstTheSchemaAndRunsAsWritten(Path example) throws IOException {
        List<Error> errors = schema().validate(Files.readString(example), InputFormat.JSON);
        assertThat(errors).as(example.toString()).isEmpty();
        Run r = IommuctlTest.iommuctl("run", example.toString());
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
                ScenarioFile.BackendSpec.class, ScenarioFile.ProcessSpec.class)) {
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
