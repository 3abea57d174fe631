package org.iommu4j.kernel.taint;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.log.KernelLogBuffer;
import org.junit.jupiter.api.Test;

class TaintStateTest {
    private final KernelLogBuffer log = new KernelLogBuffer(16, () -> 42_000L);
    private final TaintState taint = new TaintState(log, () -> 42_000L);

    @Test
    void anUntaintedKernelSaysSo() {
        assertThat(taint.taintedString()).isEqualTo("Not tainted");
        assertThat(taint.mask()).isZero();
    }

    @Test
    void oneColumnPerFlagInBitOrderWithGWhilePIsClear() {
        taint.add(TaintFlag.OOT_MODULE, "wl", "loading out-of-tree module");
        // 20 columns: G, 11 blanks, O, 7 blanks
        assertThat(taint.taintedString()).isEqualTo("Tainted: G           O       ");
        assertThat(taint.taintedString()).hasSize("Tainted: ".length() + 20);

        taint.add(TaintFlag.PROPRIETARY_MODULE, "wl", "module license 'MIXED/Proprietary'");
        taint.add(TaintFlag.UNSIGNED_MODULE, "wl", "module verification failed");
        taint.add(TaintFlag.USER, "vfio", "vfio-noiommu group");
        assertThat(taint.taintedString()).isEqualTo("Tainted: P     U     OE      ");
        assertThat(taint.mask()).isEqualTo(1 | 1 << 6 | 1 << 12 | 1 << 13);
    }

    @Test
    void taintIsStickyAndRecordsWhoSetEachFlag() {
        taint.add(TaintFlag.USER, "noiommu", "vfio-noiommu group for 0000:06:0d.0");
        taint.add(TaintFlag.USER, "swiotlb", "vfio-swiotlb group for 0000:07:00.0");

        assertThat(taint.isSet(TaintFlag.USER)).isTrue();
        assertThat(taint.flags()).containsExactly(TaintFlag.USER);
        assertThat(taint.records()).extracting(TaintRecord::who).containsExactly("noiommu", "swiotlb");
        assertThat(taint.records().get(0).event()).isEqualTo("vfio-noiommu group for 0000:06:0d.0");
        assertThat(taint.records().get(0).timestampNanos()).isEqualTo(42_000L);
    }

    @Test
    void lockDebuggingIsDisabledOnceAndOnlyForFlagsThatMakeItUnreliable() {
        taint.add(TaintFlag.OOT_MODULE, "a", "oot");
        assertThat(log.messages()).isEmpty();
        taint.add(TaintFlag.PROPRIETARY_MODULE, "a", "license");
        taint.add(TaintFlag.PROPRIETARY_MODULE, "b", "license");
        assertThat(log.messages()).containsExactly("Disabling lock debugging due to kernel taint");
    }
}
