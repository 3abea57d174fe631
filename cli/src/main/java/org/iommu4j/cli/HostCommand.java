package org.iommu4j.cli;

import org.iommu4j.kernel.Host;
import picocli.CommandLine.Mixin;

/**
 * A command that looks at a host the {@link HostOptions} set up. When a {@code --scenario} step fails it still
 * shows the host as that step left it, then reports the failure (exit 1).
 */
abstract class HostCommand extends CommandBase {
    @Mixin
    HostOptions hostOptions;

    /** @return the key of the command's data in --json output next to an error: groups, taint, dmesg */
    abstract String key();

    /** @return what --json prints for the host */
    abstract Object json(Host host);

    /** Prints the host's view as text. */
    abstract void print(Host host);

    @Override
    public final Integer call() {
        warn(hostOptions.check(loader()));
        Host host;
        try {
            host = hostOptions.prepare(loader(), this::warn);
        } catch (Scenario.StepFailed f) {
            if (json()) {
                throw CommandError.of(f).with("steps", hostOptions.steps).with(key(), json(f.host()));
            }
            print(f.host());
            throw f;
        }
        if (json()) {
            out().println(Json.write(json(host)));
        } else {
            print(host);
        }
        return 0;
    }
}
