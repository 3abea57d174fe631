package org.iommu4j.kernel.log;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;
import org.iommu4j.api.LogLevel;

/**
 * The kernel's printk ring: a bounded buffer of the most recent records. When it is full the oldest record
 * goes, as in the kernel, and {@link #dropped()} counts it.
 */
public final class KernelLogBuffer {
    private final int capacity;
    private final LongSupplier clock;
    private final ArrayDeque<LogRecord> ring;
    private long nextSequence;

    /**
     * @param capacity how many records to keep, at least 1
     * @param clock nanoseconds since boot
     */
    public KernelLogBuffer(int capacity, LongSupplier clock) {
        if (capacity < 1) {
            throw new IllegalArgumentException("log capacity " + capacity + " is invalid: expected at least 1");
        }
        this.capacity = capacity;
        this.clock = clock;
        this.ring = new ArrayDeque<>(Math.min(capacity, 1024));
    }

    /**
     * Appends a record.
     *
     * @param level severity
     * @param text the complete message
     * @return the record
     */
    public synchronized LogRecord log(LogLevel level, String text) {
        LogRecord record = new LogRecord(nextSequence++, clock.getAsLong(), level, text);
        if (ring.size() == capacity) {
            ring.removeFirst();
        }
        ring.addLast(record);
        return record;
    }

    /** @return the records still in the ring, oldest first */
    public synchronized List<LogRecord> records() {
        return List.copyOf(ring);
    }

    /** @return the messages still in the ring, oldest first, without time stamps */
    public synchronized List<String> messages() {
        List<String> out = new ArrayList<>(ring.size());
        for (LogRecord r : ring) {
            out.add(r.text());
        }
        return out;
    }

    /** @return the ring as {@code dmesg} prints it */
    public synchronized List<String> dmesg() {
        List<String> out = new ArrayList<>(ring.size());
        for (LogRecord r : ring) {
            out.add(r.format());
        }
        return out;
    }

    /** @return how many records the ring has lost to its capacity */
    public synchronized long dropped() {
        return nextSequence - ring.size();
    }
}
