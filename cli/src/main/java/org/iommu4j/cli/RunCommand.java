package org.iommu4j.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code iommuctl run SCENARIO.json}. */
@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Run a scenario file step by step, a line per step; stop at the first unexpected result.",
                "See examples/scenarios/ for the format."})
final class RunCommand implements Callable<Integer> {
    @Mixin
    GlobalOptions global;

    @Parameters(paramLabel = "SCENARIO.json", description = "the scenario")
    Path file;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @ParentCommand
    Iommuctl parent;

    @Override
    public Integer call() {
        var out = spec.commandLine().getOut();
        List<String> lines = new ArrayList<>();
        // Progress goes to standard error, and only on a terminal: never into a pipe or a file, never with --json.
        boolean terminal = parent.terminal && !global.json;
        Scenario scenario = new Scenario(global.loader(), Scenario.read(file), line -> {
            lines.add(line);
            if (!global.json) {
                out.println(line);
                out.flush();
            }
        }, terminal ? spec.commandLine().getErr() : null);
        Scenario.Outcome outcome;
        try {
            outcome = scenario.run();
        } catch (Scenario.StepFailed | Scenario.Malformed e) {
            if (global.json) {
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("status", e instanceof Scenario.Malformed ? "malformed" : "failed");
                r.put("steps", lines);
                r.put("error", e.getMessage());
                out.println(Json.write(r));
            }
            throw e;
        }
        if (global.json) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("status", "ok");
            r.put("steps", lines);
            r.put("tainted", outcome.host().taint().taintedString());
            out.println(Json.write(r));
        } else {
            out.println("scenario done: " + outcome.steps() + " steps; " + outcome.host().taint().taintedString());
        }
        return 0;
    }
}
