package org.iommu4j.api;

/** The POSIX capabilities a simulated process may hold, as far as iommu4j checks them. */
public enum Capability {
    /** Raw I/O: required at every access point of a VFIO group or container without DMA isolation. */
    CAP_SYS_RAWIO,
    /** System administration: binding drivers, writing module parameters. */
    CAP_SYS_ADMIN,
    /** Locking memory beyond RLIMIT_MEMLOCK: pinning pages for DMA. */
    CAP_IPC_LOCK,
    /** Loading and unloading modules. */
    CAP_SYS_MODULE,
    /**
     * Overriding resource limits: raising a hard limit, such as {@code RLIMIT_MEMLOCK}'s, with
     * {@code setrlimit} (since 1.2).
     */
    CAP_SYS_RESOURCE
}
