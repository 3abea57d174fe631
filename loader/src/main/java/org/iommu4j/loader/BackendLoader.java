package org.iommu4j.loader;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.MalformedURLException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Enumeration;
import java.util.IdentityHashMap;
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
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.zip.ZipException;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.LoadFacts;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.module.ModuleState;
import org.iommu4j.loader.BackendLoadException.Kind;

/**
 * Finds backends and loads them by name onto hosts, as {@code modprobe} does for kernel modules.
 *
 * <p>In-tree backends are the {@link BackendProvider}s on the application class path. Out-of-tree backends
 * live in plugin directories, one per sub-directory or jar, each in its own {@link PluginClassLoader}. A
 * plugin's jar manifest must carry the API it was built for ({@value ApiVersion#MANIFEST_ATTRIBUTE}) and may
 * name the backend ({@value #NAME_ATTRIBUTE}); a plugin without the API attribute is reported as broken, and
 * one built for another API major version is refused, both without being instantiated. Class-path backends
 * are checked the same way when their jar's manifest carries the attribute (the in-tree jars do), and by
 * their metadata otherwise. One broken plugin is reported and hides nothing else; two backends with one name
 * are both reported, with their classes and jars, and neither is loaded.
 *
 * <p>Unload through the loader: a plugin's class loader is closed, and dropped, once no host has its
 * backend loaded, so that it can be collected.
 */
public final class BackendLoader implements AutoCloseable {
    /** The manifest attribute that names the backend in a plugin jar. */
    public static final String NAME_ATTRIBUTE = "Iommu4j-Backend-Name";
    private static final String CLASS_PATH = "class path";
    private static final List<String> SHARED_PACKAGES = List.of("org.iommu4j.api.");
    private static final String SERVICES = "META-INF/services/" + BackendProvider.class.getName();
    /** The services file named in a {@link ServiceConfigurationError} about a parse or read failure. */
    private static final Pattern SERVICES_URL = Pattern.compile("(\\S+?)(?:!/|/)"
            + Pattern.quote(SERVICES));
    /** The provider class named in a {@link ServiceConfigurationError}: "Provider x.Y not found". */
    private static final Pattern PROVIDER_CLASS = Pattern.compile("Provider (\\S+) ");
    /** The whole message of a {@link ServiceConfigurationError} about a listed class that is missing or unfit. */
    private static final Pattern UNFIT_PROVIDER = Pattern.compile(Pattern.quote(BackendProvider.class.getName())
            + ": Provider (\\S+) (not found|not a subtype)");

    private final LoaderConfig config;
    private List<Found> found;
    private List<BrokenPlugin> broken;
    private final Map<String, Plugin> livePlugins = new LinkedHashMap<>();
    /** The plugin each module loaded from one came from, per host (a module belongs to one host). */
    private final Map<LoadedModule, Plugin> loadedFrom = new IdentityHashMap<>();

    /**
     * A backend the scan found, with what is needed to load it.
     *
     * @param location the jar (or plugin) it came from, for messages: the plugin's path, or for a class-path
     *     backend its class's code source ({@code class path} when unknown)
     */
    private record Found(BackendCandidate candidate, BackendProvider provider, Plugin plugin, String location) {
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
            loadedFrom.put(m, plugin);
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
        // the plugin recorded at load: the jar may be gone from the plugin directory by now
        Plugin plugin = loadedFrom.get(m);
        try {
            inContext(plugin, () -> {
                host.modules().remove(name);
                return null;
            });
        } finally {
            // gone even when its exit failed (the kernel removes it all the same); still there when in use
            reapUnloaded();
        }
    }

    /** Forgets modules no longer loaded (unloaded here, or removed from their host directly). */
    private void reapUnloaded() {
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
                    + matches.stream().map(f -> f.candidate().className() + " (" + f.location() + ")")
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
        reapUnloaded();
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
                bad.add(new BrokenPlugin(plugin == null ? classPathCulprit(e) : origin,
                        serviceError(e, plugin == null ? "on the class path" : "in the plugin's jars")));
                continue;
            }
            String location = plugin == null ? codeSource(p.type()) : origin;
            if (plugin == null && refusedByManifest(p.type(), location, out, bad)) {
                continue;
            }
            try {
                BackendProvider provider = inContext(plugin, p::get);
                ModuleInfo info = inContext(plugin, provider::info);
                String refusal = info.apiVersions().contains(ApiVersion.CURRENT) ? null
                        : incompatible(info.name(), info.apiVersions().min(), "accepts " + info.apiVersions());
                out.add(new Found(new BackendCandidate(ModuleInfo.normalizeName(info.name()), p.type().getName(),
                        origin, plugin == null, plugin == null || plugin.signed, info, refusal),
                        refusal == null ? provider : null, plugin, location));
            } catch (ServiceConfigurationError | RuntimeException | LinkageError e) {
                Throwable cause = e.getCause() != null ? e.getCause() : e;
                bad.add(new BrokenPlugin(plugin == null ? location : origin, p.type().getName()
                        + " could not be instantiated: " + cause));
            }
        }
        if (plugin != null && out.size() == before && bad.stream().noneMatch(b -> b.path().equals(origin))) {
            bad.add(new BrokenPlugin(origin, "lists no " + BackendProvider.class.getName()
                    + " in META-INF/services"));
        }
    }

    /**
     * The API check of a class-path provider before it is instantiated, from the manifest of the jar its class
     * came from; a jar without the attribute (or a class directory) is checked by its metadata instead.
     *
     * @return whether the provider was refused (or its attribute is invalid) and must not be instantiated
     */
    private static boolean refusedByManifest(Class<?> type, String location, List<Found> out,
            List<BrokenPlugin> bad) {
        Attributes manifest = jarManifest(location);
        String apiText = manifest == null ? null : manifest.getValue(ApiVersion.MANIFEST_ATTRIBUTE);
        if (apiText == null) {
            return false;
        }
        ApiVersion built;
        try {
            built = ApiVersion.parse(apiText);
        } catch (IllegalArgumentException e) {
            bad.add(new BrokenPlugin(location, type.getName() + ": " + ApiVersion.MANIFEST_ATTRIBUTE + ": "
                    + e.getMessage()));
            return true;
        }
        if (built.major() == ApiVersion.CURRENT.major()) {
            return false;
        }
        String name = Optional.ofNullable(manifest.getValue(NAME_ATTRIBUTE))
                .orElse(Path.of(location).getFileName().toString().replaceFirst("\\.jar$", ""));
        out.add(new Found(new BackendCandidate(ModuleInfo.normalizeName(name), type.getName(), CLASS_PATH, true,
                true, null, incompatible(name, built, "major " + built.major())), null, null, location));
        return true;
    }

    /** @return the main attributes of the jar at {@code location}, or null if it is not a readable jar */
    private static Attributes jarManifest(String location) {
        if (!location.endsWith(".jar")) {
            return null;
        }
        try {
            Path jar = Path.of(location);
            if (!Files.isRegularFile(jar)) {
                return null;
            }
            try (JarFile f = new JarFile(jar.toFile())) {
                Manifest m = f.getManifest();
                return m == null ? null : m.getMainAttributes();
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /** @return the jar or directory a class was loaded from, or {@code class path} when it cannot be told */
    private static String codeSource(Class<?> type) {
        try {
            java.security.CodeSource cs = type.getProtectionDomain().getCodeSource();
            return cs == null || cs.getLocation() == null ? CLASS_PATH : location(cs.getLocation());
        } catch (SecurityException e) {
            return CLASS_PATH;
        }
    }

    /** @return a file URL as a path; any other URL as it is written */
    private static String location(URL url) {
        if ("file".equals(url.getProtocol())) {
            try {
                return Path.of(url.toURI()).toString();
            } catch (URISyntaxException | IllegalArgumentException e) {
                return url.toString();
            }
        }
        return url.toString();
    }

    /**
     * A {@link ServiceConfigurationError} as a person can act on it: a listed provider class that is missing or
     * does not implement the interface is named with the file that lists it and what to change; any other error
     * (a malformed or unreadable services file, whose message names the file and line) keeps the JDK's text.
     */
    private static String serviceError(ServiceConfigurationError e, String where) {
        String message = e.getMessage() == null ? e.toString() : e.getMessage();
        Matcher m = UNFIT_PROVIDER.matcher(message);
        if (!m.matches()) {
            return message;
        }
        String problem = m.group(2).equals("not found") ? "but no class of that name is " + where
                : "but that class does not implement " + BackendProvider.class.getName();
        return SERVICES + " lists " + m.group(1) + ", " + problem + "; correct the entry to the fully qualified name"
                + " of the public class implementing " + BackendProvider.class.getName() + ", or add that class";
    }

    /**
     * The jar a broken class-path entry came from, as far as the error tells: a parse or read error names the
     * services file; a missing or unfit provider class is looked up in the services files that list it.
     *
     * @return the jar(s), or {@code class path} when the error names none
     */
    private String classPathCulprit(ServiceConfigurationError e) {
        String message = e.getMessage() == null ? "" : e.getMessage();
        Matcher url = SERVICES_URL.matcher(message);
        if (url.find()) {
            return servicesFileOwner(url.group(1));
        }
        Matcher provider = PROVIDER_CLASS.matcher(message);
        if (provider.find()) {
            List<String> listing = new ArrayList<>();
            try {
                Enumeration<URL> files = config.applicationLoader().getResources(SERVICES);
                while (files.hasMoreElements()) {
                    URL file = files.nextElement();
                    if (lists(file, provider.group(1))) {
                        String s = file.toString();
                        String owner = servicesFileOwner(s.substring(0, s.length() - SERVICES.length() - 1)
                                .replaceFirst("!$", ""));
                        if (!listing.contains(owner)) {
                            listing.add(owner);
                        }
                    }
                }
            } catch (IOException | RuntimeException ignored) {
                // what the error names is all there is
            }
            if (!listing.isEmpty()) {
                return String.join(" and ", listing);
            }
        }
        return CLASS_PATH;
    }

    /** @return {@code jar:file:/x.jar} or {@code file:/dir} as a path */
    private static String servicesFileOwner(String url) {
        String u = url.startsWith("jar:") ? url.substring(4) : url;
        try {
            return location(new URL(u));
        } catch (MalformedURLException ex) {
            return u;
        }
    }

    /** @return whether a services file lists the class (comments and blanks aside) */
    private static boolean lists(URL servicesFile, String className) {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(servicesFile.openStream(),
                StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                int hash = line.indexOf('#');
                if ((hash < 0 ? line : line.substring(0, hash)).strip().equals(className)) {
                    return true;
                }
            }
        } catch (IOException e) {
            return false;
        }
        return false;
    }

    private static String incompatible(String name, ApiVersion built, String what) {
        return ModuleInfo.normalizeName(name) + ": disagrees about version of symbol module_layout: built for"
                + " iommu4j API " + built + " (" + what + "), but this host runs API " + ApiVersion.CURRENT;
    }

    /** Why a plugin without the API attribute is refused, and how to fix it. */
    static String missingApiVersion() {
        return "no " + ApiVersion.MANIFEST_ATTRIBUTE + " attribute in its jar manifest, so the API it was built for"
                + " cannot be checked without instantiating it; add '" + ApiVersion.MANIFEST_ATTRIBUTE + ": "
                + ApiVersion.CURRENT + "' (the iommu4j API it is compiled against) to the main section of its"
                + " META-INF/MANIFEST.MF (with Maven: <manifestEntries><" + ApiVersion.MANIFEST_ATTRIBUTE + ">"
                + ApiVersion.CURRENT + "</" + ApiVersion.MANIFEST_ATTRIBUTE + "></manifestEntries> in the"
                + " maven-jar-plugin's archive configuration)";
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
        // checked before any class of the plugin is loaded: a plugin must say which API it was built for
        String apiText = manifest.getValue(ApiVersion.MANIFEST_ATTRIBUTE);
        if (apiText == null) {
            bad.add(new BrokenPlugin(path.toString(), missingApiVersion()));
            return;
        }
        try {
            ApiVersion built = ApiVersion.parse(apiText);
            if (built.major() != ApiVersion.CURRENT.major()) {
                String name = Optional.ofNullable(manifest.getValue(NAME_ATTRIBUTE))
                        .orElse(path.getFileName().toString().replaceFirst("\\.jar$", ""));
                out.add(new Found(new BackendCandidate(ModuleInfo.normalizeName(name), "(not instantiated)",
                        path.toString(), false, false, null, incompatible(name, built, "major " + built.major())),
                        null, null, path.toString()));
                return;
            }
        } catch (IllegalArgumentException e) {
            bad.add(new BrokenPlugin(path.toString(), e.getMessage()));
            return;
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

    /**
     * The plugin's backend name and API version: each the first found in its jars' manifests (a plugin of
     * several jars declares them in any one, usually the provider's).
     *
     * @return the two attributes, either absent; or null when the plugin holds no jar or an unreadable one
     */
    private static Attributes manifest(List<Path> jars, List<BrokenPlugin> bad, Path plugin) {
        if (jars.isEmpty()) {
            bad.add(new BrokenPlugin(plugin.toString(), "holds no jar"));
            return null;
        }
        Attributes merged = new Attributes();
        for (Path jar : jars) {
            try (JarFile f = new JarFile(jar.toFile())) {
                Manifest m = f.getManifest();
                Attributes a = m == null ? new Attributes() : m.getMainAttributes();
                for (String name : List.of(NAME_ATTRIBUTE, ApiVersion.MANIFEST_ATTRIBUTE)) {
                    if (merged.getValue(name) == null && a.getValue(name) != null) {
                        merged.putValue(name, a.getValue(name));
                    }
                }
            } catch (ZipException e) {
                bad.add(new BrokenPlugin(jar.toString(), "not a readable jar: " + e.getMessage() + " (the file is not"
                        + " a zip archive, or it is truncated or corrupt; build the jar again or copy it again)"));
                return null;
            } catch (IOException e) {
                bad.add(new BrokenPlugin(jar.toString(), "not a readable jar: " + e));
                return null;
            }
        }
        return merged;
    }

    /** Closes every plugin class loader. */
    @Override
    public synchronized void close() {
        for (Plugin p : new ArrayList<>(livePlugins.values())) {
            release(p);
        }
        loadedFrom.clear();
    }
}
