package org.iommu4j.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Turns one run's JMH results ({@code -rf json}, with {@code -prof gc}) and the memory probe's figures into the
 * issue's rows: each with its score ± error, its baseline from the same run, the ratio, the target and met/missed,
 * and the allocation per operation. Multi-thread rows are judged by their 2-thread/1-thread throughput ratio
 * relative to the spin control's in the same run.
 */
public final class Report {
    private static final String PKG = "org.iommu4j.bench.";
    private static final String SWIOTLB_PKG = "org.iommu4j.backend.swiotlb.";
    private final Map<String, JsonNode> results = new LinkedHashMap<>();
    private final Map<String, String> fullNames = new LinkedHashMap<>();
    private final JsonNode memory;
    private final List<Row> rows = new ArrayList<>();

    /**
     * One line of the table.
     *
     * @param row the row number
     * @param path what is measured
     * @param measured score ± error and unit
     * @param allocation bytes allocated per operation, or "-"
     * @param baseline the baseline and its score
     * @param ratio the figure the target is about
     * @param target the target
     * @param met whether the target is met; null for a row that only informs
     * @param note what else the run says
     * @param benchmark the key of the benchmark measured, or null for a row that is not a JMH figure
     */
    public record Row(String row, String path, String measured, String allocation, String baseline, String ratio,
            String target, Boolean met, String note, String benchmark) {
        /**
         * A row that is not one JMH benchmark's figure.
         *
         * @param row the row number
         * @param path what is measured
         * @param measured score ± error and unit
         * @param allocation bytes allocated per operation, or "-"
         * @param baseline the baseline and its score
         * @param ratio the figure the target is about
         * @param target the target
         * @param met whether the target is met; null for a row that only informs
         * @param note what else the run says
         */
        public Row(String row, String path, String measured, String allocation, String baseline, String ratio,
                String target, Boolean met, String note) {
            this(row, path, measured, allocation, baseline, ratio, target, met, note, null);
        }

        /** @return "met", "MISSED" or "-" */
        public String verdict() {
            return met == null ? "-" : met ? "met" : "MISSED";
        }
    }

    /**
     * @param jmh the JMH results (an array)
     * @param memory the probe's figures, or null when it did not run
     */
    public Report(JsonNode jmh, JsonNode memory) {
        for (JsonNode r : jmh) {
            String key = key(r.get("benchmark").asText(), r.get("params"));
            results.put(key, r);
            fullNames.put(key, r.get("benchmark").asText());
        }
        this.memory = memory;
        build();
    }

    /** A benchmark's name without its package (the swiotlb module's own benchmarks keep their class name). */
    static String shortName(String benchmark) {
        return benchmark.startsWith(PKG) ? benchmark.substring(PKG.length())
                : benchmark.replace(SWIOTLB_PKG, "");
    }

    private static String key(String benchmark, JsonNode params) {
        StringBuilder sb = new StringBuilder(shortName(benchmark));
        if (params != null) {
            Iterator<Map.Entry<String, JsonNode>> it = params.fields();
            List<String> parts = new ArrayList<>();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getKey().equals("nslabs")) {
                    parts.add(e.getKey() + "=" + e.getValue().asText());
                }
            }
            parts.sort(null);
            if (!parts.isEmpty()) {
                sb.append(parts);
            }
        }
        return sb.toString();
    }

    /** @return the rows, in the order */
    public List<Row> rows() {
        return rows;
    }

    private Optional<JsonNode> find(String key) {
        return Optional.ofNullable(results.get(key));
    }

    private static double score(JsonNode r) {
        return r.get("primaryMetric").get("score").asDouble();
    }

    private static String measured(JsonNode r) {
        JsonNode p = r.get("primaryMetric");
        double err = p.get("scoreError").asDouble();
        return String.format(Locale.ROOT, "%.1f ± %s %s", p.get("score").asDouble(),
                Double.isNaN(err) ? "?" : String.format(Locale.ROOT, "%.1f", err), p.get("scoreUnit").asText());
    }

    /** @return B/op from {@code -prof gc}, or NaN when the run had no profiler */
    static double allocation(JsonNode r) {
        JsonNode sec = r.get("secondaryMetrics");
        if (sec != null) {
            Iterator<Map.Entry<String, JsonNode>> it = sec.fields();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                if (e.getKey().endsWith("gc.alloc.rate.norm")) {
                    return e.getValue().get("score").asDouble();
                }
            }
        }
        return Double.NaN;
    }

    private static String alloc(JsonNode r) {
        double a = allocation(r);
        return Double.isNaN(a) ? "-" : String.format(Locale.ROOT, "%.0f B/op", a);
    }

    private static String fmt(double x) {
        return String.format(Locale.ROOT, "%.2f", x);
    }

    private void missing(String row, String path, String what) {
        rows.add(new Row(row, path, "not measured", "-", "-", "-", "-", false, what + " is not in this run's results"));
    }

    /** A single-thread row: measured / baseline against a ratio limit. */
    private void ratioRow(String row, String path, String measuredKey, String baselineKey, double limit,
            double allocLimit, String extra) {
        Optional<JsonNode> m = find(measuredKey);
        Optional<JsonNode> b = find(baselineKey);
        if (m.isEmpty() || b.isEmpty()) {
            missing(row, path, m.isEmpty() ? measuredKey : baselineKey);
            return;
        }
        double ratio = score(m.get()) / score(b.get());
        double a = allocation(m.get());
        boolean allocOk = allocLimit < 0 || Double.isNaN(a) || a <= allocLimit;
        String target = "≤ " + fmt(limit) + "×" + (allocLimit < 0 ? "" : allocLimit < 1 ? ", 0 B/op"
                : ", ≤ " + (int) allocLimit + " B/op");
        rows.add(new Row(row, path, measured(m.get()), alloc(m.get()), baselineKey + ": "
                + String.format(Locale.ROOT, "%.1f ns", score(b.get())), fmt(ratio) + "×", target,
                ratio <= limit && allocOk, extra == null ? "" : extra, measuredKey));
    }

    /** The spin control's 2-thread/1-thread throughput ratio, or NaN. */
    private double controlScaling() {
        Optional<JsonNode> s1 = find("SpinControl.spin1");
        Optional<JsonNode> s2 = find("SpinControl.spin2");
        return s1.isPresent() && s2.isPresent() ? 2 * score(s1.get()) / score(s2.get()) : Double.NaN;
    }

    /** A 2-thread row: (2 × t1 / t2) relative to the control's. */
    private double scalingRow(String row, String path, String oneKey, String twoKey, Double limit, String extra) {
        Optional<JsonNode> one = find(oneKey);
        Optional<JsonNode> two = find(twoKey);
        double control = controlScaling();
        if (one.isEmpty() || two.isEmpty() || Double.isNaN(control)) {
            missing(row, path, one.isEmpty() ? oneKey : two.isEmpty() ? twoKey : "SpinControl");
            return Double.NaN;
        }
        double scaling = 2 * score(one.get()) / score(two.get());
        double relative = scaling / control;
        rows.add(new Row(row, path, measured(two.get()) + " per thread", alloc(two.get()),
                "1 thread " + String.format(Locale.ROOT, "%.1f ns", score(one.get())) + "; spin control x"
                        + fmt(control), fmt(relative) + " of control (x" + fmt(scaling) + ")",
                limit == null ? "-" : "≥ " + fmt(limit) + " of control", limit == null ? null : relative >= limit,
                extra == null ? "" : extra, twoKey));
        return relative;
    }

    private void build() {
        for (String b : List.of("direct", "noiommu")) {
            ratioRow("1", "DMA API map+unmap 4 KiB, " + (b.equals("direct") ? "dma-direct" : "noiommu"),
                    "DmaApiBench.mapUnmap1[backend=" + b + "]", "DmaApiBench.emptyBaseline[backend=" + b + "]", 2.0,
                    0.5, null);
            scalingRow("1", "DMA API map+unmap 4 KiB, " + b + ", 2 threads",
                    "DmaApiBench.mapUnmap1[backend=" + b + "]", "DmaApiBench.mapUnmap2[backend=" + b + "]", 0.9, null);
        }
        for (String dir : List.of("TO_DEVICE", "FROM_DEVICE")) {
            for (int size : new int[] {64, 4096, 65536, 262144}) {
                String p = "[direction=" + dir + ", size=" + size + "]";
                double limit = size <= 64 ? 3.0 : size < 65536 ? 1.3 : 1.1;
                Optional<JsonNode> hot = find("SwiotlbBounceBench.hotCopies" + p);
                Optional<JsonNode> rt = find("SwiotlbBounceBench.roundTrip" + p);
                Optional<JsonNode> cold = find("SwiotlbBounceBench.poolCopies" + p);
                String extra = hot.isPresent() && rt.isPresent() && cold.isPresent()
                        ? "hot-copy ratio " + fmt(score(rt.get()) / score(hot.get())) + "× (hot copies "
                                + String.format(Locale.ROOT, "%.1f ns", score(hot.get())) + "; the pool's cold"
                                + " memory costs " + fmt(score(cold.get()) / score(hot.get())) + "× a hot copy)"
                        : null;
                ratioRow("2", "swiotlb round trip (force), " + dir + " " + size(size),
                        "SwiotlbBounceBench.roundTrip" + p, "SwiotlbBounceBench.poolCopies" + p, limit, -1, extra);
            }
        }
        Optional<JsonNode> window = find("SwiotlbSlotBench.windowAllocateFree");
        if (window.isPresent()) {
            double ns = score(window.get());
            rows.add(new Row("3", "swiotlb slot allocate+free (search and release, no copy)",
                    measured(window.get()), alloc(window.get()), "-", String.format(Locale.ROOT, "%.1f ns", ns),
                    "≤ 40 ns, the kernel's slot (property test)", ns <= 40, "",
                    "SwiotlbSlotBench.windowAllocateFree"));
        } else {
            missing("3", "swiotlb slot allocate+free", "SwiotlbSlotBench.windowAllocateFree");
        }
        for (String k : List.of("poolMapUnmap1B", "dmaApiMapUnmap1B")) {
            find("SwiotlbSlotBench." + k).ifPresent(r -> rows.add(new Row("3", k.startsWith("pool")
                    ? "  the same with a 1-byte copy, pool.map/unmap" : "  the same through the DMA API",
                    measured(r), alloc(r), "-", "-", "-", null, "for comparison")));
        }
        double areas1 = scalingRow("4", "swiotlb 4 KiB, areas=1, 2 threads", "SwiotlbScalingBench.mapUnmap1[nareas=1]",
                "SwiotlbScalingBench.mapUnmap2[nareas=1]", null, "one lock for both threads");
        double areas2 = scalingRow("4", "swiotlb 4 KiB, areas=2, 2 threads", "SwiotlbScalingBench.mapUnmap1[nareas=2]",
                "SwiotlbScalingBench.mapUnmap2[nareas=2]", 0.9, null);
        if (!Double.isNaN(areas1) && !Double.isNaN(areas2)) {
            rows.add(new Row("4", "areas=1 visibly worse than areas=2", "-", "-", "-",
                    fmt(areas1) + " vs " + fmt(areas2), "areas=1 at least 0.1 below areas=2", areas1 <= areas2 - 0.1,
                    ""));
        }
        ratioRow("5", "xen map+unmap, machine-contiguous 4 KiB", "XenBench.xenMapUnmap1", "XenBench.directMapUnmap1",
                1.5, -1, null);
        scalingRow("5", "xen map+unmap 4 KiB, 2 threads (two NICs)", "XenBench.xenMapUnmap1", "XenBench.xenMapUnmap2",
                0.9, "no lock all devices share: the 2-thread figure shows it");
        int most = results.keySet().stream().filter(k -> k.startsWith("Type1Bench.mapUnmap[live="))
                .mapToInt(k -> Integer.parseInt(k.substring(25, k.length() - 1))).max().orElse(100000);
        ratioRow("6", "VFIO type1 mapDma+unmapDma 4 KiB, " + String.format(Locale.ROOT, "%,d", most).replace(',', ' ')
                + " live", "Type1Bench.mapUnmap[live=" + most + "]", "Type1Bench.mapUnmap[live=10]", 1.3, 200, null);
        for (String op : List.of("Read", "Write")) {
            ratioRow("7", "device DMA " + op.toLowerCase(Locale.ROOT) + " 4 KiB through type1 (VT-d-like IOMMU)",
                    "DeviceDmaBench.device" + op + "[platform=vtd]", "DeviceDmaBench.raw" + op + "[platform=vtd]", 1.3,
                    -1, null);
        }
        for (String op : List.of("Read", "Write")) {
            Optional<JsonNode> m = find("DeviceDmaBench.device" + op + "[platform=xen]");
            Optional<JsonNode> b = find("DeviceDmaBench.raw" + op + "[platform=xen]");
            if (m.isPresent() && b.isPresent()) {
                rows.add(new Row("7", "  the same in a Xen guest, " + op.toLowerCase(Locale.ROOT), measured(m.get()),
                        alloc(m.get()), "DeviceDmaBench.raw" + op + "[platform=xen]: "
                                + String.format(Locale.ROOT, "%.1f ns", score(b.get())),
                        fmt(score(m.get()) / score(b.get())) + "×", "-", null,
                        "for comparison: two stages, the guest's IOMMU context in the hypervisor, then machine"
                                + " frames; raw is the guest's pseudo-physical memory"));
            }
        }
        iommuDmaRows();
        memoryRows();
    }

    private void iommuDmaRows() {
        if (results.keySet().stream().noneMatch(k -> k.startsWith("IommuDmaBench."))) {
            rows.add(new Row("9", "iommu-dma map+unmap 4 KiB", "not measured", "-", "-", "-", "≤ 3× dma-direct, 0 B/op",
                    null, "iommu-dma had not landed on main when this suite was last merged"));
            return;
        }
        ratioRow("9", "iommu-dma map+unmap 4 KiB", "IommuDmaBench.mapUnmap1", "IommuDmaBench.directMapUnmap1", 3.0,
                0.5, null);
        scalingRow("9", "iommu-dma map+unmap 4 KiB, 2 threads", "IommuDmaBench.mapUnmap1", "IommuDmaBench.mapUnmap2",
                0.9, null);
    }

    private void memoryRows() {
        if (memory == null) {
            missing("8", "memory: 64 GiB host, 1 GiB written", "the memory probe");
            return;
        }
        long written = memory.get("writtenBytes").asLong();
        long heap = memory.get("heapBytes").asLong() + Math.max(0, memory.get("offHeapBytes").asLong());
        double limit = 1.05 * written + (16 << 20);
        String gc = memory.get("collectors").toString();
        rows.add(new Row("8", "memory: 64 GiB host, " + mib(written) + " written", mib(heap) + " heap+off-heap", "-",
                "written " + mib(written), fmt((double) heap / written) + "× written",
                "≤ 1.05 × written + 16 MiB (" + mib((long) limit) + ")", heap <= limit, "collector " + gc));
        long idle = memory.get("idleHeapBytes").asLong();
        rows.add(new Row("8", "memory: idle 64 GiB host", String.format(Locale.ROOT, "%.0f KiB", idle / 1024.0), "-",
                "-", String.format(Locale.ROOT, "%.0f KiB", idle / 1024.0), "≤ 1 MiB", idle <= (1 << 20), ""));
        double ms = memory.get("buildMillis").asDouble();
        rows.add(new Row("8", "memory: 64 GiB host built", String.format(Locale.ROOT, "%.1f ms", ms), "-", "-",
                String.format(Locale.ROOT, "%.1f ms", ms), "≤ 20 ms", ms <= 20, "cold JVM: the median of three"));
    }

    private static String mib(long bytes) {
        return String.format(Locale.ROOT, "%.1f MiB", bytes / 1048576.0);
    }

    private static String size(int bytes) {
        return bytes >= 1024 ? bytes / 1024 + " KiB" : bytes + " B";
    }

    /**
     * @param header lines put above the table (the machine, its load, the settings)
     * @param notes Markdown appended below the table (why rows missed, in numbers)
     * @return the Markdown page
     */
    public String markdown(List<String> header, String notes) {
        return markdown(header, notes, null);
    }

    /**
     * The JMH include patterns of the benchmarks behind the missed rows, for a second run with
     * {@code -prof stack}: each an exact method name (all its parameter sets run).
     *
     * @return anchored regular expressions, one per benchmark method, in row order
     */
    public List<String> missedBenchmarks() {
        List<String> out = new ArrayList<>();
        for (Row r : rows) {
            if (Boolean.FALSE.equals(r.met()) && r.benchmark() != null && fullNames.containsKey(r.benchmark())) {
                String pattern = "^" + fullNames.get(r.benchmark()).replace(".", "\\.") + "$";
                if (!out.contains(pattern)) {
                    out.add(pattern);
                }
            }
        }
        return out;
    }

    /**
     * @param header lines put above the table (the machine, its load, the settings)
     * @param notes Markdown appended below the table (why rows missed, in numbers)
     * @param profiles the stack profiles of a {@code -prof stack} run of the missed rows' benchmarks, or null
     * @return the Markdown page
     */
    public String markdown(List<String> header, String notes, StackProfiles profiles) {
        StringBuilder sb = new StringBuilder("# Benchmark results\n\n");
        header.forEach(h -> sb.append(h).append("\n"));
        sb.append("\n| # | path | score ± error | alloc | baseline (same run) | ratio | target | verdict | note |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|\n");
        for (Row r : rows) {
            sb.append("| ").append(String.join(" | ", r.row(), r.path(), r.measured(), r.allocation(), r.baseline(),
                    r.ratio(), r.target(), r.verdict(), r.note())).append(" |\n");
        }
        long met = rows.stream().filter(r -> Boolean.TRUE.equals(r.met())).count();
        long missed = rows.stream().filter(r -> Boolean.FALSE.equals(r.met())).count();
        sb.append("\n").append(met).append(" rows met their target, ").append(missed).append(" missed.\n");
        if (profiles != null) {
            profileSection(sb, profiles);
        }
        if (notes != null && !notes.isBlank()) {
            sb.append("\n").append(notes.strip()).append("\n");
        }
        return sb.toString();
    }

    /** Where the missed rows' time goes: the hottest frames of each one's benchmark, from the stack profiler. */
    private void profileSection(StringBuilder sb, StackProfiles profiles) {
        sb.append("\n## Where the missed rows' time goes (JMH `-prof stack`, this commit)\n\n");
        sb.append("A second, shorter run of each missed row's benchmark with JMH's stack sampler (safepoint-biased:"
                + " read shares as indicative). Shares are of the measured threads' RUNNABLE samples that had a"
                + " stack; a frame's callers follow its arrow.\n\n");
        List<String> seen = new ArrayList<>();
        for (Row r : rows) {
            if (!Boolean.FALSE.equals(r.met()) || r.benchmark() == null || seen.contains(r.benchmark())) {
                continue;
            }
            seen.add(r.benchmark());
            Optional<StackProfiles.Profile> p = profiles.profile(r.benchmark());
            sb.append("- **Row ").append(r.row()).append(", ").append(r.path()).append("** (`")
                    .append(r.benchmark()).append("`): ");
            if (p.isEmpty() || p.get().frames().isEmpty()) {
                sb.append("no profile in this run.\n");
                continue;
            }
            List<String> top = new ArrayList<>();
            for (StackProfiles.Frame f : p.get().frames().subList(0, Math.min(5, p.get().frames().size()))) {
                top.add(f.describe());
            }
            sb.append(String.join("; ", top)).append(".\n");
        }
    }

    /**
     * @param mapper the mapper
     * @return the rows as JSON
     */
    public ArrayNode json(ObjectMapper mapper) {
        ArrayNode out = mapper.createArrayNode();
        for (Row r : rows) {
            ObjectNode o = out.addObject();
            o.put("row", r.row());
            o.put("path", r.path());
            o.put("measured", r.measured());
            o.put("allocation", r.allocation());
            o.put("baseline", r.baseline());
            o.put("ratio", r.ratio());
            o.put("target", r.target());
            o.put("verdict", r.verdict());
            o.put("note", r.note());
        }
        return out;
    }

    /**
     * @param args the JMH JSON, the memory probe's JSON, RESULTS.md, results.json, a file of header lines,
     *     optionally a Markdown file of notes to append and the log of a {@code -prof stack} run; or
     *     {@code --missed}, the JMH JSON, the memory probe's JSON and a file to write the missed rows' benchmark
     *     patterns to, one per line
     * @throws IOException if a file cannot be read or written
     */
    public static void main(String[] args) throws IOException {
        ObjectMapper mapper = new ObjectMapper();
        if (args.length == 4 && args[0].equals("--missed")) {
            Path mem = Path.of(args[2]);
            Report report = new Report(mapper.readTree(Path.of(args[1]).toFile()),
                    Files.exists(mem) ? mapper.readTree(mem.toFile()) : null);
            Files.write(Path.of(args[3]), report.missedBenchmarks(), StandardCharsets.UTF_8);
            return;
        }
        JsonNode jmh = mapper.readTree(Path.of(args[0]).toFile());
        Path mem = Path.of(args[1]);
        Report report = new Report(jmh, Files.exists(mem) ? mapper.readTree(mem.toFile()) : null);
        Path stackLog = args.length > 6 ? Path.of(args[6]) : null;
        StackProfiles profiles = stackLog != null && Files.exists(stackLog)
                ? new StackProfiles(Files.readAllLines(stackLog, StandardCharsets.UTF_8)) : null;
        List<String> header = Files.readAllLines(Path.of(args[4]), StandardCharsets.UTF_8);
        String notes = args.length > 5 && Files.exists(Path.of(args[5])) ? Files.readString(Path.of(args[5])) : "";
        Files.writeString(Path.of(args[2]), report.markdown(header, notes, profiles), StandardCharsets.UTF_8);
        ObjectNode root = mapper.createObjectNode();
        ArrayNode h = root.putArray("run");
        header.forEach(h::add);
        root.set("rows", report.json(mapper));
        root.set("jmh", jmh);
        root.set("memory", Files.exists(mem) ? mapper.readTree(mem.toFile()) : null);
        mapper.writerWithDefaultPrettyPrinter().writeValue(Path.of(args[3]).toFile(), root);
    }
}
