package org.iommu4j.api;

/**
 * The host's taint, as a backend sees it: set a flag (recorded against the calling module, with the event
 * that caused it) or ask what is set. Nothing clears a flag; a new host starts clean.
 */
public interface Taint {

    /**
     * Sets a flag. Setting a flag that is already set records the new event as well but changes nothing else.
     *
     * @param flag the flag
     * @param event what happened, for example {@code vfio-noiommu group for 0000:06:0d.0}
     */
    void add(TaintFlag flag, String event);

    /**
     * @param flag a flag
     * @return whether it is set on this host
     */
    boolean isSet(TaintFlag flag);

    /** @return the flags as the bitmask {@code /proc/sys/kernel/tainted} shows */
    long mask();
}
