package org.iommu4j.loader.guice;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.inject.Guice;
import com.google.inject.Injector;
import com.google.inject.Key;
import com.google.inject.TypeLiteral;
import java.util.Map;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.LoadedModule;
import org.junit.jupiter.api.Test;

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
}
