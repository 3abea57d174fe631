package org.iommu4j.loader;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * An out-of-tree plugin once its manifest passed: its jars, its own class loader, whether every jar is signed by
 * a trusted key, and how many hosts have its backend loaded (its class loader is closed when none has).
 */
final class Plugin {
    final Path path;
    final List<Path> jars;
    final PluginClassLoader loader;
    final boolean signed;
    int loads;

    Plugin(Path path, List<Path> jars, PluginClassLoader loader, boolean signed) {
        this.path = path;
        this.jars = List.copyOf(jars);
        this.loader = loader;
        this.signed = signed;
    }

    void close() {
        try {
            loader.close();
        } catch (IOException e) {
            // the jar stays open until the JVM exits; nothing else depends on it
        }
    }
}
