package org.iommu4j.kernel.log;

import org.iommu4j.api.LogLevel;

/**
 * One line of the kernel log.
 *
 * @param sequence the record's number, from 0, never reused
 * @param timestampNanos nanoseconds since the host booted
 * @param level severity
 * @param text the message, with any module or device prefix already applied
 */
public record LogRecord(long sequence, long timestampNanos, LogLevel level, String text) {

    /**
     * @return the record as {@code dmesg} prints it: {@code [    1.234567] text}; a text of several lines gets
     *     the prefix on every line, as Linux v6.12's {@code record_print_text} (kernel/printk/printk.c) does
     */
    public String format() {
        long micros = timestampNanos / 1_000;
        String prefix = String.format("[%5d.%06d] ", micros / 1_000_000, micros % 1_000_000);
        return prefix + text.replace("\n", "\n" + prefix);
    }
}
