package org.iommu4j.loader;

import java.util.List;
import java.util.Optional;

/**
 * What unloading a backend did.
 *
 * @param name the module removed
 * @param unboundDevices devices that were bound to VFIO through this backend (nothing had them open) and were
 *     unbound first, as removing a driver's module unbinds its devices; in the order unbound
 * @param exitFailure what the backend's {@code stop()} threw, if it threw: logged, and the module was removed all
 *     the same (as the kernel frees a module whatever its exit function did); null when it returned normally
 */
public record UnloadResult(String name, List<String> unboundDevices, String exitFailure) {

    /**
     * Copies the list.
     *
     * @param name see the record description
     * @param unboundDevices see the record description
     * @param exitFailure see the record description
     */
    public UnloadResult {
        unboundDevices = List.copyOf(unboundDevices);
    }

    /** @return what {@code stop()} threw, if it did */
    public Optional<String> exitFailed() {
        return Optional.ofNullable(exitFailure);
    }
}
