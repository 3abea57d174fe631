package org.iommu4j.cli;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code iommuctl run SCENARIO.json}. */
@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Check a scenario file whole, then run it step by step, a line per step; stop at the first"
                + " unexpected result.", "The format: docs/scenarios.md; 'iommuctl schema' prints its JSON Schema."})
final class RunCommand extends CommandBase {
    @Parameters(paramLabel = "SCENARIO.json", description = "the scenario")
    Path file;

    @Override
    public Integer call() {
        var out = out();
        List<String> lines = new ArrayList<>();
        // Progress goes to standard error, and only on a terminal: never into a pipe or a file, never with --json.
        boolean terminal = parent.terminal && !json();
        Scenario.Outcome outcome;
        var loader = loader();
        try {
            Scenario scenario = new Scenario(loader, ScenarioReader.read(file), line -> {
                lines.add(line);
                if (!json()) {
                    out.println(line);
                    out.flush();
                }
            }, terminal ? err() : null);
            warn(scenario.check());
            outcome = scenario.run();
        } catch (BadInput e) {
            throw CommandError.of(e.in(file)).with("steps", lines);
        } catch (Scenario.StepFailed e) {
            throw CommandError.of(e).with("steps", lines).with("tainted", e.host().taint().taintedString());
        }
        if (json()) {
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
