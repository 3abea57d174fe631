package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

/**
 * The container's iova index answers every search exactly as an unsigned {@link TreeMap} would, through splits,
 * merges and emptied chunks, for keys on both sides of 2^63.
 */
class IovaTreeTest {

    @Test
    void seededSequencesAgreeWithAnUnsignedTreeMap() {
        Seeded.forEach("IovaTreeTest.sequences", 3, IovaTreeTest::run);
    }

    private static void run(Random random) {
        IovaTree<Long> tree = new IovaTree<>();
        TreeMap<Long, Long> model = new TreeMap<>(Long::compareUnsigned);
        // a few hundred candidate keys, half of them above 2^63, so that chunks fill, split, merge and empty
        long[] keys = new long[600];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = ((long) random.nextInt(1 << 20) << 12) ^ (random.nextBoolean() ? Long.MIN_VALUE : 0);
        }
        keys[0] = 0;
        keys[1] = -4096L;
        for (int step = 0; step < 20_000; step++) {
            long key = keys[random.nextInt(keys.length)];
            // phases: mostly inserting, then mostly removing, so the size sweeps up and down
            boolean insert = random.nextInt(100) < ((step / 2000) % 2 == 0 ? 70 : 30);
            if (insert) {
                tree.put(key, key + 1);
                model.put(key, key + 1);
            } else {
                assertThat(tree.remove(key)).as("remove 0x%x", key).isEqualTo(model.remove(key));
            }
            long probe = random.nextBoolean() ? key : keys[random.nextInt(keys.length)] + random.nextInt(3) - 1;
            assertThat(tree.size()).isEqualTo(model.size());
            assertThat(tree.get(probe)).as("get 0x%x", probe).isEqualTo(model.get(probe));
            assertThat(tree.floor(probe)).as("floor 0x%x", probe).isEqualTo(value(model.floorEntry(probe)));
            assertThat(tree.ceiling(probe)).as("ceiling 0x%x", probe).isEqualTo(value(model.ceilingEntry(probe)));
            assertThat(tree.higher(probe)).as("higher 0x%x", probe).isEqualTo(value(model.higherEntry(probe)));
            if (step % 500 == 0) {
                assertThat(tree.values()).isEqualTo(new ArrayList<>(model.values()));
            }
        }
        assertThat(tree.values()).isEqualTo(new ArrayList<>(model.values()));
    }

    private static Long value(Map.Entry<Long, Long> e) {
        return e == null ? null : e.getValue();
    }

    @Test
    void ascendingInsertsFillWholeChunksAndRemovalsMergeThemBackDown() {
        IovaTree<Long> tree = new IovaTree<>();
        int n = 100 * IovaTree.CAP;
        for (int i = 0; i < n; i++) {
            tree.put((long) i << 12, (long) i);
        }
        assertThat(tree.chunkCount()).isEqualTo(100);

        // keep one key in eight: the chunks that are left merge until neighbours no longer fit in half of one
        List<Long> kept = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (i % 8 != 0) {
                tree.remove((long) i << 12);
            } else {
                kept.add((long) i);
            }
        }
        assertThat(tree.values()).isEqualTo(kept);
        assertThat(tree.size()).isEqualTo(n / 8);
        // every pair of neighbours holds more than half a chunk, so at most 4 keys per chunk on average are wasted
        assertThat(tree.chunkCount()).isLessThanOrEqualTo(2 * tree.size() / (IovaTree.CAP / 2) + 1);

        for (long k : kept) {
            tree.remove(k << 12);
        }
        assertThat(tree.size()).isZero();
        assertThat(tree.chunkCount()).isZero();
        assertThat(tree.floor(-1L)).isNull();
        assertThat(tree.ceiling(0)).isNull();
        tree.put(0x5000, 5L);
        assertThat(tree.floor(-1L)).isEqualTo(5L);
    }
}
