package org.iommu4j.api;

/**
 * Services modules share, the kernel's {@code EXPORT_SYMBOL} and {@code symbol_get}: one module exports an
 * implementation of an api interface, others that declare it as a dependency look it up. An exported symbol
 * goes away when its module is unloaded, which the dependency makes impossible while a user is loaded.
 */
public interface SymbolTable {

    /**
     * Exports a service under its interface.
     *
     * @param type an interface from this api, for example {@link BounceBufferPool}
     * @param implementation the service
     * @param <T> the interface
     * @throws IommuException {@link Errno#EEXIST} if that interface is already exported
     */
    <T> void export(Class<T> type, T implementation);

    /**
     * Looks a service up.
     *
     * @param type the interface
     * @param <T> the interface
     * @return the exported implementation
     * @throws IommuException {@link Errno#ENOENT} "Unknown symbol" when no loaded module exports it
     */
    <T> T lookup(Class<T> type);
}
