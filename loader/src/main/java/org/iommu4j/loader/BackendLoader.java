package org.iommu4j.loader;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.LoadedModule;

/**
 * Finds backends and loads them by name onto hosts, as {@code modprobe} does for kernel modules: the facade
 * applications use over discovery ({@link PluginRepository}), the descriptor ({@link DescriptorReader}),
 * resolution ({@link BackendResolver}) and the lifecycle ({@link ModuleLifecycle}).
 *
 * <p>In-tree backends are the {@link BackendProvider}s on the application class path. Out-of-tree backends
 * live in plugin directories, one per sub-directory or jar, each in its own {@link PluginClassLoader}; a
 * plugin-directory backend is out-of-tree (taint O) whatever its metadata says. A plugin's jar manifest must
 * carry the API it was built for ({@value ApiVersion#MANIFEST_ATTRIBUTE}) and may name the backend
 * ({@value #NAME_ATTRIBUTE}), which must then be its {@code info()} name; a plugin without the API attribute is
 * reported as broken, and one built for another API major version or a newer minor one is refused, both without
 * being instantiated. Each provider's {@code info()} is called once per scan and the answer kept. A plugin with
 * the name of a class-path backend overrides it (depmod's {@code updates/}); two plugins, or two class-path
 * backends, with one name are both reported and neither is loaded. One broken plugin is reported and hides
 * nothing else.
 *
 * <p>Unload through the loader: devices bound to VFIO through the backend are unbound first, and a plugin's
 * class loader is closed, and dropped, once no host has its backend loaded, so that it can be collected.
 */
public final class BackendLoader implements AutoCloseable {
    /** The manifest attribute that names the backend in a plugin jar. */
    public static final String NAME_ATTRIBUTE = "Iommu4j-Backend-Name";

    private final LoaderConfig config;
    private final PluginRepository repository;
    private final DescriptorReader reader;
    private final ModuleLifecycle lifecycle;
    private BackendResolver scan;
    private List<BrokenPlugin> broken;

    /**
     * @param config where to look and whom to trust
     */
    public BackendLoader(LoaderConfig config) {
        this.config = config;
        this.repository = new PluginRepository(config);
        this.reader = new DescriptorReader(config, repository);
        this.lifecycle = new ModuleLifecycle(this::forgetScan);
    }

    /** @return where the loader looks, for messages: {@code class path}, each plugin directory, the plugin under test */
    public List<String> searched() {
        List<String> out = new ArrayList<>();
        if (config.applicationLoader() != null) {
            out.add(PluginRepository.CLASS_PATH);
        }
        config.pluginDirectories().forEach(d -> out.add(d.toString()));
        if (config.pluginUnderTest() != null) {
            out.add(config.pluginUnderTest().toString());
        }
        return out;
    }

    /** @return every backend found, loadable or not, by name, with how it stands against others of its name */
    public synchronized List<BackendCandidate> backends() {
        return scan().candidates().stream()
                .sorted(Comparator.comparing(BackendCandidate::name).thenComparing(BackendCandidate::origin))
                .toList();
    }

    /** @return the plugins that could not be read */
    public synchronized List<BrokenPlugin> broken() {
        scan();
        return List.copyOf(broken);
    }

    /**
     * @param name a backend name ({@code -} and {@code _} are the same)
     * @return the backend loading that name would load (a plugin overriding a class-path backend of the name),
     *     or its refusal; empty when the name is unknown or a duplicate
     */
    public synchronized Optional<BackendCandidate> find(String name) {
        BackendResolver r = scan();
        return Optional.ofNullable(r.selected(name)).map(r::candidate);
    }

    /**
     * @param name a backend name
     * @return its provider, for wiring (Guice)
     * @throws BackendLoadException when there is not exactly one loadable backend of that name
     */
    public synchronized BackendProvider provider(String name) {
        BackendDescriptor d = scan().require(name, null);
        if (!d.loadable()) {
            throw new BackendLoadException(BackendLoadException.Kind.INCOMPATIBLE, d.refusal());
        }
        return d.provider();
    }

    /**
     * {@code modinfo}: the backend's metadata as the kernel's tool prints it, as the loader read it (in-tree
     * only for a class-path backend that says so).
     *
     * @param name a backend name
     * @return the lines, {@code field: value}
     */
    public synchronized String modinfo(String name) {
        BackendResolver r = scan();
        BackendDescriptor d = r.require(name, null);
        BackendCandidate c = r.candidate(d);
        StringBuilder sb = new StringBuilder();
        line(sb, "filename", c.origin());
        line(sb, "name", c.name());
        if (c.info() == null) {
            line(sb, "refused", c.refusal());
            return sb.toString();
        }
        ModuleInfo info = c.info();
        line(sb, "version", info.version());
        line(sb, "description", info.description());
        line(sb, "author", info.author());
        line(sb, "license", info.license());
        line(sb, "intree", info.inTree() ? "Y" : "N");
        line(sb, "depends", String.join(",", info.depends()));
        line(sb, "api", info.apiVersions().toString());
        line(sb, "signed", c.signed() ? "Y" : "N");
        if (c.standing() == BackendCandidate.Standing.OVERRIDES) {
            line(sb, "overrides", c.other());
        }
        for (ParameterSpec p : info.parameters()) {
            line(sb, "parm", p.modinfoLine());
        }
        return sb.toString();
    }

    private static void line(StringBuilder sb, String field, String value) {
        sb.append(String.format("%-16s%s%n", field + ":", value));
    }

    /**
     * Loads a backend onto a host, dependencies first, as {@code modprobe} does.
     *
     * @param host the host
     * @param name the backend's name ({@code -} and {@code _} are the same)
     * @param parameters its parameters for this load; dependencies get only their command-line parameters
     * @return the loaded module
     * @throws BackendLoadException for an unknown, duplicate or incompatible backend, a missing dependency or
     *     a cycle, before anything is loaded; or the kernel's refusal
     */
    public synchronized LoadedModule load(Host host, String name, Map<String, String> parameters) {
        List<BackendDescriptor> order = scan().loadOrder(name, host);
        LoadedModule result = null;
        for (BackendDescriptor d : order) {
            boolean requested = d == order.get(order.size() - 1);
            LoadedModule m = lifecycle.insert(host, d, requested ? parameters : Map.of());
            for (String dep : d.info().depends()) {
                host.modules().require(dep).addHolder(m);
            }
            result = m;
        }
        return result;
    }

    /**
     * Unloads a backend from a host. Devices bound to vfio-pci or vfio-platform whose iommu group the backend
     * provides are unbound first (as removing a driver's module unbinds its devices); while one of them is open,
     * or the backend's DMA-API mappings are live, the unload is refused and nothing changes. A {@code stop()}
     * that throws is logged, and the module is removed all the same. A plugin whose backend no host has loaded
     * any more is closed and forgotten, and found afresh by the next scan.
     *
     * @param host the host
     * @param name the backend's name
     * @return what was unbound, and what {@code stop()} threw if it threw
     * @throws org.iommu4j.api.IommuException {@link org.iommu4j.api.Errno#EAGAIN} "Module x is in use by: ..."
     *     naming the holders (modules, open VFIO groups and who opened them, live DMA-API mappings);
     *     {@link org.iommu4j.api.Errno#ENOENT} "Module x is not currently loaded"
     */
    public synchronized UnloadResult unload(Host host, String name) {
        return lifecycle.unload(host, name);
    }

    /** Forgets the scan (except plugins whose backend is loaded somewhere) so the next call looks again. */
    public synchronized void rescan() {
        lifecycle.reapUnloaded();
        lifecycle.releaseIdle();
        forgetScan();
    }

    private void forgetScan() {
        scan = null;
        broken = null;
    }

    private BackendResolver scan() {
        if (scan != null) {
            return scan;
        }
        List<BackendDescriptor> out = new ArrayList<>();
        List<BrokenPlugin> bad = new ArrayList<>();
        Set<String> underTest = repository.providersUnderTest();
        for (PluginRepository.ClassPathEntry e : repository.classPath(underTest, bad)) {
            reader.readClassPath(e, out, bad);
        }
        for (Path plugin : repository.plugins(bad)) {
            reader.readPlugin(plugin, lifecycle.livePlugins, out, bad);
        }
        if (config.pluginUnderTest() != null) {
            // the class-path copy of the backend under test (its target/classes) is not discovered beside it
            List<String> testedNames = out.stream().filter(d -> d.fromPlugin()
                    && d.origin().equals(config.pluginUnderTest().toString())).map(BackendDescriptor::name).toList();
            out.removeIf(d -> !d.fromPlugin() && testedNames.contains(d.name()));
        }
        for (BackendDescriptor d : out) {
            if (d.plugin() != null) {
                lifecycle.livePlugins.putIfAbsent(d.plugin().path.toString(), d.plugin());
            }
        }
        scan = new BackendResolver(out, searched());
        broken = bad;
        return scan;
    }

    /** Closes every plugin class loader. */
    @Override
    public synchronized void close() {
        lifecycle.close();
        forgetScan();
    }
}
