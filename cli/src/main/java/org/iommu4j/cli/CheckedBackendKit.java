package org.iommu4j.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.loader.LoaderConfig;
import org.iommu4j.tck.BackendClaims;
import org.iommu4j.tck.BackendCompatibilityKit;
import org.iommu4j.tck.ObservedClaims;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * The kit on a backend the loader finds by name, for {@code iommuctl check}: the backend and the plugin
 * directories come as JUnit configuration parameters, the claims are what the backend tells the kernel
 * ({@link ObservedClaims}), and its dependencies are loaded first as the loader would.
 */
@ExtendWith(CheckedBackendKit.Target.class)
public class CheckedBackendKit extends BackendCompatibilityKit {
    static final String BACKEND = "iommu4j.check.backend";
    static final String PLUGIN_DIRS = "iommu4j.check.plugin-dirs";

    private final BackendLoader loader;
    private final String name;
    private final BackendClaims claims;

    /** What to check: the loader and the backend's name, from the configuration parameters. */
    record What(BackendLoader loader, String name) {
    }

    /** Resolves {@link What} from the configuration parameters of the launch. */
    static final class Target implements ParameterResolver {
        @Override
        public boolean supportsParameter(ParameterContext p, ExtensionContext e) {
            return p.getParameter().getType() == What.class;
        }

        @Override
        public Object resolveParameter(ParameterContext p, ExtensionContext e) {
            String dirs = e.getConfigurationParameter(PLUGIN_DIRS).orElse("");
            Path[] paths = dirs.isEmpty() ? new Path[0]
                    : Arrays.stream(dirs.split(java.io.File.pathSeparator)).map(Path::of).toArray(Path[]::new);
            return new What(new BackendLoader(LoaderConfig.classPathOnly().withPluginDirectories(paths)),
                    e.getConfigurationParameter(BACKEND).orElseThrow());
        }
    }

    CheckedBackendKit(What what) {
        this.loader = what.loader();
        this.name = what.name();
        this.claims = ObservedClaims.of(createProvider(), dependencies(), this::buildHost);
    }

    @Override
    protected BackendProvider createProvider() {
        return loader.provider(name);
    }

    @Override
    protected List<BackendProvider> dependencies() {
        List<BackendProvider> out = new ArrayList<>();
        for (String dep : loader.provider(name).info().depends()) {
            out.add(loader.provider(dep));
        }
        return out;
    }

    @Override
    protected java.util.Optional<Path> builtJar() {
        String origin = loader.find(name).orElseThrow().origin();
        return origin.endsWith(".jar") ? java.util.Optional.of(Path.of(origin)) : super.builtJar();
    }

    @Override
    protected BackendClaims claims() {
        return claims;
    }
}
