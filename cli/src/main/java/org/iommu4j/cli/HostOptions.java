package org.iommu4j.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.InvalidParameterException;
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

    /**
     * A {@code --cmdline} that does not parse, or whose {@code module.param=value} words a loaded backend
     * rejects: bad usage (exit 2), where an unknown backend name or a failing init is a failed operation.
     */
    static final class BadCommandLine extends RuntimeException {
        private static final long serialVersionUID = 1L;

        BadCommandLine(InvalidParameterException cause) {
            super("bad --cmdline: " + cause.getMessage(), cause);
        }
    }

    /**
     * @param loader finds and loads backends
     * @return the host, set up as the options say
     * @throws BadCommandLine if {@code --cmdline} is malformed or holds a parameter a backend rejects
     */
    Host prepare(BackendLoader loader) {
        if (scenario != null) {
            return new Scenario(loader, Scenario.read(scenario), line -> { }, null).run().host();
        }
        Host host;
        try {
            host = EmbeddedHost.build(commandLine);
        } catch (InvalidParameterException e) {
            throw new BadCommandLine(e);
        }
        for (String name : load) {
            try {
                // No parameters are given with the load: a rejected one came from the command line.
                loader.load(host, name, Map.of());
            } catch (InvalidParameterException e) {
                throw new BadCommandLine(e);
            }
        }
        for (String device : bind) {
            host.vfio().bind(device);
        }
        return host;
    }
}
