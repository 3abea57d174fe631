package org.iommu4j.backend.swiotlb;

import java.util.Map;
import org.iommu4j.api.Backend;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.module.LoadedModule;

/** Loads swiotlb on a host and hands back the pieces tests look at. */
final class SwiotlbFixture {
    final Host host;
    final LoadedModule module;

    SwiotlbFixture(Host host, Map<String, String> params) {
        this.host = host;
        this.module = host.modules().insert(new SwiotlbProvider(), params, "class path");
    }

    SwiotlbPool pool() {
        return ((SwiotlbBackend) module.backend()).pool();
    }

    Backend backend() {
        return module.backend();
    }

    String attribute(String name) {
        return module.backend().attributes().stream().filter(a -> a.name().equals(name)).findFirst()
                .orElseThrow().read();
    }

    void write(String name, String value) {
        module.backend().attributes().stream().filter(a -> a.name().equals(name)).findFirst().orElseThrow()
                .write(value);
    }
}
