package org.iommu4j.kernel.log;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommu4j.api.LogLevel;
import org.junit.jupiter.api.Test;

class LogRecordTest {
    @Test
    void everyLineOfARecordGetsItsTimestamp() {
        LogRecord r = new LogRecord(7, 1_234_567_000L, LogLevel.WARNING, "first line\nsecond line\nthird");
        assertThat(r.format()).isEqualTo("[    1.234567] first line\n[    1.234567] second line\n[    1.234567] third");
        assertThat(new LogRecord(8, 0, LogLevel.INFO, "one").format()).isEqualTo("[    0.000000] one");
    }
}
