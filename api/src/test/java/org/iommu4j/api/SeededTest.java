package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.util.ArrayList;
import java.util.List;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

/** The shared seeded-test helper: repeatable series, the seed named on failure, one seed rerun on demand. */
class SeededTest {

    @Test
    void aSeriesIsTheSameEveryRunAndAFailureNamesItsSeedAndHowToRerunIt() {
        List<Long> first = new ArrayList<>();
        List<Long> again = new ArrayList<>();
        Seeded.forEachSeed("SeededTest.series", 5, first::add);
        Seeded.forEachSeed("SeededTest.series", 5, again::add);
        assertThat(first).hasSize(5).doesNotHaveDuplicates().isEqualTo(again);

        long bad = first.get(3);
        AssertionError e = catchThrowableOfType(() -> Seeded.forEachSeed("SeededTest.series", 5, seed -> {
            if (seed == bad) {
                throw new IllegalStateException("boom");
            }
        }), AssertionError.class);
        assertThat(e).hasMessage(String.format("seed=0x%x (rerun with -Diommu4j.seed=0x%x): %s", bad, bad,
                "java.lang.IllegalStateException: boom")).hasCauseInstanceOf(IllegalStateException.class);
    }

    @Test
    void theSeedPropertyRunsThatOneSeedOnly() {
        List<Long> ran = new ArrayList<>();
        System.setProperty(Seeded.SEED, "0x2a");
        try {
            Seeded.forEachSeed("SeededTest.one", 100, ran::add);
        } finally {
            System.clearProperty(Seeded.SEED);
        }
        assertThat(ran).containsExactly(42L);
        assertThat(Seeded.count("iommu4j.test.unset", 7)).isEqualTo(7);
    }
}
