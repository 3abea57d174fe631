package org.iommu4j.kernel.module;

/** Told of every module state change on a host, the kernel's module notifier. */
@FunctionalInterface
public interface ModuleListener {

    /**
     * @param module the module
     * @param from its state before
     * @param to its state now
     */
    void stateChanged(LoadedModule module, ModuleState from, ModuleState to);
}
