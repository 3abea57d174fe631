package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

/** The type 1 driver's table of live mappings keeps exactly what a map would, through growth and backward-shift deletes. */
class IovaHashTableTest {

    @Test
    void seededSequencesAgreeWithAHashMapAndListInUnsignedOrder() {
        Seeded.forEach("IovaHashTableTest.sequences", 3, IovaHashTableTest::run);
    }

    private static void run(Random random) {
        IovaHashTable table = new IovaHashTable();
        Map<Long, PinnedPages> model = new HashMap<>();
        Map<Long, Integer> prots = new HashMap<>();
        long[] keys = new long[2000];
        for (int i = 0; i < keys.length; i++) {
            // clustered iovas (the same hash neighbourhood) and some above 2^63
            keys[i] = ((long) random.nextInt(4096) << 12) ^ (random.nextInt(4) == 0 ? Long.MIN_VALUE : 0);
        }
        for (int step = 0; step < 30_000; step++) {
            long key = keys[random.nextInt(keys.length)];
            if (random.nextInt(100) < ((step / 5000) % 2 == 0 ? 65 : 35)) {
                PinnedPages pages = new PinnedPages(0x7f00_0000_0000L, 4096, new long[] {key & 0xffff_f000L});
                int prot = 1 + random.nextInt(3);
                table.put(key, pages, prot);
                model.put(key, pages);
                prots.put(key, prot);
            } else {
                assertThat(table.remove(key)).as("remove 0x%x", key).isEqualTo(model.remove(key) != null);
                prots.remove(key);
            }
            long probe = keys[random.nextInt(keys.length)];
            assertThat(table.size()).isEqualTo(model.size());
            assertThat(table.pages(probe)).as("pages 0x%x", probe).isSameAs(model.get(probe));
            assertThat(table.prot(probe)).isEqualTo(prots.getOrDefault(probe, 0));
        }
        long[] sorted = table.sortedIovas();
        assertThat(sorted).hasSize(model.size());
        for (int i = 1; i < sorted.length; i++) {
            assertThat(Long.compareUnsigned(sorted[i - 1], sorted[i])).isNegative();
        }
        for (long k : sorted) {
            assertThat(table.pages(k)).isSameAs(model.get(k));
        }
    }
}
