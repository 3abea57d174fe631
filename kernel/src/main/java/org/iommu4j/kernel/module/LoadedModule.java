package org.iommu4j.kernel.module;

import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import org.iommu4j.api.Backend;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.params.ModuleParameterSet;

/**
 * A module loaded into a host: its metadata, parameters, state, the backend its init returned, what holds it
 * in memory (references and dependent modules) and the taint it brought (what {@code /sys/module/<m>/taint}
 * shows).
 */
public final class LoadedModule implements ModuleRef {
    private final ModuleInfo info;
    private final ModuleParameterSet parameters;
    private final String origin;
    private final AtomicInteger references = new AtomicInteger();
    private final List<LoadedModule> holders = new CopyOnWriteArrayList<>();
    private final Set<TaintFlag> taints = EnumSet.noneOf(TaintFlag.class);
    private volatile ModuleState state = ModuleState.COMING;
    private volatile Backend backend;
    private volatile ClassLoader classLoader;

    /**
     * @param info the metadata
     * @param parameters its validated parameters
     * @param origin where it was loaded from, for messages ({@code class path} or a jar's path)
     */
    public LoadedModule(ModuleInfo info, ModuleParameterSet parameters, String origin) {
        this.info = info;
        this.parameters = parameters;
        this.origin = origin;
    }

    @Override
    public String name() {
        return ModuleInfo.normalizeName(info.name());
    }

    /** @return the metadata */
    public ModuleInfo info() {
        return info;
    }

    /** @return the parameters, current values */
    public ModuleParameterSet parameters() {
        return parameters;
    }

    /** @return where it was loaded from */
    public String origin() {
        return origin;
    }

    /** @return the state */
    public ModuleState state() {
        return state;
    }

    void setState(ModuleState state) {
        this.state = state;
    }

    /** @return the running backend, or null before init finished */
    public Backend backend() {
        return backend;
    }

    void setBackend(Backend backend) {
        this.backend = backend;
    }

    /** @return the class loader the module's code came from (a plugin's own, for an out-of-tree module) */
    public ClassLoader classLoader() {
        return classLoader;
    }

    void setClassLoader(ClassLoader loader) {
        this.classLoader = loader;
    }

    @Override
    public boolean tryGet() {
        references.incrementAndGet();
        ModuleState s = state;
        if (s == ModuleState.LIVE || s == ModuleState.COMING) {
            return true;
        }
        references.decrementAndGet();
        return false;
    }

    @Override
    public void put() {
        if (references.decrementAndGet() < 0) {
            references.incrementAndGet();
            throw new IllegalStateException("module " + name() + ": put without a matching get");
        }
    }

    /** @return references taken with {@link #tryGet()} and not yet put */
    public int references() {
        return references.get();
    }

    /** @return modules that use this one, as {@code lsmod}'s "Used by" column lists them */
    public List<LoadedModule> holders() {
        return List.copyOf(holders);
    }

    /**
     * @param user a module that now depends on this one
     */
    public void addHolder(LoadedModule user) {
        if (!holders.contains(user)) {
            holders.add(user);
        }
    }

    void removeHolder(LoadedModule user) {
        holders.remove(user);
    }

    /** @return the module taint flags this module set */
    public Set<TaintFlag> taints() {
        synchronized (taints) {
            return taints.isEmpty() ? Set.of() : EnumSet.copyOf(taints);
        }
    }

    /**
     * Records a flag against this module, if it is one the kernel records per module.
     *
     * @param flag the flag
     */
    public void recordTaint(TaintFlag flag) {
        if (flag.isModuleTaint()) {
            synchronized (taints) {
                taints.add(flag);
            }
        }
    }

    /** @return the per-module taint letters in bit order, as {@code /sys/module/<m>/taint} shows them */
    public String taintLetters() {
        StringBuilder sb = new StringBuilder();
        for (TaintFlag f : taints()) {
            sb.append(f.letter());
        }
        return sb.toString();
    }

    @Override
    public String toString() {
        return name();
    }
}
