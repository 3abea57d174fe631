package org.iommu4j.kernel.module;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.SymbolTable;

/**
 * Services exported between modules (the kernel's exported symbols). Looking a symbol up makes the caller a
 * user of the exporting module, which then cannot be unloaded before it.
 */
public final class SymbolRegistry {
    private final Map<Class<?>, Export> exports = new ConcurrentHashMap<>();

    private record Export(Object implementation, LoadedModule owner) {
    }

    /**
     * @param owner the module exporting or looking up
     * @return the api view for that module
     */
    public SymbolTable view(LoadedModule owner) {
        return new SymbolTable() {
            @Override
            public <T> void export(Class<T> type, T implementation) {
                if (!type.isInstance(implementation)) {
                    throw new IommuException(Errno.EINVAL, owner.name() + ": " + implementation
                            + " does not implement " + type.getName());
                }
                Export previous = exports.putIfAbsent(type, new Export(implementation, owner));
                if (previous != null) {
                    throw new IommuException(Errno.EEXIST, owner.name() + ": exports duplicate symbol "
                            + type.getName() + " (owned by " + previous.owner().name() + ")");
                }
            }

            @Override
            public <T> T lookup(Class<T> type) {
                Export e = exports.get(type);
                if (e == null) {
                    throw new IommuException(Errno.ENOENT,
                            owner.name() + ": Unknown symbol " + type.getName() + " (err -2)");
                }
                if (e.owner() != owner) {
                    e.owner().addHolder(owner);
                }
                return type.cast(e.implementation());
            }

            @Override
            public void unexport(Class<?> type) {
                Export e = exports.get(type);
                if (e == null || e.owner() != owner || !exports.remove(type, e)) {
                    throw new IommuException(Errno.ENOENT, owner.name() + ": does not export " + type.getName()
                            + (e == null || e.owner() == owner ? "" : " (owned by " + e.owner().name() + ")"));
                }
            }
        };
    }

    /**
     * @param owner a module being unloaded
     * @return how many symbols it had exported
     */
    public int removeAllOwnedBy(LoadedModule owner) {
        int before = exports.size();
        exports.values().removeIf(e -> e.owner() == owner);
        return before - exports.size();
    }
}
