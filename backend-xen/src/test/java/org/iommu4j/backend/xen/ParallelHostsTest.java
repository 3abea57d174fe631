package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.iommu4j.testsupport.DmaApiModel;
import org.iommu4j.testsupport.Seeded;
import org.iommu4j.testsupport.VfioModel;
import org.junit.jupiter.api.Test;

/**
 * Several hosts, each with swiotlb and xen loaded and its own hypervisor, running model sequences on four
 * threads at once: every sequence passes its model, and each does exactly what it does when run alone (the same
 * counts, the same bytes checked), so no state leaks from one host to another. Bounded: 16 sequences.
 */
class ParallelHostsTest {

    @Test
    void hostsRunningInParallelEachBehaveAsAlone() throws Exception {
        int n = 16;
        List<Long> seeds = new ArrayList<>();
        Random r = new Random(Seeded.count("iommu4j.parallel.seed", 15));
        for (int i = 0; i < n; i++) {
            seeds.add(r.nextLong());
        }
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<String>> parallel = new ArrayList<>();
            for (long seed : seeds) {
                parallel.add(pool.submit(() -> fingerprint(seed)));
            }
            for (int i = 0; i < n; i++) {
                String alone = fingerprint(seeds.get(i));
                assertThat(parallel.get(i).get(60, TimeUnit.SECONDS)).as("seed 0x%x", seeds.get(i))
                        .isEqualTo(alone);
            }
        } finally {
            pool.shutdownNow();
            assertThat(pool.awaitTermination(10, TimeUnit.SECONDS)).isTrue();
        }
    }

    /** Runs one DMA-API and one VFIO sequence on fresh hosts; says what they did. */
    private static String fingerprint(long seed) {
        StringBuilder out = new StringBuilder();
        Seeded.run(seed, s -> {
            Random r = new Random(s);
            DmaApiModel dma = XenModelTest.run(r::nextInt, 300, r.nextBoolean(), r.nextLong());
            for (DmaApiModel.Count k : DmaApiModel.Count.values()) {
                out.append(k).append('=').append(dma.count(k)).append(' ');
            }
            VfioModel vfio = XenModelTest.runVfio(r::nextInt, 300);
            for (VfioModel.Count k : VfioModel.Count.values()) {
                out.append(k).append('=').append(vfio.count(k)).append(' ');
            }
            out.append("checked=").append(vfio.checkedBytes());
        });
        return out.toString();
    }
}
