package org.iommu4j.kernel.log;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.atomic.AtomicLong;
import org.iommu4j.api.LogLevel;
import org.junit.jupiter.api.Test;

class KernelLogBufferTest {
    @Test
    void theRingKeepsTheNewestRecordsAndCountsTheDropped() {
        AtomicLong now = new AtomicLong();
        KernelLogBuffer log = new KernelLogBuffer(3, now::get);
        for (int i = 0; i < 5; i++) {
            now.set(1_500_000_000L * i + 1_000);
            log.log(LogLevel.INFO, "line " + i);
        }
        assertThat(log.messages()).containsExactly("line 2", "line 3", "line 4");
        assertThat(log.dropped()).isEqualTo(2);
        assertThat(log.records().get(0).sequence()).isEqualTo(2);
        assertThat(log.dmesg()).containsExactly("[    3.000001] line 2", "[    4.500001] line 3",
                "[    6.000001] line 4");
    }

    @Test
    void aRingNeedsRoom() {
        assertThatThrownBy(() -> new KernelLogBuffer(0, () -> 0))
                .hasMessage("log capacity 0 is invalid: expected at least 1");
    }
}
