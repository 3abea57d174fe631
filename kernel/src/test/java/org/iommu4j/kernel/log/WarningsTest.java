package org.iommu4j.kernel.log;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.Host;
import org.junit.jupiter.api.Test;

class WarningsTest {

    @Test
    void aWarningPrintsTheKernelsThreeLinesAndTaintsW() {
        Host host = Host.builder().build();
        assertThat(host.taint().isSet(TaintFlag.WARN)).isFalse();
        host.warnings().warn("kernel", "kernel/dma/direct.h dma_direct_map_page", "DMA addr 0x1000+4096 overflow");
        assertThat(host.log().messages()).containsSubsequence(
                "------------[ cut here ]------------",
                "DMA addr 0x1000+4096 overflow",
                "WARNING: CPU: 0 PID: 1 at kernel/dma/direct.h dma_direct_map_page");
        assertThat(host.taint().isSet(TaintFlag.WARN)).isTrue();
    }

    @Test
    void warnOnceFiresOncePerSiteAndHost() {
        Host host = Host.builder().build();
        Host other = Host.builder().build();
        assertThat(host.warnings().warnOnce("kernel", "site a", "first")).isTrue();
        assertThat(host.warnings().warnOnce("kernel", "site a", "second")).isFalse();
        assertThat(host.warnings().warnOnce("kernel", "site b", "third")).isTrue();
        assertThat(other.warnings().warnOnce("kernel", "site a", "elsewhere")).isTrue();
        assertThat(host.log().messages()).contains("first", "third").doesNotContain("second", "elsewhere");
        assertThat(host.warnings().hasWarnedOnce("site a")).isTrue();
    }
}
