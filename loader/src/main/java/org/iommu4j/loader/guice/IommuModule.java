package org.iommu4j.loader.guice;

import com.google.inject.AbstractModule;
import com.google.inject.Provides;
import com.google.inject.Singleton;
import com.google.inject.multibindings.MapBinder;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.loader.BackendCandidate;
import org.iommu4j.loader.BackendLoadException;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.loader.LoaderConfig;

/**
 * Wires iommu4j into a Guice application: the discovered backends as a {@code Map<String, BackendProvider>}
 * (by name), the host, the loader, and the backend chosen by name, loaded once, on first injection:
 * {@code Guice.createInjector(new IommuModule(host, "swiotlb")).getInstance(Backend.class)}. An unknown or
 * unloadable selected name, and two backends with one name, fail the injector's creation (a
 * {@link com.google.inject.CreationException} with the loader's message: the available names, or both classes
 * and jars).
 */
public final class IommuModule extends AbstractModule {
    private final Host host;
    private final String backendName;
    private final LoaderConfig config;

    /**
     * @param host the host to load onto
     * @param backendName the backend to load
     */
    public IommuModule(Host host, String backendName) {
        this(host, backendName, LoaderConfig.classPathOnly());
    }

    /**
     * @param host the host to load onto
     * @param backendName the backend to load
     * @param config where the loader looks
     */
    public IommuModule(Host host, String backendName, LoaderConfig config) {
        this.host = host;
        this.backendName = backendName;
        this.config = config;
    }

    @Override
    protected void configure() {
        BackendLoader loader = new BackendLoader(config);
        bind(Host.class).toInstance(host);
        bind(BackendLoader.class).toInstance(loader);
        MapBinder<String, BackendProvider> providers = MapBinder.newMapBinder(binder(), String.class,
                BackendProvider.class);
        // every problem is reported now, when the injector is created, not on first injection
        Set<String> names = new TreeSet<>();
        for (BackendCandidate c : loader.backends()) {
            names.add(c.name());
        }
        for (String name : names) {
            BackendProvider provider;
            try {
                provider = loader.provider(name);
            } catch (BackendLoadException e) {
                if (e.kind() == BackendLoadException.Kind.DUPLICATE) {
                    binder().addError("%s", e.getMessage());
                }
                // an incompatible backend is only an error if it is the one selected, below
                continue;
            }
            providers.addBinding(name).toInstance(provider);
        }
        try {
            loader.provider(backendName);
        } catch (BackendLoadException e) {
            if (e.kind() != BackendLoadException.Kind.DUPLICATE) { // a duplicate is reported above
                binder().addError("%s", "IommuModule cannot select backend '" + backendName + "': "
                        + e.getMessage());
            }
        }
    }

    @Provides
    @Singleton
    LoadedModule selectedModule(BackendLoader loader) {
        return loader.load(host, backendName, Map.of());
    }

    @Provides
    Backend selectedBackend(LoadedModule module) {
        return module.backend();
    }
}
