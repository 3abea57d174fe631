package org.iommu4j.api;

/** Kernel log levels, most severe first, with the numbers {@code dmesg} uses. */
public enum LogLevel {
    /** System is unusable (0). */
    EMERG,
    /** Action must be taken immediately (1). */
    ALERT,
    /** Critical conditions (2). */
    CRIT,
    /** Error conditions (3). */
    ERR,
    /** Warning conditions (4). */
    WARNING,
    /** Normal but significant (5). */
    NOTICE,
    /** Informational (6). */
    INFO,
    /** Debug-level messages (7). */
    DEBUG;

    /** @return the level's number, 0 (EMERG) to 7 (DEBUG) */
    public int number() {
        return ordinal();
    }
}
