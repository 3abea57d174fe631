package org.iommu4j.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code iommuctl bench} in its short form: the table's shape, the bytes each backend copies, the plot. */
class BenchCommandTest {
    @TempDir
    Path dir;

    @Test
    void theShortBenchPrintsOneRowPerBackendDriverAndPacketSizeAndWritesThePlot() throws Exception {
        Path plot = dir.resolve("out/bench.png");
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();

        int code = Iommuctl.execute(new String[] {"bench", "--plot", plot.toString()}, new PrintWriter(out),
                new PrintWriter(err), false);

        assertThat(err.toString()).isEmpty();
        assertThat(code).isZero();
        List<String> lines = out.toString().lines().toList();
        assertThat(lines.get(0)).isEqualTo("iommu4j bench: the NIC 0000:06:0d.0 on the embedded host, packets both"
                + " ways (short run)");
        assertThat(lines.get(2).split("\\s{2,}")).containsExactly("backend", "path", "packet", "packets/s", "Gbit/s",
                "CPU bytes copied/packet", "pool", "page tables", "pinned", "isolated", "taint");
        List<String[]> rows = lines.subList(4, lines.size() - 2).stream().map(l -> l.split("\\s{2,}")).toList();
        // none, noiommu, swiotlb, swiotlb force, xen: two drivers, three sizes each
        assertThat(rows).hasSize(5 * 2 * 3);
        assertThat(rows).extracting(r -> r[0]).containsOnly("none (dma-direct)", "noiommu", "swiotlb",
                "swiotlb force", "xen");
        assertThat(rows.stream().filter(r -> r[0].equals("none (dma-direct)") && r[1].equals("VFIO")))
                .allSatisfy(r -> assertThat(r[3]).isEqualTo("skipped: no backend: VFIO needs an IOMMU driver"));
        // bouncing every DMA API mapping: a transmit copies the packet once, a receive in and back out
        assertThat(row(rows, "swiotlb force", "DMA API", "64 B")[5]).isEqualTo("96");
        assertThat(row(rows, "swiotlb force", "DMA API", "1500 B")[5]).isEqualTo("2250");
        assertThat(row(rows, "swiotlb force", "DMA API", "9000 B")[5]).isEqualTo("13500");
        // the SWIOTLB-IOMMU syncs each packet once and three descriptors of 16 bytes per packet on average
        assertThat(row(rows, "swiotlb", "VFIO SWIOTLB_IOMMU", "9000 B")[5]).isEqualTo("9032");
        assertThat(row(rows, "xen", "VFIO TYPE1v2_IOMMU", "1500 B")).containsSequence("0", "64 MiB", "24 KiB",
                "132 KiB", "yes", "-");
        assertThat(row(rows, "noiommu", "VFIO NOIOMMU_IOMMU", "1500 B")).endsWith("no", "U");
        for (String[] r : rows) {
            if (r.length > 5) {
                assertThat(Double.parseDouble(r[3])).as(String.join(" ", r)).isPositive();
            }
        }
        assertThat(lines.get(lines.size() - 1)).isEqualTo("plot: " + plot);
        byte[] png = Files.readAllBytes(plot);
        assertThat(Arrays.copyOf(png, 8)).containsExactly(0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n');
        assertThat(png.length).isGreaterThan(10_000);
    }

    private static String[] row(List<String[]> rows, String backend, String path, String size) {
        return rows.stream().filter(r -> r[0].equals(backend) && r[1].equals(path) && r[2].equals(size)).findFirst()
                .orElseThrow(() -> new AssertionError("no row " + backend + " / " + path + " / " + size));
    }
}
