package org.iommu4j.backend.swiotlb;

import java.util.function.LongSupplier;

/**
 * The kernel's {@code struct ratelimit_state} as {@code ___ratelimit} uses it: a window opens at the first
 * event, up to {@code burst} events pass in it, and the first event after the window has run for longer than
 * {@code interval} opens a new one. {@code dev_warn_ratelimited} uses {@link #DEFAULT_INTERVAL_NANOS} and
 * {@link #DEFAULT_BURST}.
 */
final class Ratelimit {
    /** DEFAULT_RATELIMIT_INTERVAL: five seconds. */
    static final long DEFAULT_INTERVAL_NANOS = 5_000_000_000L;
    /** DEFAULT_RATELIMIT_BURST. */
    static final int DEFAULT_BURST = 10;

    private final long intervalNanos;
    private final int burst;
    private final LongSupplier clock;
    private boolean started;
    private long begin;
    private int printed;

    /**
     * @param intervalNanos length of a window
     * @param burst events allowed per window
     * @param clock nanoseconds, monotonic
     */
    Ratelimit(long intervalNanos, int burst, LongSupplier clock) {
        this.intervalNanos = intervalNanos;
        this.burst = burst;
        this.clock = clock;
    }

    /** @return whether this event may be reported */
    synchronized boolean allow() {
        long now = clock.getAsLong();
        if (!started) {
            started = true;
            begin = now;
        }
        if (now - begin > intervalNanos) {
            begin = now;
            printed = 0;
        }
        if (printed < burst) {
            printed++;
            return true;
        }
        return false;
    }
}
