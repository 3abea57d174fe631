package org.iommu4j.kernel.fault;

import java.util.SplittableRandom;
import org.iommu4j.api.LogLevel;
import org.iommu4j.kernel.log.KernelLogBuffer;

/**
 * One fault-injection capability, the kernel's {@code struct fault_attr} ({@code lib/fault-inject.c}): the
 * allocation points wired to it ask {@link #shouldFail} and, when told yes, fail exactly as they would if the
 * resource had really run out. Which calls fail is decided by the kernel's knobs, checked in the kernel's order:
 * <ol>
 * <li>{@code probability} 0 (the default) means never; nothing else is looked at, and the check takes no lock;</li>
 * <li>{@code times}: failures left, -1 for no limit; 0 means never again;</li>
 * <li>{@code space}: a byte budget consumed by the sizes of the calls before failures may start;</li>
 * <li>{@code interval}: only every interval-th remaining call may fail;</li>
 * <li>{@code probability}: the percentage of those that do (100 = all), drawn from a random source seeded per
 *     host, so a run is reproducible.</li>
 * </ol>
 * Each forced failure is logged as the kernel logs it when {@code verbose} is 1 or more:
 * {@code FAULT_INJECTION: forcing a failure.} then the attribute's name and settings.
 *
 * <p>Examples: {@code configure(1, 100, 0, 1)} fails the next call once; {@code configure(3, 100, 0, 1)} fails
 * the third call from now; {@code configure(1, 100, 0, -1)} fails every call until {@link #disable()}.
 */
public final class FaultAttr {
    private final String name;
    private final KernelLogBuffer log;
    private final SplittableRandom random;
    private volatile int probability;
    private long interval = 1;
    private int times = 1;
    private long space;
    private long count;
    private int verbose = 2;
    private long injected;

    /**
     * A disabled attribute.
     *
     * @param name the kernel's name for it, for example {@code fail_page_alloc}
     * @param log where forced failures are reported
     * @param seed the seed of its random source
     */
    public FaultAttr(String name, KernelLogBuffer log, long seed) {
        this.name = name;
        this.log = log;
        this.random = new SplittableRandom(seed ^ name.hashCode());
    }

    /** @return the attribute's name */
    public String name() {
        return name;
    }

    /**
     * Sets the four knobs at once, as the {@code <name>=<interval>,<probability>,<space>,<times>} boot option
     * does, and restarts the interval count.
     *
     * @param interval every how many calls one may fail, at least 1
     * @param probability percent, 0 to 100
     * @param space bytes of calls to let through first, 0 or more
     * @param times failures allowed, -1 for no limit
     * @throws IllegalArgumentException naming the knob and its valid range
     */
    public synchronized void configure(long interval, int probability, long space, int times) {
        if (interval < 1) {
            throw new IllegalArgumentException(name + ": interval " + interval + " is invalid: expected 1 or more");
        }
        if (probability < 0 || probability > 100) {
            throw new IllegalArgumentException(name + ": probability " + probability
                    + " is invalid: expected 0 to 100 (percent)");
        }
        if (space < 0) {
            throw new IllegalArgumentException(name + ": space " + space + " is invalid: expected 0 or more bytes");
        }
        if (times < -1) {
            throw new IllegalArgumentException(name + ": times " + times + " is invalid: expected -1 (no limit) or"
                    + " 0 or more");
        }
        this.interval = interval;
        this.space = space;
        this.times = times;
        this.count = 0;
        this.probability = probability;
    }

    /**
     * @param level 0 silent, 1 or more logs each forced failure (the kernel also dumps a stack at 2)
     */
    public synchronized void setVerbose(int level) {
        this.verbose = level;
    }

    /** Stops injecting: probability 0. */
    public void disable() {
        probability = 0;
    }

    /** @return failures forced so far */
    public synchronized long injected() {
        return injected;
    }

    /** @return failures still allowed, -1 for no limit */
    public synchronized int timesLeft() {
        return times;
    }

    /**
     * The kernel's {@code should_fail}: asked by an allocation point before it allocates.
     *
     * @param size bytes the call wants, counted against {@code space}
     * @return whether this call must fail
     */
    public boolean shouldFail(long size) {
        if (probability == 0) {
            return false;
        }
        synchronized (this) {
            if (probability == 0 || times == 0) {
                return false;
            }
            if (space > size) {
                space -= size;
                return false;
            }
            if (interval > 1 && ++count % interval != 0) {
                return false;
            }
            if (probability <= random.nextInt(100)) {
                return false;
            }
            if (verbose > 0) {
                log.log(LogLevel.NOTICE, "FAULT_INJECTION: forcing a failure.\nname " + name + ", interval "
                        + interval + ", probability " + probability + ", space " + space + ", times " + times);
            }
            if (times != -1) {
                times--;
            }
            injected++;
            return true;
        }
    }
}
