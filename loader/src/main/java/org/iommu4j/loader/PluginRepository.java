package org.iommu4j.loader;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.MalformedURLException;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.Iterator;
import java.util.List;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.iommu4j.api.BackendProvider;

/**
 * Discovery, PF4J's {@code PluginRepository}: where backends are, before anything is read from them. Plugins are
 * the sub-directories and jars directly inside each plugin directory, then the plugin under test; class-path
 * backends are the providers the application class loader's services files list. A services file that cannot
 * be read, or that lists a class that is missing or unfit, is reported against the jar it came from and hides
 * nothing else.
 */
final class PluginRepository {
    static final String CLASS_PATH = "class path";
    static final String SERVICES = "META-INF/services/" + BackendProvider.class.getName();
    /** The services file named in a {@link ServiceConfigurationError} about a parse or read failure. */
    private static final Pattern SERVICES_URL = Pattern.compile("(\\S+?)(?:!/|/)" + Pattern.quote(SERVICES));
    /** The provider class named in a {@link ServiceConfigurationError}: "Provider x.Y not found". */
    private static final Pattern PROVIDER_CLASS = Pattern.compile("Provider (\\S+) ");
    /** The whole message of a {@link ServiceConfigurationError} about a listed class that is missing or unfit. */
    private static final Pattern UNFIT_PROVIDER = Pattern.compile(Pattern.quote(BackendProvider.class.getName())
            + ": Provider (\\S+) (not found|not a subtype)");

    private final LoaderConfig config;

    /** A provider listed on the class path, not yet instantiated, and the jar or directory of its class. */
    record ClassPathEntry(ServiceLoader.Provider<BackendProvider> provider, String location) {
    }

    PluginRepository(LoaderConfig config) {
        this.config = config;
    }

    /** @return the plugins, each a sub-directory or a jar, in name order per directory, then the one under test */
    List<Path> plugins(List<BrokenPlugin> bad) {
        List<Path> out = new ArrayList<>();
        for (Path dir : config.pluginDirectories()) {
            if (!Files.isDirectory(dir)) {
                continue;
            }
            try (Stream<Path> entries = Files.list(dir)) {
                entries.filter(p -> Files.isDirectory(p) || p.toString().endsWith(".jar")).sorted()
                        .forEach(out::add);
            } catch (IOException e) {
                bad.add(new BrokenPlugin(dir.toString(), "cannot list the plugin directory: " + e));
            }
        }
        if (config.pluginUnderTest() != null) {
            out.add(config.pluginUnderTest());
        }
        return out;
    }

    /** @return a plugin's jars: itself, or the jars directly inside its directory */
    static List<Path> jarsOf(Path plugin) throws IOException {
        if (!Files.isDirectory(plugin)) {
            return List.of(plugin);
        }
        try (Stream<Path> s = Files.list(plugin)) {
            return s.filter(p -> p.toString().endsWith(".jar")).sorted().toList();
        }
    }

    /** @return the provider classes the plugin under test lists, which class-path discovery leaves out */
    Set<String> providersUnderTest() {
        Path plugin = config.pluginUnderTest();
        if (plugin == null) {
            return Set.of();
        }
        List<String> names = new ArrayList<>();
        try {
            for (Path jar : jarsOf(plugin)) {
                try (JarFile f = new JarFile(jar.toFile())) {
                    JarEntry e = f.getJarEntry(SERVICES);
                    if (e != null) {
                        try (InputStream in = f.getInputStream(e)) {
                            names.addAll(listed(in));
                        }
                    }
                }
            }
        } catch (IOException e) {
            // the descriptor reader reports the unreadable jar; nothing is left out of the class path for it
        }
        return Set.copyOf(names);
    }

    /**
     * The class-path providers, not instantiated.
     *
     * @param leaveOut provider classes not to list (those of the plugin under test)
     */
    List<ClassPathEntry> classPath(Set<String> leaveOut, List<BrokenPlugin> bad) {
        if (config.applicationLoader() == null) {
            return List.of();
        }
        List<ClassPathEntry> out = new ArrayList<>();
        Iterator<ServiceLoader.Provider<BackendProvider>> it = ServiceLoader.load(BackendProvider.class,
                config.applicationLoader()).stream().iterator();
        for (ServiceLoader.Provider<BackendProvider> p; (p = next(it, null, bad)) != null; ) {
            if (!leaveOut.contains(p.type().getName())) {
                out.add(new ClassPathEntry(p, codeSource(p.type())));
            }
        }
        return out;
    }

    /**
     * The next provider of an iteration, reporting each listing it cannot use.
     *
     * @param plugin the plugin iterated, or null for the class path
     * @return the next usable provider, or null at the end
     */
    ServiceLoader.Provider<BackendProvider> next(Iterator<ServiceLoader.Provider<BackendProvider>> it,
            Plugin plugin, List<BrokenPlugin> bad) {
        while (true) {
            try {
                return it.hasNext() ? it.next() : null;
            } catch (ServiceConfigurationError e) {
                bad.add(new BrokenPlugin(plugin == null ? classPathCulprit(e) : plugin.path.toString(),
                        serviceError(e, plugin == null ? "on the class path" : "in the plugin's jars")));
            }
        }
    }

    /** @return the jar or directory a class was loaded from, or {@code class path} when it cannot be told */
    static String codeSource(Class<?> type) {
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
                    boolean lists;
                    try (InputStream in = file.openStream()) {
                        lists = listed(in).contains(provider.group(1));
                    }
                    if (lists) {
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

    /** @return the classes a services file lists (comments and blanks aside) */
    private static List<String> listed(InputStream servicesFile) throws IOException {
        List<String> out = new ArrayList<>();
        BufferedReader r = new BufferedReader(new InputStreamReader(servicesFile, StandardCharsets.UTF_8));
        String line;
        while ((line = r.readLine()) != null) {
            int hash = line.indexOf('#');
            String name = (hash < 0 ? line : line.substring(0, hash)).strip();
            if (!name.isEmpty()) {
                out.add(name);
            }
        }
        return out;
    }
}
