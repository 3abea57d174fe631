package org.iommu4j.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.loader.LoaderConfig;
import picocli.CommandLine.Option;

/** Options every command takes, before or after the command's name. */
final class GlobalOptions {
    @Option(names = "--plugin-dir", paramLabel = "DIR",
            description = "a directory of out-of-tree backends (one per sub-directory or jar); may be repeated")
    List<Path> pluginDirs = new ArrayList<>();

    @Option(names = "--json", description = "print data as JSON; errors too, as {\"error\": {\"errno\": ...,"
            + " \"message\": ..., \"path\": ...}}")
    boolean json;

    /**
     * @param before the options given before the command's name
     * @param after the options given after it
     * @return both together
     */
    static GlobalOptions merge(GlobalOptions before, GlobalOptions after) {
        GlobalOptions g = new GlobalOptions();
        if (before != null) {
            g.pluginDirs.addAll(before.pluginDirs);
            g.json |= before.json;
        }
        if (after != null) {
            g.pluginDirs.addAll(after.pluginDirs);
            g.json |= after.json;
        }
        return g;
    }

    /**
     * @return a loader that looks on the class path and in the plugin directories
     * @throws BadInput if a plugin directory is missing, not a directory or unreadable
     */
    BackendLoader loader() {
        for (Path d : pluginDirs) {
            if (!Files.exists(d)) {
                throw new BadInput("--plugin-dir", d + ": no such directory");
            }
            if (!Files.isDirectory(d)) {
                throw new BadInput("--plugin-dir", d + ": not a directory (give the directory that holds the"
                        + " plugin jars)");
            }
            if (!Files.isReadable(d) || !Files.isExecutable(d)) {
                throw new BadInput("--plugin-dir", d + ": permission denied");
            }
        }
        return new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(pluginDirs.toArray(Path[]::new)));
    }
}
