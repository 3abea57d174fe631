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

    /**
     * Withdraws a service this module exported, as its unload must: from now on {@link #lookup} does not find
     * it, and another module may export that interface. A module that already looked it up keeps its
     * reference, and keeps the exporter loaded until it is unloaded itself.
     *
     * <p>The default implementation refuses with {@link Errno#EOPNOTSUPP}: a table written for 1.1 has no way
     * to withdraw, and the kernel removes what is left at unload.
     *
     * @param type the interface the caller exported
     * @throws IommuException {@link Errno#ENOENT} if the caller does not export {@code type}
     * @since 1.2
     */
    default void unexport(Class<?> type) {
        throw new IommuException(Errno.EOPNOTSUPP, "this symbol table cannot withdraw " + type.getName());
    }
}
