package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.log.LogRecord;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Spec;

/** {@code iommuctl dmesg}: the host's kernel log. */
@Command(name = "dmesg", mixinStandardHelpOptions = true, description = "Print the host's kernel log.")
final class DmesgCommand implements Callable<Integer> {
    @Mixin
    GlobalOptions global;

    @Mixin
    HostOptions hostOptions;

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() {
        Host host = hostOptions.prepare(global.loader());
        var out = spec.commandLine().getOut();
        if (global.json) {
            List<Map<String, Object>> rows = new ArrayList<>();
            for (LogRecord r : host.log().records()) {
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("seq", r.sequence());
                row.put("level", r.level().name());
                row.put("text", r.text());
                rows.add(row);
            }
            out.println(Json.write(rows));
            return 0;
        }
        host.log().dmesg().forEach(out::println);
        return 0;
    }
}
