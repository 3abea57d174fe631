package org.iommu4j.kernel.module;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.Collectors;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.params.ModuleParameterSet;

/**
 * The kernel's side of modules ({@code kernel/module/main.c}): insert a module given its provider (parse its
 * parameters from the load call and the command line, run its init, keep it LIVE), and remove it when nothing
 * holds it, tearing down whatever it left registered. Finding providers, resolving dependencies and deciding
 * load-time taint is the loader's job, which calls this.
 */
public final class ModuleTable {
    private final Host host;
    private final ReentrantLock lock;
    private final Map<String, LoadedModule> modules = new LinkedHashMap<>();

    /**
     * @param host the host
     * @param lock the host's configuration lock
     */
    public ModuleTable(Host host, ReentrantLock lock) {
        this.host = host;
        this.lock = lock;
    }

    /**
     * Inserts a module and runs its init.
     *
     * @param provider the module
     * @param parameters values given with the load, overriding {@code <module>.<param>} words of the
     *     command line
     * @param origin where it came from, for messages
     * @return the LIVE module
     * @throws IommuException {@link Errno#EEXIST} if a module of that name is loaded; the
     *     {@link InvalidParameterException} of a bad parameter; or the init's failure, after everything the
     *     init registered was removed
     */
    public LoadedModule insert(BackendProvider provider, Map<String, String> parameters, String origin) {
        lock.lock();
        try {
            ModuleInfo info = provider.info();
            String name = ModuleInfo.normalizeName(info.name());
            LoadedModule existing = modules.get(name);
            if (existing != null) {
                throw new IommuException(Errno.EEXIST, "Module " + name + " is already loaded (from "
                        + existing.origin() + ")");
            }
            ModuleParameterSet params;
            try {
                params = new ModuleParameterSet(name, info.parameters(),
                        host.commandLine().moduleParameters(name), parameters);
            } catch (InvalidParameterException e) {
                host.log().log(LogLevel.ERR, e.getMessage());
                throw e;
            }
            LoadedModule module = new LoadedModule(info, params, origin);
            modules.put(name, module);
            try {
                Backend backend = provider.start(new ModuleServices(host, module));
                if (backend == null) {
                    throw new IommuException(Errno.EINVAL, name + ": init returned no backend");
                }
                module.setBackend(backend);
                module.setState(ModuleState.LIVE);
                return module;
            } catch (RuntimeException e) {
                module.setState(ModuleState.FAILED);
                removeRegistrations(module, false);
                modules.remove(name);
                if (e instanceof IommuException) {
                    throw e;
                }
                throw new IommuException(Errno.EINVAL, name + ": init failed: " + e, e);
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Removes a module, the kernel's {@code delete_module}.
     *
     * @param name the module's name ({@code -} and {@code _} are the same)
     * @throws IommuException {@link Errno#ENOENT} "Module x is not currently loaded";
     *     {@link Errno#EAGAIN} (EWOULDBLOCK) "Module x is in use" or "Module x is in use by: a b"
     */
    public void remove(String name) {
        lock.lock();
        try {
            LoadedModule module = require(name);
            List<LoadedModule> holders = module.holders();
            if (!holders.isEmpty()) {
                throw new IommuException(Errno.EAGAIN, "Module " + module.name() + " is in use by: "
                        + holders.stream().map(LoadedModule::name).collect(Collectors.joining(" ")));
            }
            if (module.references() > 0 || host.dma().liveMappings(module) > 0) {
                throw new IommuException(Errno.EAGAIN, "Module " + module.name() + " is in use");
            }
            module.setState(ModuleState.GOING);
            try {
                module.backend().stop();
            } finally {
                removeRegistrations(module, true);
                module.setState(ModuleState.UNLOADED);
                modules.remove(module.name());
                for (LoadedModule m : modules.values()) {
                    m.removeHolder(module);
                }
            }
        } finally {
            lock.unlock();
        }
    }

    private void removeRegistrations(LoadedModule module, boolean warn) {
        int left = host.iommu().removeAllOwnedBy(module) + host.dma().removeAllOwnedBy(module)
                + host.buses().removeAllOwnedBy(module) + host.vfioDrivers().removeAllOwnedBy(module)
                + host.symbols().removeAllOwnedBy(module);
        if (warn && left > 0) {
            host.log().log(LogLevel.WARNING, module.name() + ": left " + left
                    + " registrations behind at exit; removed them");
        }
    }

    /**
     * @param name a module name
     * @return the loaded module
     * @throws IommuException {@link Errno#ENOENT} "Module x is not currently loaded"
     */
    public LoadedModule require(String name) {
        return find(name).orElseThrow(() -> new IommuException(Errno.ENOENT,
                "Module " + ModuleInfo.normalizeName(name) + " is not currently loaded"));
    }

    /**
     * @param name a module name ({@code -} and {@code _} are the same)
     * @return the loaded module
     */
    public Optional<LoadedModule> find(String name) {
        lock.lock();
        try {
            return Optional.ofNullable(modules.get(ModuleInfo.normalizeName(name)));
        } finally {
            lock.unlock();
        }
    }

    /** @return loaded modules, in load order */
    public List<LoadedModule> modules() {
        lock.lock();
        try {
            return new ArrayList<>(modules.values());
        } finally {
            lock.unlock();
        }
    }
}
