package org.iommu4j.backend.swiotlb;

import java.util.function.LongSupplier;
import org.iommu4j.api.KernelLog;
import org.iommu4j.api.LogLevel;

/**
 * The kernel's {@code struct ratelimit_state} as {@code ___ratelimit} uses it: a window opens at the first
 * event, up to {@code burst} events pass in it, and the first event after the window has run for longer than
 * {@code interval} opens a new one. Events refused in a window are counted, and when the next window opens
 * the count is reported as the kernel reports it, {@code <func>: <n> callbacks suppressed}, before the event
 * that opened it. {@code dev_warn_ratelimited} uses {@link #DEFAULT_INTERVAL_NANOS} and
 * {@link #DEFAULT_BURST}, and its {@code func} is the function that calls it.
 */
final class Ratelimit {
    /** DEFAULT_RATELIMIT_INTERVAL: five seconds. */
    static final long DEFAULT_INTERVAL_NANOS = 5_000_000_000L;
    /** DEFAULT_RATELIMIT_BURST. */
    static final int DEFAULT_BURST = 10;

    private final long intervalNanos;
    private final int burst;
    private final LongSupplier clock;
    private final KernelLog log;
    private boolean started;
    private long begin;
    private int printed;
    private int missed;

    /**
     * @param intervalNanos length of a window
     * @param burst events allowed per window
     * @param clock nanoseconds, monotonic: the host's ({@code KernelServices::uptimeNanos})
     * @param log where the "callbacks suppressed" line goes
     * @param func the name the kernel would pass as {@code __func__}: the rate-limited message's function
     */
    Ratelimit(long intervalNanos, int burst, LongSupplier clock, KernelLog log, String func) {
        this.intervalNanos = intervalNanos;
        this.burst = burst;
        this.clock = clock;
        this.log = log.withPrefix(func);
    }

    /** @return whether this event may be reported */
    synchronized boolean allow() {
        long now = clock.getAsLong();
        if (!started) {
            started = true;
            begin = now;
        }
        if (now - begin > intervalNanos) {
            if (missed > 0) {
                log.log(LogLevel.WARNING, missed + " callbacks suppressed");
                missed = 0;
            }
            begin = now;
            printed = 0;
        }
        if (printed < burst) {
            printed++;
            return true;
        }
        missed++;
        return false;
    }
}
