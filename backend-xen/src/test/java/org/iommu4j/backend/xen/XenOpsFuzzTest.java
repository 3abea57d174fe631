package org.iommu4j.backend.xen;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * The op-sequence fuzz target: Jazzer's data picks the steps of {@link XenModelTest}'s model
 * ({@link org.iommu4j.testsupport.DmaApiModel}, or its VFIO model {@link org.iommu4j.testsupport.VfioModel}), so every invariant is checked after every step: only typed
 * errors escape and as predicted, a failed call changes nothing, counts and bytes agree with the model, and
 * nothing is left after teardown. In {@code mvn verify} it replays its committed corpus
 * ({@code src/test/resources/org/iommu4j/backend/xen/XenOpsFuzzTestInputs/opSequence/}); {@code -Pfuzz}
 * mutates.
 */
class XenOpsFuzzTest {

    @FuzzTest(maxDuration = "120s")
    void opSequence(FuzzedDataProvider data) {
        if (data.consumeBoolean()) {
            XenModelTest.runVfio(bound -> data.consumeInt(0, bound - 1), Math.min(500, data.remainingBytes() / 3));
            return;
        }
        boolean debug = data.consumeBoolean();
        long layout = data.consumeLong();
        int steps = Math.min(500, data.remainingBytes() / 3);
        XenModelTest.run(bound -> data.consumeInt(0, bound - 1), steps, debug, layout);
    }
}
