package org.iommu4j.loader.guice;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.inject.CreationException;
import com.google.inject.Guice;
import com.google.inject.Injector;
import com.google.inject.Key;
import com.google.inject.TypeLiteral;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.loader.LoaderConfig;
import org.iommu4j.loader.PluginJars;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IommuModuleTest {
    @Test
    void theSelectedBackendIsLoadedOnceOnFirstInjectionAndEveryProviderIsInTheMap() {
        Host host = Host.builder().build();
        Injector injector = Guice.createInjector(new IommuModule(host, "swiotlb"));
        assertThat(host.modules().modules()).isEmpty();

        Map<String, BackendProvider> providers = injector.getInstance(Key.get(
                new TypeLiteral<Map<String, BackendProvider>>() { }));
        assertThat(providers).containsOnlyKeys("noiommu", "swiotlb", "xen");
        Backend backend = injector.getInstance(Backend.class);
        assertThat(injector.getInstance(Backend.class)).isSameAs(backend);
        assertThat(injector.getInstance(LoadedModule.class).name()).isEqualTo("swiotlb");
        assertThat(injector.getInstance(Host.class)).isSameAs(host);
        assertThat(host.modules().modules()).hasSize(1);
    }

    @Test
    void anUnknownSelectedNameFailsWhenTheInjectorIsCreatedListingTheAvailableNames() {
        Host host = Host.builder().build();
        assertThatThrownBy(() -> Guice.createInjector(new IommuModule(host, "nosuch")))
                .isInstanceOf(CreationException.class)
                .hasMessageContaining("IommuModule cannot select backend 'nosuch': No backend named 'nosuch'."
                        + " Available: [noiommu, swiotlb, xen]. Searched: [class path]");
        assertThat(host.modules().modules()).isEmpty();
    }

    @Test
    void twoBackendsWithOneNameFailWhenTheInjectorIsCreatedNamingBothClassesAndJars(@TempDir Path work) {
        Path plugins = work.resolve("plugins");
        PluginJars jars = new PluginJars(work);
        for (String pkg : List.of("one", "two")) {
            jars.jar().source(pkg + ".Provider", PluginJars.provider(pkg, "twin", "GPL", List.of(), ""))
                    .services(pkg + ".Provider").writeTo(plugins.resolve(pkg + ".jar"));
        }
        Host host = Host.builder().build();
        LoaderConfig config = LoaderConfig.classPathOnly().withPluginDirectories(plugins);
        assertThatThrownBy(() -> Guice.createInjector(new IommuModule(host, "swiotlb", config)))
                .isInstanceOf(CreationException.class)
                .hasMessageContaining("Duplicate backend 'twin': provided by one.Provider ("
                        + plugins.resolve("one.jar") + ") and two.Provider (" + plugins.resolve("two.jar")
                        + "); remove all but one");
        // selecting the duplicate itself reports it once
        assertThatThrownBy(() -> Guice.createInjector(new IommuModule(host, "twin", config)))
                .isInstanceOf(CreationException.class)
                .satisfies(e -> assertThat(((CreationException) e).getErrorMessages()).hasSize(1));
        assertThat(host.modules().modules()).isEmpty();
    }
}
