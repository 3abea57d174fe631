package org.iommu4j.testsupport;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;

/** What a model-based test's sequences did: how often each path was taken, checked in one place. */
public final class PathCounts {
    private PathCounts() {
    }

    /**
     * Every path was taken at least once, except the one the backend under test does not have, which was never
     * taken: the sequences reached everything they could, and nothing they must not.
     *
     * @param <K> the paths
     * @param totals how often each path was taken, summed over the sequences
     * @param never the path that must have a count of 0
     */
    public static <K extends Enum<K>> void requireEveryPathBut(Map<K, Long> totals, K never) {
        assertThat(totals).as("what the sequences did").containsEntry(never, 0L)
                .allSatisfy((k, v) -> assertThat(k == never || v > 0).as("%s: %d", k, v).isTrue());
    }
}
