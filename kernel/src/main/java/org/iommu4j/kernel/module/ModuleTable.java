package org.iommu4j.kernel.module;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.locks.ReentrantLock;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Collectors;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.params.ModuleParameterSet;

/**
 * The kernel's side of modules ({@code kernel/module/main.c}, Linux v6.12): insert a module given its provider (parse its
 * parameters from the load call and the command line, run its init, keep it LIVE), and remove it when nothing
 * holds it, tearing down whatever it left registered. Finding providers, resolving dependencies and deciding
 * load-time taint is the loader's job, which calls this.
 */
public final class ModuleTable {
    private final Host host;
    private final ReentrantLock lock;
    private final Map<String, LoadedModule> modules = new LinkedHashMap<>();
    private final List<ModuleListener> listeners = new CopyOnWriteArrayList<>();
    private boolean unsignedNoticed;

    /**
     * @param host the host
     * @param lock the host's configuration lock
     */
    public ModuleTable(Host host, ReentrantLock lock) {
        this.host = host;
        this.lock = lock;
    }

    /**
     * Inserts a module found on the class path; see {@link #insert(BackendProvider, Map, LoadFacts)}.
     *
     * @param provider the module
     * @param parameters values given with the load
     * @param origin where it came from, for messages
     * @return the LIVE module
     */
    public LoadedModule insert(BackendProvider provider, Map<String, String> parameters, String origin) {
        return insert(provider, parameters, new LoadFacts(origin, true));
    }

    /**
     * Inserts a module and runs its init, as {@code load_module} does: the signature is checked (an unsigned
     * module is refused under {@code module.sig_enforce=1}), the kernel is tainted for what the module is
     * (out-of-tree, not GPL-compatible, unsigned) with the kernel's messages, its parameters are parsed from
     * the load call and the command line, and its init runs. Taint stays even if init fails.
     *
     * @param provider the module
     * @param parameters values given with the load, overriding {@code <module>.<param>} words of the
     *     command line
     * @param facts where it came from and whether it is signed
     * @return the LIVE module
     * @throws IommuException {@link Errno#EEXIST} if a module of that name is loaded;
     *     {@link Errno#EKEYREJECTED} "Loading of unsigned module is rejected" under enforcement; the
     *     {@link InvalidParameterException} of a bad parameter; or the init's failure, after everything the
     *     init registered was removed
     */
    public LoadedModule insert(BackendProvider provider, Map<String, String> parameters, LoadFacts facts) {
        lock.lock();
        try {
            ModuleInfo info = facts.info() != null ? facts.info() : provider.info();
            String name = ModuleInfo.normalizeName(info.name());
            // load_module's order in Linux v6.12: the signature (module_sig_check), then early_mod_check's
            // duplicate check, and only then module_augment_kernel_taints (out-of-tree, licence, unsigned): since
            // v6.4 a duplicate is refused before it can taint or print anything; a module refused later (a bad
            // parameter, a failing init) keeps the taint it set
            if (!facts.signed() && sigEnforce()) {
                host.log().log(LogLevel.NOTICE, "Loading of unsigned module is rejected");
                throw new IommuException(Errno.EKEYREJECTED, "Loading of unsigned module is rejected: " + name
                        + " is not signed by a trusted key and module.sig_enforce=1");
            }
            LoadedModule existing = modules.get(name);
            if (existing != null) {
                throw new IommuException(Errno.EEXIST, "Module " + name + " is already loaded (from "
                        + existing.origin() + ")");
            }
            List<TaintFlag> taints = new java.util.ArrayList<>(3);
            taintForModinfo(name, info, facts, taints);
            taintForSignature(name, facts, taints);
            ModuleParameterSet params;
            try {
                params = new ModuleParameterSet(name, info.parameters(),
                        declaredOnly(name, info, host.commandLine().moduleParameters(name)), parameters);
            } catch (InvalidParameterException e) {
                host.log().log(LogLevel.ERR, e.getMessage());
                throw e;
            }
            LoadedModule module = new LoadedModule(info, params, facts.origin());
            module.setClassLoader(provider.getClass().getClassLoader());
            taints.forEach(module::recordTaint);
            modules.put(name, module);
            fire(module, ModuleState.UNFORMED, ModuleState.COMING);
            try {
                ContextLoaderGuard guard = facts.contextLoader() == null ? null
                        : new ContextLoaderGuard(facts.contextLoader());
                ModuleServices services = new ModuleServices(host, module, guard);
                Backend[] started = new Backend[1];
                Runnable init = () -> started[0] = provider.start(services);
                if (guard == null) {
                    init.run();
                } else {
                    guard.run(init);
                }
                if (started[0] == null) {
                    throw new IommuException(Errno.EINVAL, name + ": init returned no backend");
                }
                module.setBackend(guard == null ? started[0] : guard.guard(Backend.class, started[0]));
                setState(module, ModuleState.LIVE);
                return module;
            } catch (RuntimeException e) {
                setState(module, ModuleState.FAILED);
                removeRegistrations(module, false);
                modules.remove(name);
                // the symbols its init looked up made it a user of their exporters: it uses nothing now
                for (LoadedModule m : modules.values()) {
                    m.removeHolder(module);
                }
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
     * {@code module.sig_enforce}, a {@code bool_enable_only} parameter parsed with {@code kstrtobool} (Linux v6.12
     * {@code lib/kstrtox.c}): a first character of y, Y, t, T, e, E or 1, or "on", is true; n, N, f, F, d, D or 0,
     * or "off", is false; a bare {@code module.sig_enforce} is true; anything else is refused by the kernel, which
     * keeps the default (off: this model is built without {@code CONFIG_MODULE_SIG_FORCE}).
     */
    private boolean sigEnforce() {
        return host.commandLine().get("module.sig_enforce").flatMap(ModuleTable::kstrtobool).orElse(false);
    }

    /**
     * The kernel's {@code kstrtobool}.
     *
     * @param value the text, empty for a bare flag (which {@code param_set_bool} reads as "y")
     * @return the value, or empty when the kernel would return -EINVAL
     */
    static Optional<Boolean> kstrtobool(String value) {
        String s = value.isEmpty() ? "y" : value;
        switch (s.charAt(0)) {
            case 'y', 'Y', 't', 'T', 'e', 'E', '1':
                return Optional.of(true);
            case 'n', 'N', 'f', 'F', 'd', 'D', '0':
                return Optional.of(false);
            case 'o', 'O':
                if (s.length() > 1) {
                    char c = s.charAt(1);
                    if (c == 'n' || c == 'N') {
                        return Optional.of(true);
                    }
                    if (c == 'f' || c == 'F') {
                        return Optional.of(false);
                    }
                }
                return Optional.empty();
            default:
                return Optional.empty();
        }
    }

    /**
     * The taint {@code module_augment_kernel_taints} adds for what a module is (out-of-tree, licence), once the
     * module is known to be new and before its parameters are parsed: a module refused later has tainted the
     * kernel all the same.
     */
    private void taintForModinfo(String name, ModuleInfo info, LoadFacts facts, List<TaintFlag> flags) {
        if (!info.inTree()) {
            if (!host.taint().isSet(TaintFlag.OOT_MODULE)) {
                host.log().log(LogLevel.WARNING, name + ": loading out-of-tree module taints kernel.");
            }
            host.taint().add(TaintFlag.OOT_MODULE, name, "out-of-tree module loaded from " + facts.origin());
            flags.add(TaintFlag.OOT_MODULE);
        }
        if (!info.licenseIsGplCompatible()) {
            if (!host.taint().isSet(TaintFlag.PROPRIETARY_MODULE)) {
                host.log().log(LogLevel.WARNING, name + ": module license '" + info.license() + "' taints kernel.");
            }
            host.taint().add(TaintFlag.PROPRIETARY_MODULE, name, "module license '" + info.license() + "'");
            flags.add(TaintFlag.PROPRIETARY_MODULE);
        }
    }

    /** The unsigned-module taint, the last one {@code module_augment_kernel_taints} adds. */
    private void taintForSignature(String name, LoadFacts facts, List<TaintFlag> flags) {
        if (!facts.signed()) {
            if (!unsignedNoticed) {
                unsignedNoticed = true;
                host.log().log(LogLevel.NOTICE, name + ": module verification failed: signature and/or required"
                        + " key missing - tainting kernel");
            }
            host.taint().add(TaintFlag.UNSIGNED_MODULE, name, "unsigned module loaded from " + facts.origin());
            flags.add(TaintFlag.UNSIGNED_MODULE);
        }
    }

    /**
     * The command line's {@code <module>.<param>} words the module declares. The others are dropped with the
     * warning of Linux v6.12's {@code unknown_module_param_cb} (kernel/module/main.c): the module loads
     * without them, where a parameter given with the load itself is refused.
     */
    private Map<String, String> declaredOnly(String module, ModuleInfo info, Map<String, String> words) {
        Map<String, String> out = new LinkedHashMap<>();
        words.forEach((param, value) -> {
            if (info.parameters().stream().anyMatch(p -> p.name().replace('-', '_')
                    .equals(param.replace('-', '_')))) {
                out.put(param, value);
            } else {
                host.log().log(LogLevel.WARNING, module + ": unknown parameter '" + param + "' ignored");
            }
        });
        return out;
    }

    /**
     * @param listener told of every module state change from now on
     */
    public void addListener(ModuleListener listener) {
        listeners.add(listener);
    }

    /**
     * @param listener a listener to drop
     */
    public void removeListener(ModuleListener listener) {
        listeners.remove(listener);
    }

    private void setState(LoadedModule module, ModuleState to) {
        ModuleState from = module.state();
        module.setState(to);
        fire(module, from, to);
    }

    /** Tells every listener; one that throws is logged and does not stop the others or the state change. */
    private void fire(LoadedModule module, ModuleState from, ModuleState to) {
        for (ModuleListener l : listeners) {
            try {
                l.stateChanged(module, from, to);
            } catch (RuntimeException e) {
                host.log().log(LogLevel.ERR, module.name() + ": module listener " + l.getClass().getName()
                        + " failed on " + from + " -> " + to + ": " + e);
            }
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
            if (module.references() > 0) {
                throw new IommuException(Errno.EAGAIN, "Module " + module.name() + " is in use");
            }
            // exact: new DMA-API calls through its ops wait from here on, and every mapping still live through
            // them (a hot-removed device's too) or call in flight is counted; if any, nothing has changed
            if (host.dma().retire(module) != 0) { // the kernel's words: the count is DmaApi.liveMappings
                throw new IommuException(Errno.EAGAIN, "Module " + module.name() + " is in use");
            }
            setState(module, ModuleState.GOING);
            try {
                module.backend().stop();
            } finally {
                removeRegistrations(module, true);
                setState(module, ModuleState.UNLOADED);
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
