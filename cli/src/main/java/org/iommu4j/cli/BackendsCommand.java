package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.loader.BackendCandidate;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.loader.BrokenPlugin;
import picocli.CommandLine.Command;

/** {@code iommuctl backends}: what the loader finds. */
@Command(name = "backends", mixinStandardHelpOptions = true,
        description = "List the backends found on the class path and in plugin directories, with the taint that"
                + " loading each brings.")
final class BackendsCommand extends CommandBase {
    /** The taint letters loading a backend brings, before it does anything: O for out-of-tree, and so on. */
    static String loadTaint(BackendCandidate c) {
        ModuleInfo info = c.info();
        if (info == null) {
            return "?";
        }
        StringBuilder sb = new StringBuilder();
        if (!info.licenseIsGplCompatible()) {
            sb.append('P');
        }
        if (!info.inTree()) {
            sb.append('O');
        }
        if (!c.signed()) {
            sb.append('E');
        }
        if (Demo.isUnsafe(info)) {
            sb.append(sb.length() == 0 ? "" : ", ").append("U when its unsafe mode is used");
        }
        return sb.length() == 0 ? "none" : sb.toString();
    }

    @Override
    public Integer call() {
        BackendLoader loader = loader();
        var out = out();
        List<Map<String, Object>> rows = new ArrayList<>();
        for (BackendCandidate c : loader.backends()) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("name", c.name());
            row.put("version", c.metadata().map(ModuleInfo::version).orElse("?"));
            row.put("tree", c.inTree() ? "in-tree" : "out-of-tree");
            row.put("license", c.metadata().map(ModuleInfo::license).orElse("?"));
            row.put("taint", c.selected() ? loadTaint(c) : "-");
            row.put("origin", c.origin());
            row.put("status", c.status());
            rows.add(row);
        }
        List<BrokenPlugin> broken = loader.broken();
        if (json()) {
            out.println(Json.write(Map.of("backends", rows, "broken", broken, "searched", loader.searched())));
            return 0;
        }
        Table t = new Table("name", "version", "tree", "license", "taint on load", "status", "from");
        for (Map<String, Object> r : rows) {
            t.row(r.get("name"), r.get("version"), r.get("tree"), r.get("license"), r.get("taint"), r.get("status"),
                    r.get("origin"));
        }
        out.print(t);
        for (BrokenPlugin b : broken) {
            out.println("broken: " + b.path() + ": " + b.cause());
        }
        return 0;
    }
}
