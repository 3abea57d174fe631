package org.iommu4j.loader;

import java.io.IOException;
import java.net.MalformedURLException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.function.Supplier;
import java.util.jar.Attributes;
import java.util.jar.JarFile;
import java.util.jar.Manifest;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.LoadFacts;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.loader.BackendLoadException.Kind;

/**
 * Finds backends and loads them by name onto hosts, as {@code modprobe} does for kernel modules.
 *
 * <p>In-tree backends are the {@link BackendProvider}s on the application class path. Out-of-tree backends
 * live in plugin directories, one per sub-directory or jar, each in its own {@link PluginClassLoader}. A
 * plugin jar's manifest may name the backend ({@value #NAME_ATTRIBUTE}) and the API it was built for
 * ({@value ApiVersion#MANIFEST_ATTRIBUTE}); a plugin built for another API major version is refused without
 * being instantiated. One broken plugin is reported and hides nothing else; two backends with one name are
 * both reported and neither is loaded.
 *
 * <p>Unload through the loader: a plugin's class loader is closed, and dropped, once no host has its
 * backend loaded, so that it can be collected.
 */
public final class BackendLoader implements AutoCloseable {
    /** The manifest attribute that names the backend in a plugin jar. */
    public static final String NAME_ATTRIBUTE = "Iommu4j-Backend-Name";
    private static final String CLASS_PATH = "class path";
    private static final List<String> SHARED_PACKAGES = List.of("org.iommu4j.api.");

    private final LoaderConfig config;
    private List<Found> found;
    private List<BrokenPlugin> broken;
    private final Map<String, Plugin> livePlugins = new LinkedHashMap<>();

    /** A backend the scan found, with what is needed to load it. */
    private record Found(BackendCandidate candidate, BackendProvider provider, Plugin plugin) {
    }

    /** An out-of-tree plugin: its class loader and how many hosts have its backend loaded. */
    private static final class Plugin {
        final Path path;
        final PluginClassLoader loader;
        final boolean signed;
        int loads;

        Plugin(Path path, PluginClassLoader loader, boolean signed) {
            this.path = path;
            this.loader = loader;
            this.signed = signed;
        }
    }

    /**
     * @param config where to look and whom to trust
     */
    public BackendLoader(LoaderConfig config) {
        this.config = config;
    }

    /** @return where the loader looks, for messages: {@code class path} and each plugin directory */
    public List<String> searched() {
        List<String> out = new ArrayList<>();
        if (config.applicationLoader() != null) {
            out.add(CLASS_PATH);
        }
        config.pluginDirectories().forEach(d -> out.add(d.toString()));
        return out;
    }

    /** @return every backend found, loadable or not, by name */
    public synchronized List<BackendCandidate> backends() {
        return scan().stream().map(Found::candidate)
                .sorted(java.util.Comparator.comparing(BackendCandidate::name).thenComparing(BackendCandidate::origin))
                .toList();
    }

    /** @return the plugins that could not be read */
    public synchronized List<BrokenPlugin> broken() {
        scan();
        return List.copyOf(broken);
    }

    /**
     * @param name a backend name ({@code -} and {@code _} are the same)
     * @return the backend, if exactly one has the name
     */
    public synchronized Optional<BackendCandidate> find(String name) {
        List<Found> matches = named(name);
        return matches.size() == 1 ? Optional.of(matches.get(0).candidate()) : Optional.empty();
    }

    /**
     * @param name a backend name
     * @return its provider, for wiring (Guice)
     * @throws BackendLoadException when there is not exactly one loadable backend of that name
     */
    public synchronized BackendProvider provider(String name) {
        return require(name, null).provider();
    }

    /**
     * {@code modinfo}: the backend's metadata as the kernel's tool prints it.
     *
     * @param name a backend name
     * @return the lines, {@code field: value}
     */
    public synchronized String modinfo(String name) {
        Found f = requireFound(name, null);
        BackendCandidate c = f.candidate();
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
        List<Found> order = new ArrayList<>();
        resolve(name, new ArrayDeque<>(), order, host);
        LoadedModule result = null;
        for (Found f : order) {
            boolean requested = f == order.get(order.size() - 1);
            LoadedModule m = insert(host, f, requested ? parameters : Map.of());
            for (String dep : f.candidate().info().depends()) {
                host.modules().require(dep).addHolder(m);
            }
            result = m;
        }
        return result;
    }

    /** Depth first: dependencies not yet loaded on the host, then the backend; cycles and gaps fail first. */
    private void resolve(String name, Deque<String> chain, List<Found> order, Host host) {
        String norm = ModuleInfo.normalizeName(name);
        if (chain.contains(norm)) {
            List<String> cycle = new ArrayList<>(chain);
            java.util.Collections.reverse(cycle);
            cycle.add(norm);
            throw new BackendLoadException(Kind.DEPENDENCY_CYCLE, "dependency cycle: " + String.join(" -> ", cycle));
        }
        Found f = requireFound(name, chain.isEmpty() ? null : new ArrayList<>(chain));
        if (f.provider() == null) {
            throw new BackendLoadException(Kind.INCOMPATIBLE, f.candidate().refusal());
        }
        chain.push(norm);
        for (String dep : f.candidate().info().depends()) {
            if (host.modules().find(dep).isEmpty() && order.stream().noneMatch(o -> o.candidate().name()
                    .equals(ModuleInfo.normalizeName(dep)))) {
                resolve(dep, chain, order, host);
            }
        }
        chain.pop();
        order.add(f);
    }

    private LoadedModule insert(Host host, Found f, Map<String, String> parameters) {
        Plugin plugin = f.plugin();
        LoadFacts facts = new LoadFacts(f.candidate().origin(), plugin == null || plugin.signed,
                plugin == null ? null : plugin.loader);
        LoadedModule m = inContext(plugin, () -> host.modules().insert(f.provider(), parameters, facts));
        if (plugin != null) {
            plugin.loads++;
        }
        return m;
    }

    /**
     * Unloads a backend from a host; a plugin whose backend no host has loaded any more is closed and
     * forgotten, and found afresh by the next scan.
     *
     * @param host the host
     * @param name the backend's name
     * @throws org.iommu4j.api.IommuException the kernel's refusal, "Module x is in use"
     */
    public synchronized void unload(Host host, String name) {
        LoadedModule m = host.modules().require(name);
        Found f = scan().stream().filter(x -> x.candidate().name().equals(m.name())
                && x.candidate().origin().equals(m.origin())).findFirst().orElse(null);
        Plugin plugin = f == null ? null : f.plugin();
        inContext(plugin, () -> {
            host.modules().remove(name);
            return null;
        });
        if (plugin != null && --plugin.loads == 0) {
            release(plugin);
        }
    }

    private void release(Plugin plugin) {
        livePlugins.remove(plugin.path.toString());
        found = null;
        broken = null;
        try {
            plugin.loader.close();
        } catch (IOException e) {
            // the jar stays open until the JVM exits; nothing else depends on it
        }
    }

    private static <T> T inContext(Plugin plugin, Supplier<T> call) {
        if (plugin == null) {
            return call.get();
        }
        Thread t = Thread.currentThread();
        ClassLoader previous = t.getContextClassLoader();
        t.setContextClassLoader(plugin.loader);
        try {
            return call.get();
        } finally {
            t.setContextClassLoader(previous);
        }
    }

    private Found require(String name, List<String> chain) {
        Found f = requireFound(name, chain);
        if (f.provider() == null) {
            throw new BackendLoadException(Kind.INCOMPATIBLE, f.candidate().refusal());
        }
        return f;
    }

    private Found requireFound(String name, List<String> dependents) {
        List<Found> matches = named(name);
        String norm = ModuleInfo.normalizeName(name);
        if (matches.isEmpty()) {
            List<String> available = scan().stream().map(f -> f.candidate().name()).distinct().sorted().toList();
            if (dependents != null) {
                List<String> chain = new ArrayList<>(dependents);
                java.util.Collections.reverse(chain);
                chain.add(norm);
                throw new BackendLoadException(Kind.MISSING_DEPENDENCY, chain.get(chain.size() - 2) + " depends on "
                        + norm + ", which was not found (chain: " + String.join(" -> ", chain) + "). Available: "
                        + available + ". Searched: " + searched());
            }
            throw new BackendLoadException(Kind.UNKNOWN, "No backend named '" + name + "'. Available: " + available
                    + ". Searched: " + searched());
        }
        if (matches.size() > 1) {
            throw new BackendLoadException(Kind.DUPLICATE, "Duplicate backend '" + norm + "': provided by "
                    + matches.stream().map(f -> f.candidate().className() + " (" + f.candidate().origin() + ")")
                    .collect(Collectors.joining(" and ")) + "; remove all but one");
        }
        return matches.get(0);
    }

    private List<Found> named(String name) {
        String norm = ModuleInfo.normalizeName(name);
        return scan().stream().filter(f -> f.candidate().name().equals(norm)).toList();
    }

    /** Forgets the scan (except plugins whose backend is loaded somewhere) so the next call looks again. */
    public synchronized void rescan() {
        for (Plugin p : new ArrayList<>(livePlugins.values())) {
            if (p.loads == 0) {
                release(p);
            }
        }
        found = null;
        broken = null;
    }

    private List<Found> scan() {
        if (found != null) {
            return found;
        }
        List<Found> out = new ArrayList<>();
        List<BrokenPlugin> bad = new ArrayList<>();
        if (config.applicationLoader() != null) {
            scanProviders(ServiceLoader.load(BackendProvider.class, config.applicationLoader()), CLASS_PATH, null,
                    out, bad);
        }
        for (Path dir : config.pluginDirectories()) {
            List<Path> entries;
            try (Stream<Path> s = Files.list(dir)) {
                entries = s.sorted().toList();
            } catch (IOException e) {
                bad.add(new BrokenPlugin(dir.toString(), "cannot list the plugin directory: " + e));
                continue;
            }
            for (Path entry : entries) {
                if (Files.isDirectory(entry) || entry.toString().endsWith(".jar")) {
                    scanPlugin(entry, out, bad);
                }
            }
        }
        found = out;
        broken = bad;
        return found;
    }

    private void scanProviders(ServiceLoader<BackendProvider> services, String origin, Plugin plugin,
            List<Found> out, List<BrokenPlugin> bad) {
        Iterator<ServiceLoader.Provider<BackendProvider>> it = services.stream().iterator();
        int before = out.size();
        while (true) {
            ServiceLoader.Provider<BackendProvider> p;
            try {
                if (!it.hasNext()) {
                    break;
                }
                p = it.next();
            } catch (ServiceConfigurationError e) {
                bad.add(new BrokenPlugin(origin, e.getMessage()));
                continue;
            }
            try {
                BackendProvider provider = inContext(plugin, p::get);
                ModuleInfo info = inContext(plugin, provider::info);
                String refusal = info.apiVersions().contains(ApiVersion.CURRENT) ? null
                        : incompatible(info.name(), info.apiVersions().min(), "accepts " + info.apiVersions());
                out.add(new Found(new BackendCandidate(ModuleInfo.normalizeName(info.name()), p.type().getName(),
                        origin, plugin == null, plugin == null || plugin.signed, info, refusal),
                        refusal == null ? provider : null, plugin));
            } catch (ServiceConfigurationError | RuntimeException | LinkageError e) {
                Throwable cause = e.getCause() != null ? e.getCause() : e;
                bad.add(new BrokenPlugin(origin, p.type().getName() + " could not be instantiated: " + cause));
            }
        }
        if (plugin != null && out.size() == before && bad.stream().noneMatch(b -> b.path().equals(origin))) {
            bad.add(new BrokenPlugin(origin, "lists no " + BackendProvider.class.getName()
                    + " in META-INF/services"));
        }
    }

    private static String incompatible(String name, ApiVersion built, String what) {
        return ModuleInfo.normalizeName(name) + ": disagrees about version of symbol module_layout: built for"
                + " iommu4j API " + built + " (" + what + "), but this host runs API " + ApiVersion.CURRENT;
    }

    private void scanPlugin(Path path, List<Found> out, List<BrokenPlugin> bad) {
        Plugin live = livePlugins.get(path.toString());
        List<Path> jars;
        try {
            jars = Files.isDirectory(path) ? listJars(path) : List.of(path);
        } catch (IOException e) {
            bad.add(new BrokenPlugin(path.toString(), "cannot list the plugin: " + e));
            return;
        }
        Attributes manifest = manifest(jars, bad, path);
        if (manifest == null) {
            return;
        }
        String apiText = manifest.getValue(ApiVersion.MANIFEST_ATTRIBUTE);
        if (apiText != null) {
            try {
                ApiVersion built = ApiVersion.parse(apiText);
                if (built.major() != ApiVersion.CURRENT.major()) {
                    String name = Optional.ofNullable(manifest.getValue(NAME_ATTRIBUTE))
                            .orElse(path.getFileName().toString().replaceFirst("\\.jar$", ""));
                    out.add(new Found(new BackendCandidate(ModuleInfo.normalizeName(name), "(not instantiated)",
                            path.toString(), false, false, null, incompatible(name, built, "major " + built.major())),
                            null, null));
                    return;
                }
            } catch (IllegalArgumentException e) {
                bad.add(new BrokenPlugin(path.toString(), e.getMessage()));
                return;
            }
        }
        Plugin plugin = live;
        if (plugin == null) {
            URL[] urls = new URL[jars.size()];
            try {
                for (int i = 0; i < urls.length; i++) {
                    urls[i] = jars.get(i).toUri().toURL();
                }
            } catch (MalformedURLException e) {
                bad.add(new BrokenPlugin(path.toString(), e.toString()));
                return;
            }
            boolean signed = jars.stream().allMatch(j -> JarSignatures.signedByTrustedKey(j,
                    config.trustedCertificates()));
            plugin = new Plugin(path, new PluginClassLoader("plugin:" + path.getFileName(), urls,
                    BackendProvider.class.getClassLoader(), SHARED_PACKAGES), signed);
            livePlugins.put(path.toString(), plugin);
        }
        scanProviders(ServiceLoader.load(BackendProvider.class, plugin.loader), path.toString(), plugin, out, bad);
    }

    private static List<Path> listJars(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".jar")).sorted().toList();
        }
    }

    /** The main attributes of the first jar that names a backend or an API version, or of the first jar. */
    private static Attributes manifest(List<Path> jars, List<BrokenPlugin> bad, Path plugin) {
        if (jars.isEmpty()) {
            bad.add(new BrokenPlugin(plugin.toString(), "holds no jar"));
            return null;
        }
        Attributes first = null;
        for (Path jar : jars) {
            try (JarFile f = new JarFile(jar.toFile())) {
                Manifest m = f.getManifest();
                Attributes a = m == null ? new Attributes() : m.getMainAttributes();
                if (a.getValue(NAME_ATTRIBUTE) != null || a.getValue(ApiVersion.MANIFEST_ATTRIBUTE) != null) {
                    return a;
                }
                if (first == null) {
                    first = a;
                }
            } catch (IOException e) {
                bad.add(new BrokenPlugin(jar.toString(), "not a readable jar: " + e.getMessage()));
                return null;
            }
        }
        return first;
    }

    /** Closes every plugin class loader. */
    @Override
    public synchronized void close() {
        for (Plugin p : new ArrayList<>(livePlugins.values())) {
            release(p);
        }
    }
}
