package org.iommu4j.loader;

import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.Enumeration;
import java.util.List;

/**
 * The class loader of one out-of-tree backend. Its parent is the platform class loader, so the plugin sees the
 * JDK; classes of an explicit allow-list of packages (the api) come from the loader that has them, so that the
 * plugin and the kernel agree on the api types; nothing else of the application is visible, classes or
 * resources (a plugin's {@code META-INF/services} lookups see only its own jars).
 */
final class PluginClassLoader extends URLClassLoader {
    private final ClassLoader apiLoader;
    private final List<String> sharedPrefixes;

    PluginClassLoader(String name, URL[] urls, ClassLoader apiLoader, List<String> sharedPrefixes) {
        super(name, urls, ClassLoader.getPlatformClassLoader());
        this.apiLoader = apiLoader;
        this.sharedPrefixes = List.copyOf(sharedPrefixes);
    }

    private boolean shared(String className) {
        for (String prefix : sharedPrefixes) {
            if (className.startsWith(prefix)) {
                return true;
            }
        }
        return false;
    }

    @Override
    protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
        if (shared(name)) {
            return apiLoader.loadClass(name);
        }
        return super.loadClass(name, resolve);
    }

    @Override
    public URL getResource(String name) {
        URL url = ClassLoader.getPlatformClassLoader().getResource(name);
        return url != null ? url : findResource(name);
    }

    @Override
    public Enumeration<URL> getResources(String name) throws IOException {
        return findResources(name);
    }
}
