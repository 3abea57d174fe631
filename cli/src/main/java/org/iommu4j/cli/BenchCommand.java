package org.iommu4j.cli;

import java.awt.Color;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.category.DefaultCategoryDataset;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code iommuctl bench}: is swiotlb for VFIO worth it? A NIC model streams packets through every backend. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"Stream 64 B, 1500 B and 9000 B packets both ways between a NIC model and its driver"
                + " (a descriptor ring, per-packet buffers) through the DMA API and through VFIO, under every backend"
                + " found, and print packets/s, Gbit/s, the bytes the CPU copied per packet, the memory set aside,"
                + " isolation and taint; write a plot of throughput by packet size and backend.",
                "Backends that need an opt-in parameter get it: they give no isolation and taint the kernel, which"
                        + " the table shows. Figures are the model's speed on this JVM, not a NIC's."})
final class BenchCommand implements Callable<Integer> {
    @Mixin
    GlobalOptions global;

    @Option(names = "--long", description = "move 100 000 packets per size instead of 4 000")
    boolean longRun;

    @Option(names = "--plot", paramLabel = "FILE", description = "where to write the plot (PNG; default:"
            + " ${DEFAULT-VALUE})", defaultValue = "iommuctl-bench.png")
    Path plot;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        NicBench bench = new NicBench(global.loader(), longRun ? 100_000 : 4_000);
        List<NicBench.Result> results = new ArrayList<>();
        List<NicBench.Variant> variants = bench.variants();
        bench.run(variants.get(0)); // a pass the JIT compiles in, thrown away: the first backend is not penalised
        for (NicBench.Variant v : variants) {
            results.addAll(bench.run(v));
        }
        writePlot(results, plot);
        var out = spec.commandLine().getOut();
        if (global.json) {
            out.println(Json.write(results));
        } else {
            out.println("iommu4j bench: the NIC " + EmbeddedHost.NIC + " on the embedded host, packets both ways ("
                    + (longRun ? "long" : "short") + " run)");
            out.println();
            Table table = new Table("backend", "path", "packet", "packets/s", "Gbit/s", "CPU bytes copied/packet",
                    "pool", "page tables", "pinned", "isolated", "taint");
            for (NicBench.Result r : results) {
                if (r.status().equals("ok")) {
                    table.row(r.backend(), r.path(), r.packetSize() + " B",
                            String.format(Locale.ROOT, "%.0f", r.packetsPerSecond()),
                            String.format(Locale.ROOT, "%.2f", r.gbitPerSecond()),
                            String.format(Locale.ROOT, "%.0f", r.copiedPerPacket()), kib(r.poolBytes()),
                            kib(r.pageTableBytes()), kib(r.pinnedBytes()), r.isolated() ? "yes" : "no", r.taint());
                } else {
                    table.row(r.backend(), r.path(), r.packetSize() + " B", r.status() + ": "
                            + Iommuctl.oneLine(r.reason()), "", "", "", "", "", "", r.taint());
                }
            }
            out.print(table);
            out.println();
            out.println("plot: " + plot);
        }
        out.flush();
        boolean failed = results.stream().anyMatch(r -> r.status().equals("failed"));
        if (failed) {
            var err = spec.commandLine().getErr();
            results.stream().filter(r -> r.status().equals("failed")).forEach(r -> err.println(spec.qualifiedName()
                    + ": " + r.backend() + " " + r.path() + " " + r.packetSize() + " B failed: "
                    + Iommuctl.oneLine(r.reason())));
            err.flush();
        }
        return failed ? 1 : 0;
    }

    private static String kib(long bytes) {
        return bytes == 0 ? "0" : bytes >= (1 << 20) && bytes % (1 << 20) == 0 ? (bytes >> 20) + " MiB"
                : (bytes + 1023) / 1024 + " KiB";
    }

    /** Draws Gbit/s by packet size, one bar per backend and path, with JFreeChart, headless. */
    static void writePlot(List<NicBench.Result> results, Path file) {
        if (System.getProperty("java.awt.headless") == null) {
            System.setProperty("java.awt.headless", "true");
        }
        DefaultCategoryDataset data = new DefaultCategoryDataset();
        for (NicBench.Result r : results) {
            if (r.status().equals("ok")) {
                data.addValue(r.gbitPerSecond(), r.backend() + ", " + r.path(), r.packetSize() + " B");
            }
        }
        JFreeChart chart = ChartFactory.createBarChart("NIC model throughput by backend (iommu4j, simulated)",
                "packet size", "Gbit/s (both directions)", data, PlotOrientation.VERTICAL, true, false, false);
        chart.setBackgroundPaint(Color.WHITE);
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                java.nio.file.Files.createDirectories(parent);
            }
            ChartUtils.saveChartAsPNG(file.toFile(), chart, 1100, 600);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the plot to " + file + ": " + e.getMessage(), e);
        }
    }
}
