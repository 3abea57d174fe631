package org.iommu4j.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.loader.LoaderConfig;
import picocli.CommandLine.Option;

/** Options every command takes. */
final class GlobalOptions {
    @Option(names = "--plugin-dir", paramLabel = "DIR",
            description = "a directory of out-of-tree backends (one per sub-directory or jar); may be repeated")
    List<Path> pluginDirs = new ArrayList<>();

    @Option(names = "--json", description = "print data as JSON")
    boolean json;

    BackendLoader loader() {
        return new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(pluginDirs.toArray(Path[]::new)));
    }
}
