package org.iommu4j.api;

/**
 * The kernel log ({@code printk}). Messages keep the kernel's words where the kernel has them, so a person
 * can grep for them; the log adds the time stamp and, for a device, the {@code dev_printk} prefix.
 */
public interface KernelLog {

    /**
     * Logs a message as the module that owns these services: {@code <module>: <message>} unless the message
     * already starts with the module's name.
     *
     * @param level severity
     * @param message the text, without a trailing newline
     */
    void log(LogLevel level, String message);

    /**
     * Logs a message about a device, prefixed as {@code dev_printk} does: the bound driver's name (or the bus's
     * when none is bound), the device's name, a colon. For example
     * {@code vfio-pci 0000:00:07.0: Adding kernel taint for vfio-noiommu group on device}.
     *
     * @param level severity
     * @param device the device
     * @param message the text
     */
    void log(LogLevel level, Device device, String message);

    /**
     * A log whose plain messages carry another prefix than the module's name, as a kernel source file's
     * {@code pr_fmt} gives one (swiotlb prints {@code software IO TLB: mapped [mem ...]}).
     *
     * @param prefix the prefix, without the colon
     * @return a view of this log (since API 1.1; by default this log, unchanged, for implementations that
     *     cannot re-prefix; the kernel's can)
     */
    default KernelLog withPrefix(String prefix) {
        return this;
    }

    /**
     * The kernel's {@code WARN()} ({@code include/asm-generic/bug.h}, Linux v6.12): something that must not happen did, and the kernel goes on. The kernel prints
     * its {@code cut here} marker, the message and {@code WARNING: CPU: n PID: p at <site>}, and taints itself
     * with {@link TaintFlag#WARN}.
     *
     * @param site the source file and function that warns, e.g. {@code kernel/dma/swiotlb.c swiotlb_bounce}
     * @param message the warning's text, in the kernel's words where it has them
     * @since 1.2 (by default logged as a plain warning, for implementations without a taint; the kernel's taints W)
     */
    default void warn(String site, String message) {
        log(LogLevel.WARNING, message);
    }

    /**
     * The kernel's {@code WARN_ONCE()}: as {@link #warn}, the first time a site warns on this host; later calls
     * for the same site print nothing.
     *
     * @param site the source file and function that warns; the once-flag is kept per site
     * @param message the warning's text
     * @return whether this call printed the warning
     * @since 1.2 (by default always logged, for implementations without once-flags; the kernel's keeps them)
     */
    default boolean warnOnce(String site, String message) {
        warn(site, message);
        return true;
    }
}
