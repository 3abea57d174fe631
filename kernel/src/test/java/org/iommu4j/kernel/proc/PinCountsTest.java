package org.iommu4j.kernel.proc;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

/** A process's pin counts agree with a map of counts through growth and backward-shift deletes. */
class PinCountsTest {

    @Test
    void seededSequencesAgreeWithAMapOfCounts() {
        Seeded.forEach("PinCountsTest.sequences", 3, PinCountsTest::run);
    }

    private static void run(Random random) {
        PinCounts pins = new PinCounts();
        Map<Long, Integer> model = new HashMap<>();
        long[] frames = new long[1500];
        for (int i = 0; i < frames.length; i++) {
            frames[i] = (long) random.nextInt(1 << 22) << 12;
        }
        for (int step = 0; step < 40_000; step++) {
            long f = frames[random.nextInt(frames.length)];
            boolean pin = random.nextInt(100) < ((step / 5000) % 2 == 0 ? 70 : 40) || !model.containsKey(f);
            if (pin) {
                pins.increment(f);
                model.merge(f, 1, Integer::sum);
            } else {
                int left = model.merge(f, -1, Integer::sum);
                if (left == 0) {
                    model.remove(f);
                }
                assertThat(pins.decrement(f)).as("last pin of 0x%x", f).isEqualTo(left == 0);
            }
            long probe = frames[random.nextInt(frames.length)];
            assertThat(pins.get(probe)).as("pins of 0x%x", probe).isEqualTo(model.getOrDefault(probe, 0));
        }
        for (long f : frames) {
            assertThat(pins.get(f)).isEqualTo(model.getOrDefault(f, 0));
        }
    }
}
