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
}
