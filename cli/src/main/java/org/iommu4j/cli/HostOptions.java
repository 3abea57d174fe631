package org.iommu4j.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.iommu4j.kernel.Host;
import org.iommu4j.loader.BackendLoader;
import picocli.CommandLine.Option;

/**
 * How a host-inspecting command sets up the host it looks at: the embedded host, a kernel command line
 * (module parameters go there as {@code module.param=value}), backends to load and devices to bind; or a
 * scenario to run first.
 */
final class HostOptions {
    @Option(names = "--cmdline", paramLabel = "LINE", description = "kernel command line of the embedded host,"
            + " for example 'noiommu.enable_unsafe_noiommu_mode=1'")
    String commandLine = "";

    @Option(names = "--load", paramLabel = "NAME", description = "load a backend by name first; may be repeated")
    List<String> load = new ArrayList<>();

    @Option(names = "--bind", paramLabel = "BDF", description = "bind a device to vfio-pci after loading; may be"
            + " repeated")
    List<String> bind = new ArrayList<>();

    @Option(names = "--scenario", paramLabel = "FILE", description = "run a scenario file and look at its host")
    Path scenario;

    Host prepare(BackendLoader loader) {
        if (scenario != null) {
            return new Scenario(loader, Scenario.read(scenario), line -> { }, null).run().host();
        }
        Host host = EmbeddedHost.build(commandLine);
        for (String name : load) {
            loader.load(host, name, Map.of());
        }
        for (String device : bind) {
            host.vfio().bind(device);
        }
        return host;
    }
}
