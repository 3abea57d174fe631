package org.iommu4j.loader;

import java.io.IOException;
import java.net.MalformedURLException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.function.Supplier;
import java.util.jar.Attributes;
import java.util.jar.JarFile;
import java.util.jar.Manifest;
import java.util.zip.ZipException;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.ModuleInfo;

/**
 * The descriptor, PF4J's {@code PluginDescriptorFinder}: reads what a backend says about itself, once, and decides
 * what the loader can know better. The manifest is read first, before any class of a plugin is loaded: the API it
 * was built for ({@value ApiVersion#MANIFEST_ATTRIBUTE}, required of a plugin) and the backend's name
 * ({@value BackendLoader#NAME_ATTRIBUTE}). Then the provider is instantiated and its {@code info()} called once;
 * a null answer or an exception is reported as such. The answer is kept in a {@link BackendDescriptor}, with
 * {@code inTree} false for a plugin whatever it said, and checked: its API range, and its name against the
 * manifest's.
 */
final class DescriptorReader {
    private static final List<String> SHARED_PACKAGES = List.of("org.iommu4j.api.");
    private static final String NOT_INSTANTIATED = "(not instantiated)";

    private final LoaderConfig config;
    private final PluginRepository repository;

    DescriptorReader(LoaderConfig config, PluginRepository repository) {
        this.config = config;
        this.repository = repository;
    }

    /** Reads a class-path provider, refused by its jar's manifest before it is instantiated if need be. */
    void readClassPath(PluginRepository.ClassPathEntry entry, List<BackendDescriptor> out, List<BrokenPlugin> bad) {
        Class<?> type = entry.provider().type();
        String location = entry.location();
        Attributes manifest = jarManifest(location);
        String apiText = manifest == null ? null : manifest.getValue(ApiVersion.MANIFEST_ATTRIBUTE);
        String manifestName = manifest == null ? null : manifest.getValue(BackendLoader.NAME_ATTRIBUTE);
        if (apiText != null) {
            ApiVersion built;
            try {
                built = ApiVersion.parse(apiText);
            } catch (IllegalArgumentException e) {
                bad.add(new BrokenPlugin(location, type.getName() + ": " + ApiVersion.MANIFEST_ATTRIBUTE + ": "
                        + e.getMessage()));
                return;
            }
            String refusal = builtForRefusal(manifestName != null ? manifestName : fileName(location), built);
            if (refusal != null) {
                String name = manifestName != null ? manifestName : fileName(location);
                out.add(new BackendDescriptor(ModuleInfo.normalizeName(name), type.getName(),
                        PluginRepository.CLASS_PATH, location, false, true, null, refusal, null, null));
                return;
            }
        }
        BackendDescriptor d = instantiate(entry.provider(), null, PluginRepository.CLASS_PATH, location, bad);
        if (d != null && nameAgrees(manifestName, List.of(d), location, bad)) {
            out.add(d);
        }
    }

    /**
     * Reads a plugin: its manifest, then (when its API is this host's major version and no newer) each provider.
     *
     * @param live plugins whose backend is loaded somewhere, by path: read again through their class loader
     */
    void readPlugin(Path path, Map<String, Plugin> live, List<BackendDescriptor> out, List<BrokenPlugin> bad) {
        List<Path> jars;
        try {
            jars = PluginRepository.jarsOf(path);
        } catch (IOException e) {
            bad.add(new BrokenPlugin(path.toString(), "cannot list the plugin: " + e));
            return;
        }
        Attributes manifest = manifest(jars, bad, path);
        if (manifest == null) {
            return;
        }
        String apiText = manifest.getValue(ApiVersion.MANIFEST_ATTRIBUTE);
        String manifestName = manifest.getValue(BackendLoader.NAME_ATTRIBUTE);
        if (apiText == null) {
            bad.add(new BrokenPlugin(path.toString(), missingApiVersion()));
            return;
        }
        try {
            ApiVersion built = ApiVersion.parse(apiText);
            String name = manifestName != null ? manifestName : fileName(path.toString());
            String refusal = builtForRefusal(name, built);
            if (refusal != null) {
                out.add(new BackendDescriptor(ModuleInfo.normalizeName(name), NOT_INSTANTIATED, path.toString(),
                        path.toString(), true, false, null, refusal, null, null));
                return;
            }
        } catch (IllegalArgumentException e) {
            bad.add(new BrokenPlugin(path.toString(), e.getMessage()));
            return;
        }
        Plugin plugin = live.get(path.toString());
        if (plugin == null) {
            plugin = open(path, jars, bad);
            if (plugin == null) {
                return;
            }
        }
        List<BackendDescriptor> read = new ArrayList<>();
        int brokenBefore = bad.size();
        Iterator<ServiceLoader.Provider<BackendProvider>> it = ServiceLoader.load(BackendProvider.class,
                plugin.loader).stream().iterator();
        for (ServiceLoader.Provider<BackendProvider> p; (p = repository.next(it, plugin, bad)) != null; ) {
            BackendDescriptor d = instantiate(p, plugin, path.toString(), path.toString(), bad);
            if (d != null) {
                read.add(d);
            }
        }
        if (read.isEmpty()) {
            if (bad.size() == brokenBefore) {
                bad.add(new BrokenPlugin(path.toString(), "lists no " + BackendProvider.class.getName()
                        + " in META-INF/services"));
            }
            plugin.close();
            return;
        }
        if (nameAgrees(manifestName, read, path.toString(), bad)) {
            out.addAll(read);
        } else {
            plugin.close();
        }
    }

    private Plugin open(Path path, List<Path> jars, List<BrokenPlugin> bad) {
        URL[] urls = new URL[jars.size()];
        try {
            for (int i = 0; i < urls.length; i++) {
                urls[i] = jars.get(i).toUri().toURL();
            }
        } catch (MalformedURLException e) {
            bad.add(new BrokenPlugin(path.toString(), e.toString()));
            return null;
        }
        boolean signed = jars.stream().allMatch(j -> JarSignatures.signedByTrustedKey(j,
                config.trustedCertificates()));
        return new Plugin(path, jars, new PluginClassLoader("plugin:" + path.getFileName(), urls,
                BackendProvider.class.getClassLoader(), SHARED_PACKAGES), signed);
    }

    /**
     * Instantiates a provider and calls its {@code info()} once.
     *
     * @return the descriptor, or null when the provider was reported as broken
     */
    private static BackendDescriptor instantiate(ServiceLoader.Provider<BackendProvider> p, Plugin plugin,
            String origin, String location, List<BrokenPlugin> bad) {
        String className = p.type().getName();
        BackendProvider provider;
        try {
            provider = inContext(plugin, p::get);
        } catch (ServiceConfigurationError | RuntimeException | LinkageError e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            bad.add(new BrokenPlugin(location, className + " could not be instantiated: " + cause));
            return null;
        }
        ModuleInfo info;
        try {
            info = inContext(plugin, provider::info);
        } catch (RuntimeException | LinkageError e) {
            bad.add(new BrokenPlugin(location, className + ".info() threw " + e + "; info() must return the"
                    + " backend's metadata without failing"));
            return null;
        }
        if (info == null) {
            bad.add(new BrokenPlugin(location, className + ".info() returned null; it must return the backend's"
                    + " ModuleInfo (ModuleInfo.builder(name)...build())"));
            return null;
        }
        boolean fromPlugin = plugin != null;
        // where the jar came from decides: a plugin is out-of-tree whatever its metadata says
        ModuleInfo decided = fromPlugin && info.inTree() ? withInTree(info, false) : info;
        String name = ModuleInfo.normalizeName(info.name());
        String refusal = info.apiVersions().contains(ApiVersion.CURRENT) ? null : incompatible(name,
                "accepts iommu4j API " + info.apiVersions() + " (its info().apiVersions()), which does not include"
                + " this host's API " + ApiVersion.CURRENT + "; run it on an iommu4j whose API is in that range, or"
                + " build it against API " + ApiVersion.CURRENT);
        return new BackendDescriptor(name, className, origin, location, fromPlugin,
                !fromPlugin || plugin.signed, decided, refusal, refusal == null ? provider : null, plugin);
    }

    /** Whether the manifest's backend name, if any, is one of the providers' names; reports it when not. */
    private static boolean nameAgrees(String manifestName, List<BackendDescriptor> read, String location,
            List<BrokenPlugin> bad) {
        if (manifestName == null) {
            return true;
        }
        String want = ModuleInfo.normalizeName(manifestName.strip());
        if (read.stream().anyMatch(d -> d.name().equals(want))) {
            return true;
        }
        BackendDescriptor first = read.get(0);
        bad.add(new BrokenPlugin(location, "its manifest says " + BackendLoader.NAME_ATTRIBUTE + ": " + manifestName
                + ", but " + first.className() + ".info() names the backend '" + first.name() + "'; make the two"
                + " agree (the manifest names the backend so that it can be listed and refused without being"
                + " instantiated)"));
        return false;
    }

    static ModuleInfo withInTree(ModuleInfo i, boolean inTree) {
        return new ModuleInfo(i.name(), i.version(), i.description(), i.author(), i.license(), inTree,
                i.apiVersions(), i.depends(), i.parameters());
    }

    /**
     * The refusal of a jar by the API its manifest says it was built for: another major version, or a newer
     * minor one (a backend built against 1.9 may call what a 1.2 host lacks).
     *
     * @return the message, or null when this host can run it
     */
    static String builtForRefusal(String name, ApiVersion built) {
        ApiVersion host = ApiVersion.CURRENT;
        if (built.major() != host.major()) {
            return incompatible(ModuleInfo.normalizeName(name), "built for iommu4j API " + built + " (major "
                    + built.major() + "), but this host runs API " + host + "; build it against API " + host.major()
                    + ".x, at most " + host);
        }
        if (built.compareTo(host) > 0) {
            return incompatible(ModuleInfo.normalizeName(name), "built for iommu4j API " + built + ", newer than"
                    + " this host's API " + host + " (it may call methods this host does not have); run it on an"
                    + " iommu4j with API " + built + " or later, or build it against API " + host);
        }
        return null;
    }

    /** A refusal in a Java developer's words, then the kernel's. */
    private static String incompatible(String name, String why) {
        return name + ": " + why + ". In the kernel's words: " + name + ": disagrees about version of symbol"
                + " module_layout";
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

    private static String fileName(String location) {
        return Path.of(location).getFileName().toString().replaceFirst("\\.jar$", "");
    }

    static <T> T inContext(Plugin plugin, Supplier<T> call) {
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
                for (String name : List.of(BackendLoader.NAME_ATTRIBUTE, ApiVersion.MANIFEST_ATTRIBUTE)) {
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
}
