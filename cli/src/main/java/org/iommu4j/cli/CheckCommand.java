package org.iommu4j.cli;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.io.File;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code iommuctl check BACKEND}: the backend compatibility kit, run against one backend, as a table. */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Run the backend compatibility kit against a backend (from the class path or a plugin"
                + " directory) and print one row per check: PASS, FAIL with the rule broken, or SKIP with the reason.",
                "The claims checked are those the backend makes to the kernel: isolated groups, translating domains,"
                        + " the VFIO types it offers. Exit code 1 when a check fails."})
final class CheckCommand implements Callable<Integer> {
    @Mixin
    GlobalOptions global;

    @Parameters(paramLabel = "BACKEND", description = "the backend's name")
    String backend;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    /** One check's outcome. */
    record Row(String group, String check, String result, String detail) {
    }

    @Override
    public Integer call() {
        global.loader().provider(backend); // an unknown or refused backend is the loader's error, said once
        List<Row> rows = new ArrayList<>();
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(selectClass(CheckedBackendKit.class))
                .configurationParameter(CheckedBackendKit.BACKEND, backend)
                .configurationParameter(CheckedBackendKit.PLUGIN_DIRS, global.pluginDirs.stream()
                        .map(Object::toString).collect(Collectors.joining(File.pathSeparator)))
                .build();
        List<String> broken = new ArrayList<>();
        TestExecutionListener listener = new TestExecutionListener() {
            private String group = "";

            @Override
            public void executionStarted(TestIdentifier id) {
                if (id.isContainer() && id.getSource().isPresent()) {
                    group = id.getDisplayName();
                }
            }

            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                rows.add(new Row(group, id.getDisplayName(), "SKIP", reason));
            }

            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                if (id.isContainer()) {
                    if (result.getStatus() != TestExecutionResult.Status.SUCCESSFUL) {
                        broken.add(id.getDisplayName() + ": " + result.getThrowable().map(Throwable::toString)
                                .orElse("failed"));
                    }
                    return;
                }
                String detail = result.getThrowable().map(t -> Iommuctl.oneLine(String.valueOf(t.getMessage())))
                        .orElse("").replaceFirst("^Assumption failed: ", "");
                String status = switch (result.getStatus()) {
                    case SUCCESSFUL -> "PASS";
                    case ABORTED -> "SKIP";
                    case FAILED -> "FAIL";
                };
                rows.add(new Row(group, id.getDisplayName().replaceFirst(":.*", ""), status, detail));
            }
        };
        LauncherFactory.create().execute(request, listener);
        var out = spec.commandLine().getOut();
        long failed = rows.stream().filter(r -> r.result().equals("FAIL")).count();
        if (global.json) {
            out.println(Json.write(Map.of("backend", backend, "checks", rows, "failed", failed)));
        } else {
            Table t = new Table("group", "check", "result", "detail");
            rows.forEach(r -> t.row(r.group(), r.check(), r.result(), r.detail()));
            out.print(t);
            out.printf("%s: %d passed, %d failed, %d skipped%n", backend,
                    rows.stream().filter(r -> r.result().equals("PASS")).count(), failed,
                    rows.stream().filter(r -> r.result().equals("SKIP")).count());
        }
        out.flush();
        var err = spec.commandLine().getErr();
        broken.forEach(b -> err.println(spec.qualifiedName() + ": " + Iommuctl.oneLine(b)));
        if (failed > 0) {
            err.println(spec.qualifiedName() + ": " + backend + " fails " + failed + " check" + (failed == 1 ? "" : "s")
                    + " of the backend compatibility kit");
        }
        err.flush();
        return failed > 0 || !broken.isEmpty() ? 1 : 0;
    }
}
