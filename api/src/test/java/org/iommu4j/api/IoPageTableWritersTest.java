package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.iommu4j.testsupport.Racing;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Several threads map and unmap through one table at once, each on pages of its own that share leaf tables and
 * directories with the others' (blocks of four pages dealt round robin, across a 2 MiB and a 1 GiB boundary), and
 * each also maps and unmaps whole 2 MiB of its own in the same 1 GiB directory, so that leaf tables are allocated
 * and freed under the others. Every thread checks its own pages after every step; at the end the counters and
 * every page must say exactly what the threads' own records say. Seeded: a failure names its seed.
 */
class IoPageTableWritersTest {
    private static final int THREADS = 4;
    private static final int STEPS = 4_000;
    private static final long PAGE = PhysicalMemory.PAGE_SIZE;
    private static final int BLOCK_PAGES = 4;
    private static final int BLOCKS = 64;
    /** The shared region: 32 blocks below a 1 GiB boundary (and a 2 MiB one), 32 above. */
    private static final long SHARED = (1L << 30) - (BLOCKS / 2L) * BLOCK_PAGES * PAGE;
    /** Each thread's own 2 MiB, in the 1 GiB directory above the boundary. */
    private static final long OWN = (1L << 30) + (8L << 21);

    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void writersOnPagesOfTheirOwnNeverDisturbEachOtherAndTheCountersStayExact() {
        Seeded.forEach("IoPageTableWritersTest.writers", Seeded.count("iommu4j.test.writers", 4), random -> {
            IoPageTable table = new IoPageTable();
            List<Map<Long, Long>> records = new ArrayList<>();
            for (int t = 0; t < THREADS; t++) {
                records.add(new HashMap<>());
            }
            Racing.run(THREADS, random, (id, r) -> write(table, id, r, records.get(id)));
            Map<Long, Long> all = new HashMap<>();
            records.forEach(all::putAll);
            assertThat(table.mappedPages()).isEqualTo(all.size());
            assertThat(table.leafCount(PAGE)).isEqualTo(all.size());
            for (int b = 0; b < BLOCKS; b++) {
                for (int p = 0; p < BLOCK_PAGES; p++) {
                    long iova = SHARED + ((long) b * BLOCK_PAGES + p) * PAGE;
                    assertThat(table.lookup(iova + 8, 0)).as("0x%x", iova)
                            .isEqualTo(all.containsKey(iova) ? all.get(iova) + 8 : IommuDomain.FAULT_NOT_MAPPED);
                }
            }
            for (int t = 0; t < THREADS; t++) {
                long own = OWN + ((long) t << 21);
                assertThat(table.lookup(own, 0)).isEqualTo(all.containsKey(own) ? all.get(own)
                        : IommuDomain.FAULT_NOT_MAPPED);
            }
        });
    }

    /** One thread's steps on its blocks (those with {@code b % THREADS == id}) and its own 2 MiB. */
    private static void write(IoPageTable table, int id, Random random, Map<Long, Long> mine) {
        long own = OWN + ((long) id << 21);
        boolean ownMapped = false;
        for (int step = 0; step < STEPS; step++) {
            if (random.nextInt(8) == 0) {
                long phys = ((long) id << 32) + (2L << 21);
                if (ownMapped) {
                    assertThat(table.unmap(own, 1L << 21)).isEqualTo(1L << 21);
                    for (long p = 0; p < 512; p++) {
                        mine.remove(own + p * PAGE);
                    }
                } else {
                    table.map(own, phys, 1L << 21, IommuProt.READ); // 512 leaves in one leaf table
                    for (long p = 0; p < 512; p++) {
                        mine.put(own + p * PAGE, phys + p * PAGE);
                    }
                }
                ownMapped = !ownMapped;
                assertThat(table.lookup(own + 0x1234, IommuProt.READ))
                        .isEqualTo(ownMapped ? phys + 0x1234 : IommuDomain.FAULT_NOT_MAPPED);
                continue;
            }
            int block = id + THREADS * random.nextInt(BLOCKS / THREADS);
            int first = random.nextInt(BLOCK_PAGES);
            int pages = 1 + random.nextInt(BLOCK_PAGES - first);
            long iova = SHARED + ((long) block * BLOCK_PAGES + first) * PAGE;
            long size = pages * PAGE;
            int before = 0;
            for (int p = 0; p < pages; p++) {
                before += mine.containsKey(iova + p * PAGE) ? 1 : 0;
            }
            if (before == 0 && random.nextBoolean()) {
                long phys = ((long) id << 32) + (random.nextInt(1 << 16) * PAGE);
                table.map(iova, phys, size, IommuProt.READ | IommuProt.WRITE);
                for (int p = 0; p < pages; p++) {
                    mine.put(iova + p * PAGE, phys + p * PAGE);
                }
            } else {
                assertThat(table.unmap(iova, size)).isEqualTo(before * PAGE);
                for (int p = 0; p < pages; p++) {
                    mine.remove(iova + p * PAGE);
                }
            }
            for (int p = 0; p < pages; p++) {
                long page = iova + p * PAGE;
                assertThat(table.lookup(page, 0)).as("0x%x", page)
                        .isEqualTo(mine.containsKey(page) ? mine.get(page) : IommuDomain.FAULT_NOT_MAPPED);
            }
        }
    }
}
