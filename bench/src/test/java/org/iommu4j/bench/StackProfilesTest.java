package org.iommu4j.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Reads JMH's human-readable {@code -prof stack} output into per-benchmark hot frames. */
class StackProfilesTest {
    private static final List<String> LOG = List.of(
            "# JMH version: 1.37",
            "# Benchmark: org.iommu4j.bench.DmaApiBench.mapUnmap1",
            "# Parameters: (backend = direct)",
            "",
            "Secondary result \"org.iommu4j.bench.DmaApiBench.mapUnmap1:stack\":",
            "Stack profiler:",
            "",
            "....[Thread state distributions]....................................................................",
            " 66.5%         RUNNABLE",
            " 33.3%         TIMED_WAITING",
            "",
            "....[Thread state: RUNNABLE]........................................................................",
            " 33.3%  50.0% <stack is empty, everything is filtered?>",
            " 15.2%  25.0% org.iommu4j.kernel.dma.LiveMappings.take",
            "              org.iommu4j.kernel.dma.DmaApi.take",
            "",
            "  9.8%  15.0% org.iommu4j.bench.DmaApiBench.mapUnmap1",
            "              org.iommu4j.bench.jmh_generated.DmaApiBench_mapUnmap1_jmhTest.mapUnmap1_avgt_jmhStub",
            "",
            "  0.2%   0.3% <other>",
            "",
            "....[Thread state: TIMED_WAITING]...................................................................",
            " 33.3% 100.0% java.lang.Object.wait",
            "              java.lang.ref.ReferenceQueue.remove",
            "",
            "# Benchmark: org.iommu4j.backend.swiotlb.SwiotlbSlotBench.windowAllocateFree",
            "",
            "....[Thread state: RUNNABLE]........................................................................",
            " 90.0% 100.0% org.iommu4j.backend.swiotlb.Area.find",
            "              org.iommu4j.backend.swiotlb.Pool.allocate",
            "....[Thread state: WAITING].........................................................................",
            "# Benchmark: org.iommu4j.bench.SwiotlbBounceBench.roundTrip",
            "# Parameters: (direction = TO_DEVICE, nslabs = 32768, size = 64)",
            "....[Thread state: RUNNABLE]........................................................................",
            " 60.0% 100.0% java.lang.System.arraycopy(Native Method)",
            "              org.iommu4j.kernel.mem.SparseMemory.copy");

    @Test
    void eachRunnableSectionBelongsToTheBenchmarkAndParametersAboveIt() {
        StackProfiles p = new StackProfiles(LOG);

        assertThat(p.all()).containsOnlyKeys("DmaApiBench.mapUnmap1[backend=direct]",
                "SwiotlbSlotBench.windowAllocateFree", "SwiotlbBounceBench.roundTrip[direction=TO_DEVICE, size=64]");
        StackProfiles.Profile dma = p.profile("DmaApiBench.mapUnmap1[backend=direct]").orElseThrow();
        assertThat(dma.unattributed()).isEqualTo(50.0);
        // shares are of the samples that had a stack: 25 of 50 and 15 of 50; <other> and other states left out
        assertThat(dma.frames()).hasSize(2);
        assertThat(dma.frames().get(0).share()).isCloseTo(50.0, within(1e-9));
        assertThat(dma.frames().get(0).frames()).containsExactly("org.iommu4j.kernel.dma.LiveMappings.take",
                "org.iommu4j.kernel.dma.DmaApi.take");
        assertThat(dma.frames().get(0).describe()).isEqualTo("50.0% LiveMappings.take ← DmaApi.take");
        assertThat(dma.frames().get(1).share()).isCloseTo(30.0, within(1e-9));

        assertThat(p.profile("SwiotlbSlotBench.windowAllocateFree").orElseThrow().frames().get(0).describe())
                .isEqualTo("100.0% Area.find ← Pool.allocate");
        assertThat(p.profile("SwiotlbBounceBench.roundTrip[direction=TO_DEVICE, size=64]").orElseThrow()
                .frames().get(0).describe()).isEqualTo("100.0% System.arraycopy(Native Method) ← SparseMemory.copy");
        assertThat(p.profile("DmaApiBench.mapUnmap1[backend=noiommu]")).isEmpty();
    }

    private static String result(String benchmark, String backend, double score) {
        return "{\"benchmark\": \"org.iommu4j.bench." + benchmark + "\", \"params\": {\"backend\": \"" + backend
                + "\"}, \"primaryMetric\": {\"score\": " + score + ", \"scoreError\": 1.0, \"scoreUnit\": \"ns/op\"},"
                + " \"secondaryMetrics\": {\"gc.alloc.rate.norm\": {\"score\": 0.0}}}";
    }

    @Test
    void aMissedRowsBenchmarkIsListedForTheProfileRunAndItsHotFramesAreReported() throws Exception {
        String json = "[" + String.join(",", result("DmaApiBench.mapUnmap1", "direct", 80.0),
                result("DmaApiBench.emptyBaseline", "direct", 10.0), result("DmaApiBench.mapUnmap1", "noiommu", 15.0),
                result("DmaApiBench.emptyBaseline", "noiommu", 10.0)) + "]";
        Report report = new Report(new ObjectMapper().readTree(json), null);

        // direct: 8.0x against 2x, missed; noiommu: 1.5x, met; everything else is not in this run (missed, no key)
        assertThat(report.missedBenchmarks()).containsExactly("^org\\.iommu4j\\.bench\\.DmaApiBench\\.mapUnmap1$");
        assertThat("org.iommu4j.bench.DmaApiBench.mapUnmap1").matches(report.missedBenchmarks().get(0));

        String md = report.markdown(List.of("run: test"), "", new StackProfiles(LOG));
        assertThat(md).contains("## Where the missed rows' time goes")
                .contains("- **Row 1, DMA API map+unmap 4 KiB, dma-direct** (`DmaApiBench.mapUnmap1[backend=direct]`):"
                        + " 50.0% LiveMappings.take ← DmaApi.take; 30.0% DmaApiBench.mapUnmap1 ←"
                        + " DmaApiBench_mapUnmap1_jmhTest.mapUnmap1_avgt_jmhStub.\n")
                .doesNotContain("Row 1, DMA API map+unmap 4 KiB, noiommu**");
    }
}
