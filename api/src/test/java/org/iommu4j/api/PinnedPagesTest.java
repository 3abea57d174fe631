package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class PinnedPagesTest {
    @Test
    void physAtFollowsTheFramesAcrossPages() {
        PinnedPages p = new PinnedPages(0x7000_0ff0L, 0x20, new long[] {0x5000, 0x2000});
        assertThat(p.pageOffset()).isEqualTo(0xff0);
        assertThat(p.physAt(0)).isEqualTo(0x5ff0);
        assertThat(p.physAt(0x10)).isEqualTo(0x2000);
        assertThat(p.firstDiscontinuity()).isEqualTo(1);
        assertThat(new PinnedPages(0, 0x2000, new long[] {0x5000, 0x6000}).isContiguous()).isTrue();
    }

    @Test
    void theFrameCountMustMatchTheRange() {
        assertThatThrownBy(() -> new PinnedPages(0x0ff0, 0x20, new long[] {0x5000}))
                .hasMessage("pinned range 0xff0+0x20 spans 2 pages but 1 frames were given");
        assertThatThrownBy(() -> new PinnedPages(0, 0x10, new long[] {0x5001}))
                .hasMessage("frame 0x5001 is not page-aligned");
    }

    @Test
    void directionFollowsProt() {
        assertThat(DmaDirection.ofProt(IommuProt.READ)).isEqualTo(DmaDirection.TO_DEVICE);
        assertThat(DmaDirection.ofProt(IommuProt.WRITE)).isEqualTo(DmaDirection.FROM_DEVICE);
        assertThat(DmaDirection.ofProt(IommuProt.READ | IommuProt.WRITE)).isEqualTo(DmaDirection.BIDIRECTIONAL);
        assertThatThrownBy(() -> DmaDirection.ofProt(IommuProt.CACHE))
                .hasMessage("prot CACHE grants no access: expected READ, WRITE or both");
    }
}
