package org.iommu4j.kernel.log;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntSupplier;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.taint.TaintState;

/**
 * The kernel's {@code WARN()} and {@code WARN_ONCE()} ({@code include/asm-generic/bug.h}, {@code kernel/panic.c}
 * {@code __warn}, Linux v6.12): one facility every warning site of the simulated kernel and its modules uses,
 * so that a warning always looks the same and always taints the kernel with {@link TaintFlag#WARN} ('W').
 *
 * <p>A warning prints, as the kernel does, the {@code cut here} marker, the site's message, then
 * {@code WARNING: CPU: <cpu> PID: <pid> at <site>} where the site names the source file and function
 * ({@code kernel/dma/direct.h dma_direct_map_page}). The kernel's line number and stack trace are not modelled.
 * {@code WARN_ONCE} keeps one flag per site and host: the kernel keeps it per call site, in a static
 * variable, which a per-host set of sites models without static state.
 */
public final class Warnings {
    /** The marker line {@code __warn} prints before a warning. */
    public static final String CUT_HERE = "------------[ cut here ]------------";

    private final KernelLogBuffer log;
    private final TaintState taint;
    private final IntSupplier cpu;
    private final Set<String> warnedOnce = ConcurrentHashMap.newKeySet();

    /**
     * @param log the kernel log
     * @param taint the host's taint, which every warning sets W in
     * @param cpu the calling thread's CPU number
     */
    public Warnings(KernelLogBuffer log, TaintState taint, IntSupplier cpu) {
        this.log = log;
        this.taint = taint;
        this.cpu = cpu;
    }

    /**
     * {@code WARN(1, ...)}: prints the warning and taints W.
     *
     * @param who the module (or {@code "kernel"}) the site belongs to, recorded with the taint
     * @param site the source file and function, e.g. {@code kernel/dma/swiotlb.c swiotlb_bounce}
     * @param message the warning's text
     */
    public void warn(String who, String site, String message) {
        synchronized (log) {
            log.log(LogLevel.WARNING, CUT_HERE);
            log.log(LogLevel.WARNING, message);
            log.log(LogLevel.WARNING, "WARNING: CPU: " + cpu.getAsInt() + " PID: 1 at " + site);
        }
        taint.add(TaintFlag.WARN, who, "WARN at " + site + ": " + message);
    }

    /**
     * {@code WARN_ONCE(1, ...)}: the first call for a site warns as {@link #warn}; later ones do nothing.
     *
     * @param who the module the site belongs to
     * @param site the source file and function; the once-flag is kept per site
     * @param message the warning's text
     * @return whether this call printed the warning
     */
    public boolean warnOnce(String who, String site, String message) {
        if (!warnedOnce.add(site)) {
            return false;
        }
        warn(who, site, message);
        return true;
    }

    /**
     * @param site a site
     * @return whether {@code WARN_ONCE} has fired there on this host
     */
    public boolean hasWarnedOnce(String site) {
        return warnedOnce.contains(site);
    }
}
