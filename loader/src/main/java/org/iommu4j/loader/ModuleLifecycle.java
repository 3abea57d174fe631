package org.iommu4j.loader;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.LogLevel;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.LoadFacts;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.module.ModuleState;
import org.iommu4j.kernel.vfio.Vfio;

/**
 * The load/unload lifecycle, PF4J's {@code PluginLoader}/{@code PluginManager} state: inserting a described
 * backend into a host with what the loader decided (its metadata as read once, signed or not), unloading it,
 * and keeping a plugin's class loader open exactly while some host has its backend loaded.
 *
 * <p>Unload unbinds first: devices bound to vfio-pci or vfio-platform whose group this backend provides are
 * unbound before the module goes, as removing a driver module unbinds its devices, and the result lists them.
 * While any of them is open, or DMA-API mappings of the backend are live, the unload is refused before anything
 * changes, naming each holder. A {@code stop()} that throws is logged; the module is removed all the same, once,
 * and the result says what it threw.
 */
final class ModuleLifecycle {
    /** Plugins whose backend is loaded somewhere, by path: a rescan keeps them and their class loaders. */
    final Map<String, Plugin> livePlugins = new LinkedHashMap<>();
    /** The plugin each module loaded from one came from (a module belongs to one host). */
    private final Map<LoadedModule, Plugin> loadedFrom = new IdentityHashMap<>();
    private final Runnable pluginReleased;

    /** @param pluginReleased told when a plugin's class loader is closed, so the next scan reads it afresh */
    ModuleLifecycle(Runnable pluginReleased) {
        this.pluginReleased = pluginReleased;
    }

    LoadedModule insert(Host host, BackendDescriptor d, Map<String, String> parameters) {
        Plugin plugin = d.plugin();
        LoadFacts facts = new LoadFacts(d.origin(), d.signed(), plugin == null ? null : plugin.loader, d.info());
        LoadedModule m = DescriptorReader.inContext(plugin, () -> host.modules().insert(d.provider(), parameters,
                facts));
        if (plugin != null) {
            plugin.loads++;
            livePlugins.put(plugin.path.toString(), plugin);
            loadedFrom.put(m, plugin);
        }
        return m;
    }

    UnloadResult unload(Host host, String name) {
        LoadedModule m = host.modules().require(name);
        Plugin plugin = loadedFrom.get(m);
        host.configLock().lock();
        try {
            List<BusDevice> devices = vfioDevicesOf(host, m);
            if (m.holders().isEmpty()) {
                refuseWhileHeld(host, m, devices);
            }
            List<String> unbound = new ArrayList<>();
            if (m.holders().isEmpty()) {
                for (BusDevice d : devices) {
                    String driver = d.driver();
                    host.vfio().unbind(d.name());
                    host.log().log(LogLevel.INFO, m.name() + ": unbound " + d.name() + " from " + driver
                            + " before unloading the module that provides its iommu group");
                    unbound.add(d.name());
                }
            }
            String exitFailure = null;
            try {
                DescriptorReader.inContext(plugin, () -> {
                    host.modules().remove(name);
                    return null;
                });
            } catch (RuntimeException e) {
                if (m.state() != ModuleState.UNLOADED) {
                    throw e;
                }
                exitFailure = e.toString();
                host.log().log(LogLevel.ERR, m.name() + ": exit failed: " + e + "; the module was removed all the"
                        + " same");
            }
            return new UnloadResult(m.name(), unbound, exitFailure);
        } finally {
            host.configLock().unlock();
            reapUnloaded();
        }
    }

    /** Refuses, naming each holder, while a user has one of the module's VFIO devices open or DMA is mapped. */
    private static void refuseWhileHeld(Host host, LoadedModule m, List<BusDevice> devices) {
        List<String> holders = new ArrayList<>();
        int openGroups = 0;
        for (BusDevice d : devices) {
            Group g = d.group();
            var opener = host.vfio().openerOf(g.id());
            if (opener.isPresent()) {
                openGroups++;
                holders.add(host.vfio().nodeOf(g.id()).orElse("group " + g.id()) + " (" + d.name() + ") open by "
                        + opener.get());
            }
        }
        long live = host.dma().liveMappings(m);
        if (live > 0) {
            holders.add(live + " live DMA-API mapping" + (live == 1 ? "" : "s"));
        }
        int other = m.references() - openGroups;
        if (other > 0) {
            holders.add(other + " more reference" + (other == 1 ? "" : "s") + " (an open VFIO container using its"
                    + " iommu driver, or another try_module_get)");
        }
        if (!holders.isEmpty()) {
            throw new IommuException(Errno.EAGAIN, "Module " + m.name() + " is in use by: "
                    + String.join("; ", holders) + "; nothing was unbound or unloaded");
        }
    }

    /**
     * The devices bound to VFIO whose iommu group the module provides: through its IOMMU ops for their bus, or
     * (a group without ops, not isolated) through a VFIO iommu driver it registered that provides groups.
     */
    private static List<BusDevice> vfioDevicesOf(Host host, LoadedModule m) {
        boolean registersVfio = host.vfioDrivers().all().stream().anyMatch(r -> r.owner().name().equals(m.name()));
        List<BusDevice> out = new ArrayList<>();
        for (BusDevice d : host.buses().all()) {
            Group g = d.group();
            if (g == null || !(Vfio.PCI_DRIVER.equals(d.driver()) || Vfio.PLATFORM_DRIVER.equals(d.driver()))) {
                continue;
            }
            boolean byOps = g.ops() != null && host.iommu().opsOwner(d.bus())
                    .map(o -> o.name().equals(m.name())).orElse(false);
            boolean provided = g.ops() == null && !g.isolated() && registersVfio;
            if (byOps || provided) {
                out.add(d);
            }
        }
        return out;
    }

    /** Forgets modules no longer loaded (unloaded here, or removed from their host directly). */
    void reapUnloaded() {
        for (Iterator<Map.Entry<LoadedModule, Plugin>> it = loadedFrom.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<LoadedModule, Plugin> e = it.next();
            Plugin plugin = e.getValue();
            if (e.getKey().state() == ModuleState.UNLOADED) {
                it.remove();
                if (--plugin.loads == 0) {
                    release(plugin);
                }
            }
        }
    }

    /** Closes plugins no host has loaded, other than those still described by the current scan. */
    void releaseIdle() {
        for (Plugin p : new ArrayList<>(livePlugins.values())) {
            if (p.loads == 0) {
                release(p);
            }
        }
    }

    private void release(Plugin plugin) {
        livePlugins.remove(plugin.path.toString());
        plugin.close();
        pluginReleased.run();
    }

    void close() {
        for (Plugin p : new ArrayList<>(livePlugins.values())) {
            release(p);
        }
        loadedFrom.clear();
    }
}
