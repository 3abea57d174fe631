package org.iommu4j.api;

import java.util.List;

/**
 * A backend running on one host: what {@link BackendProvider#start} returns. The kernel keeps it while the
 * module is loaded and calls {@link #stop()} on unload, which it allows only while nothing uses the module.
 */
public interface Backend {

    /**
     * The backend's sysfs and debugfs attributes (for example swiotlb's {@code io_tlb_used}, pciback's
     * {@code new_slot}), read and written by name through the host.
     *
     * @return the attributes; none by default
     */
    default List<ModuleAttribute> attributes() {
        return List.of();
    }

    /**
     * The module's exit: unregister and free what {@link BackendProvider#start} set up. Whatever is still
     * registered afterwards the kernel unregisters, and says so in the log.
     */
    default void stop() {
    }
}
