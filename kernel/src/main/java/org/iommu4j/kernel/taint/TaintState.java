package org.iommu4j.kernel.taint;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.log.KernelLogBuffer;

/**
 * A host's taint: the sticky bitmask of {@code /proc/sys/kernel/tainted}, the {@code Tainted:} line the kernel
 * prints, and a record of every event that set a flag. Nothing clears a flag.
 */
public final class TaintState {
    /** Flags after which the kernel no longer trusts lock debugging ({@code LOCKDEP_NOW_UNRELIABLE}). */
    private static final Set<TaintFlag> LOCKDEP_UNRELIABLE = EnumSet.of(TaintFlag.PROPRIETARY_MODULE,
            TaintFlag.FORCED_MODULE, TaintFlag.FORCED_RMMOD, TaintFlag.MACHINE_CHECK, TaintFlag.BAD_PAGE,
            TaintFlag.DIE);

    private final AtomicLong mask = new AtomicLong();
    private final List<TaintRecord> records = new ArrayList<>();
    private final KernelLogBuffer log;
    private final LongSupplier clock;
    private boolean lockDebuggingOff;

    /**
     * @param log where "Disabling lock debugging due to kernel taint" goes
     * @param clock nanoseconds since boot
     */
    public TaintState(KernelLogBuffer log, LongSupplier clock) {
        this.log = log;
        this.clock = clock;
    }

    /**
     * Sets a flag and records the event.
     *
     * @param flag the flag
     * @param who the module responsible, or {@code kernel}
     * @param event what happened
     */
    public void add(TaintFlag flag, String who, String event) {
        boolean announce;
        synchronized (records) {
            records.add(new TaintRecord(flag, who, event, clock.getAsLong()));
            mask.getAndUpdate(m -> m | flag.mask());
            announce = LOCKDEP_UNRELIABLE.contains(flag) && !lockDebuggingOff;
            lockDebuggingOff |= announce;
        }
        if (announce) {
            log.log(LogLevel.WARNING, "Disabling lock debugging due to kernel taint");
        }
    }

    /**
     * @param flag a flag
     * @return whether it is set
     */
    public boolean isSet(TaintFlag flag) {
        return (mask.get() & flag.mask()) != 0;
    }

    /** @return the bitmask, as {@code /proc/sys/kernel/tainted} shows it */
    public long mask() {
        return mask.get();
    }

    /** @return the flags set, in bit order */
    public Set<TaintFlag> flags() {
        EnumSet<TaintFlag> set = EnumSet.noneOf(TaintFlag.class);
        long m = mask.get();
        for (TaintFlag f : TaintFlag.values()) {
            if ((m & f.mask()) != 0) {
                set.add(f);
            }
        }
        return set;
    }

    /**
     * The kernel's {@code print_tainted}: {@code Not tainted}, or {@code Tainted: } followed by one column per
     * flag in bit order, the letter when set, a space when clear, and {@code G} in the first column while P is
     * clear.
     *
     * @return the line
     */
    public String taintedString() {
        long m = mask.get();
        if (m == 0) {
            return "Not tainted";
        }
        StringBuilder sb = new StringBuilder("Tainted: ");
        for (TaintFlag f : TaintFlag.values()) {
            boolean set = (m & f.mask()) != 0;
            sb.append(set ? f.letter() : f == TaintFlag.PROPRIETARY_MODULE ? 'G' : ' ');
        }
        return sb.toString();
    }

    /** @return every event that set a flag, oldest first */
    public List<TaintRecord> records() {
        synchronized (records) {
            return List.copyOf(records);
        }
    }
}
