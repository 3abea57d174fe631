package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.log.LogRecord;
import picocli.CommandLine.Command;

/** {@code iommuctl dmesg}: the host's kernel log. */
@Command(name = "dmesg", mixinStandardHelpOptions = true, description = "Print the host's kernel log.")
final class DmesgCommand extends HostCommand {
    @Override
    String key() {
        return "dmesg";
    }

    @Override
    List<Map<String, Object>> json(Host host) {
        List<Map<String, Object>> rows = new ArrayList<>();
        for (LogRecord r : host.log().records()) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("seq", r.sequence());
            row.put("level", r.level().name());
            row.put("text", r.text());
            rows.add(row);
        }
        return rows;
    }

    @Override
    void print(Host host) {
        host.log().dmesg().forEach(out()::println);
    }
}
