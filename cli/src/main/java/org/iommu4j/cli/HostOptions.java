package org.iommu4j.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.loader.BackendLoader;
import picocli.CommandLine.Option;

/**
 * How a host-inspecting command sets up the host it looks at: the embedded host, a kernel command line
 * (module parameters go there as {@code module.param=value}), backends to load and devices to bind; or a
 * scenario to run first, which sets up a host of its own (so it goes with none of the others).
 */
final class HostOptions {
    @Option(names = "--cmdline", paramLabel = "LINE", description = "kernel command line of the embedded host,"
            + " for example 'noiommu.enable_unsafe_noiommu_mode=1'")
    String commandLine;

    @Option(names = "--load", paramLabel = "NAME", description = "load a backend by name first; may be repeated")
    List<String> load = new ArrayList<>();

    @Option(names = "--bind", paramLabel = "BDF", description = "bind a PCI device (DDDD:BB:DD.F) to vfio-pci after"
            + " loading; may be repeated")
    List<String> bind = new ArrayList<>();

    @Option(names = "--scenario", paramLabel = "FILE", description = "run a scenario file and look at its host"
            + " (as the last step left it, also when a step fails)")
    Path scenario;

    /** The lines of the scenario's steps that ran. */
    final List<String> steps = new ArrayList<>();

    /**
     * Checks every option before anything runs.
     *
     * @param loader finds backends
     * @return warnings about the command line, one line each
     * @throws BadInput for a malformed --cmdline, an unknown --load name, a malformed --bind address, or
     *     --scenario given with the others
     */
    List<String> check(BackendLoader loader) {
        if (scenario != null) {
            if (commandLine != null || !load.isEmpty() || !bind.isEmpty()) {
                throw new BadInput("--scenario", "a scenario sets up its own host: give --cmdline, --load and"
                        + " --bind without --scenario, or put them in the scenario (host.cmdline, backends, a bind"
                        + " step)");
            }
            return List.of();
        }
        for (String name : load) {
            CommandLineCheck.requireBackend(loader, name, "--load");
        }
        for (String device : bind) {
            try {
                Values.pciAddress(device);
            } catch (Values.BadValue e) {
                throw new BadInput("--bind", e.getMessage());
            }
        }
        return CommandLineCheck.check(commandLine == null ? "" : commandLine, "--cmdline", loader);
    }

    /**
     * @param loader finds and loads backends
     * @param warn takes a scenario's warnings before it runs
     * @return the host, set up as the options say
     * @throws BadInput as {@link #check} does, or for a scenario that is not well-formed
     * @throws Scenario.StepFailed when a scenario step fails; it holds the host as the step left it
     * @throws IommuException when a load or bind fails
     */
    Host prepare(BackendLoader loader, java.util.function.Consumer<List<String>> warn) {
        if (scenario != null) {
            try {
                Scenario s = new Scenario(loader, ScenarioReader.read(scenario), steps::add, null);
                warn.accept(s.check());
                return s.run().host();
            } catch (BadInput e) {
                throw e.in(scenario);
            }
        }
        Host host = EmbeddedHost.build(commandLine == null ? "" : commandLine);
        for (String name : load) {
            loader.load(host, name, Map.of());
        }
        for (String device : bind) {
            host.vfio().bind(Values.pciAddress(device).toString());
        }
        return host;
    }
}
