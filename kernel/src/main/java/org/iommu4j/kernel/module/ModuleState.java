package org.iommu4j.kernel.module;

/** A module's life, as the kernel's {@code enum module_state} plus the two ends a user sees. */
public enum ModuleState {
    /** Not yet in the table: the state a listener sees a module come from when it is inserted. */
    UNFORMED,
    /** Being set up: parameters parsed, init not yet done. */
    COMING,
    /** Initialised and running. */
    LIVE,
    /** Being removed. */
    GOING,
    /** Removed; its registrations are gone. */
    UNLOADED,
    /** Its init failed; everything it registered was removed. */
    FAILED
}
