package org.iommu4j.bench;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.Collection;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Runs every benchmark method once (in this JVM, no warm-up, one single-shot iteration, small pools and few live
 * mappings) and builds the report from what it measured: every benchmark still runs, and every row of the table
 * finds its figures.
 */
class BenchSmokeTest {
    @TempDir
    Path dir;

    @Test
    void everyBenchmarkRunsOnceAndEveryRowOfTheReportFindsItsFigures() throws Exception {
        Path json = dir.resolve("smoke.json");
        Options opts = new OptionsBuilder()
                .include("org\\.iommu4j\\..*")
                .forks(0)
                .mode(Mode.SingleShotTime)
                .warmupIterations(0)
                .measurementIterations(1)
                .measurementBatchSize(1)
                .param("nslabs", "512")
                .param("live", "10", "100")
                .resultFormat(ResultFormatType.JSON)
                .result(json.toString())
                .shouldFailOnError(true)
                .verbosity(org.openjdk.jmh.runner.options.VerboseMode.SILENT)
                .build();
        Collection<RunResult> results = new Runner(opts).run();

        // DmaApi 3x2, bounce 3x8, slots 3, scaling 2x2, xen 3, type1 2, device 4x2, spin 2, iommu-dma 3
        assertThat(results).hasSize(6 + 24 + 3 + 4 + 3 + 2 + 8 + 2 + 3);
        assertThat(results).allSatisfy(r -> assertThat(r.getPrimaryResult().getScore()).isPositive());

        ObjectMapper mapper = new ObjectMapper();
        JsonNode memory = mapper.valueToTree(MemoryProbe.probe(64L << 30, 4L << 20));
        assertThat(memory.get("writtenBytes").asLong()).isEqualTo(4L << 20);
        assertThat(memory.get("residentBytes").asLong()).isGreaterThanOrEqualTo(4L << 20);

        Report report = new Report(mapper.readTree(json.toFile()), memory);
        List<Report.Row> rows = report.rows();
        assertThat(rows).extracting(Report.Row::row).containsSubsequence("1", "2", "3", "4", "5", "6", "7", "9", "8");
        assertThat(rows)
                .allSatisfy(r -> assertThat(r.measured()).isNotEqualTo("not measured"));
        assertThat(rows).filteredOn(r -> r.row().equals("2")).hasSize(8)
                .allSatisfy(r -> assertThat(r.note()).startsWith("hot-copy ratio "));
        assertThat(rows).filteredOn(r -> r.row().equals("7")).extracting(Report.Row::met).hasSize(4)
                .satisfiesExactly(m -> assertThat(m).isNotNull(), m -> assertThat(m).isNotNull(),
                        m -> assertThat(m).isNull(), m -> assertThat(m).isNull());
        assertThat(rows).filteredOn(r -> r.met() != null).extracting(Report.Row::verdict)
                .allSatisfy(v -> assertThat(v).isIn("met", "MISSED"));
        String md = report.markdown(List.of("run: smoke"), "");
        assertThat(md).contains("| # | path | score ± error | alloc | baseline (same run) | ratio | target | verdict |"
                + " note |").contains("| 6 | VFIO type1 mapDma+unmapDma 4 KiB, 100 live |");
        assertThat(md.lines().filter(l -> l.startsWith("| ")).count()).isEqualTo(rows.size() + 1);
    }
}
