package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.List;
import org.iommu4j.loader.BackendLoader;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code iommuctl demo}: the main job. */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"On the embedded host (1 GiB, a NIC at 0000:06:0d.0), load a backend, give the NIC to VFIO,"
                + " map a buffer, DMA a packet in and out, try one stray DMA, and say what happened.",
                "Without --backend, run every backend found and print one comparison table."})
final class DemoCommand extends CommandBase {
    @Option(names = "--backend", paramLabel = "NAME", description = "the backend to try")
    String backend;

    @Option(names = "--unsafe", description = "also run backends that give no DMA isolation (sets their"
            + " enable_unsafe_* opt-in parameters; they taint the kernel); required to --backend one of them")
    boolean unsafe;

    @Override
    public Integer call() {
        BackendLoader loader = loader();
        Demo demo = new Demo(loader, unsafe);
        var out = out();
        if (backend != null) {
            CommandLineCheck.requireBackend(loader, backend, "--backend");
            DemoResult r = demo.run(backend);
            if (r.reason().equals("needs --unsafe")) {
                // The user named an unsafe backend without the opt-in: a usage problem, not a result.
                throw new BadInput("--backend", r.backend() + " gives no DMA isolation" + (r.group().isEmpty()
                        ? " and taints the kernel" : "") + ": add --unsafe to run it (see 'iommuctl demo --help')");
            }
            if (json()) {
                out.println(Json.write(r));
            } else {
                out.println("iommu4j demo: backend " + r.backend());
                r.narrative().forEach(line -> out.println("  " + line));
            }
            return reportFailures(List.of(r));
        }
        List<DemoResult> results = new ArrayList<>();
        for (String name : demo.runnable()) {
            results.add(demo.run(name));
        }
        if (json()) {
            out.println(Json.write(results));
        } else {
            out.println("iommu4j demo on the embedded host: the NIC " + EmbeddedHost.NIC + " through each backend");
            out.println();
            Table table = new Table("backend", "VFIO type", "iommu group", "isolated", "mapping", "packet in/out",
                    "bounced bytes", "stray DMA", "taint");
            for (DemoResult r : results) {
                if (r.status().equals("ok")) {
                    table.row(r.backend(), r.vfioType(), r.group(), r.isolated() ? "yes" : "no", r.mapping(),
                            (r.packetIn() ? "ok" : "BAD") + " / " + (r.packetOut() ? "ok" : "BAD"), r.bouncedBytes(),
                            r.strayDma(), r.taintFlags().isEmpty() ? "-" : r.taintFlags());
                } else if (r.status().equals("failed")) {
                    // The detail went to standard error, on one line; the table keeps its shape.
                    table.row(r.backend(), "failed", r.group().isEmpty() ? "-" : r.group(), "", "", "", "", "",
                            r.taintFlags().isEmpty() ? "-" : r.taintFlags());
                } else {
                    table.row(r.backend(), r.status() + ": " + r.reason(), "", "", "", "", "", "", "");
                }
            }
            out.print(table);
            if (!unsafe && results.stream().anyMatch(r -> r.reason().equals("needs --unsafe"))) {
                out.println();
                out.println("Backends marked 'needs --unsafe' give devices no DMA isolation and taint the kernel;"
                        + " 'iommuctl demo --unsafe' runs them too.");
            }
        }
        return reportFailures(results);
    }

    /**
     * What a backend claimed and the demo saw disagree: its group is isolated, yet the stray DMA did not fault.
     *
     * @return the contradiction in words, or null when there is none
     */
    static String contradiction(DemoResult r) {
        if (r.status().equals("ok") && r.isolated() && !r.strayDma().equals("faulted")) {
            return "its iommu group is isolated, yet a stray DMA at another process's page "
                    + (r.strayDma().equals("corrupted") ? "corrupted that memory" : "did not fault")
                    + ": the backend does not isolate what it says it does";
        }
        return null;
    }

    /**
     * Prints each failed backend's reason, and each contradiction between what a backend claims and what the
     * demo saw, on one line of standard error, after the output.
     *
     * @return the exit code: 1 if a backend failed or contradicted its claims, else 0
     */
    private int reportFailures(List<DemoResult> results) {
        spec.commandLine().getOut().flush();
        var err = spec.commandLine().getErr();
        int code = 0;
        for (DemoResult r : results) {
            if (r.status().equals("failed")) {
                err.println(spec.qualifiedName() + ": " + r.backend() + " failed: " + Iommuctl.oneLine(r.reason()));
                code = 1;
            }
            String contradiction = contradiction(r);
            if (contradiction != null) {
                err.println(spec.qualifiedName() + ": " + r.backend() + " contradicts its claims: " + contradiction);
                code = 1;
            }
        }
        err.flush();
        return code;
    }
}
