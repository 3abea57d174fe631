package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.taint.TaintRecord;
import picocli.CommandLine.Command;

/** {@code iommuctl taint}: the host's {@code Tainted:} line and who set each flag. */
@Command(name = "taint", mixinStandardHelpOptions = true,
        description = "Show the host's Tainted: line and, per flag, which module or event set it.")
final class TaintCommand extends HostCommand {
    @Override
    String key() {
        return "taint";
    }

    @Override
    Map<String, Object> json(Host host) {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (TaintRecord r : host.taint().records()) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("flag", r.flag().name());
            row.put("letter", String.valueOf(r.flag().letter()));
            row.put("who", r.who());
            row.put("event", r.event());
            row.put("seconds", r.timestampNanos() / 1e9);
            rows.add(row);
        }
        Map<String, Object> all = new LinkedHashMap<>();
        all.put("tainted", host.taint().taintedString());
        all.put("mask", host.taint().mask());
        all.put("records", rows);
        return all;
    }

    @Override
    void print(Host host) {
        var out = out();
        out.println(host.taint().taintedString());
        out.println("/proc/sys/kernel/tainted: " + host.taint().mask());
        for (TaintRecord r : host.taint().records()) {
            out.printf("  %c %-18s set by %s: %s%n", r.flag().letter(), r.flag().name(), r.who(), r.event());
        }
    }
}
