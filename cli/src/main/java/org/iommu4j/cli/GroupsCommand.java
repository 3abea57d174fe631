package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.sysfs.Sysfs;
import picocli.CommandLine.Command;

/** {@code iommuctl groups}: the host's iommu groups, as {@code /sys/kernel/iommu_groups} shows them. */
@Command(name = "groups", mixinStandardHelpOptions = true,
        description = "Show the iommu groups of a host as a tree like /sys/kernel/iommu_groups.")
final class GroupsCommand extends HostCommand {
    @Override
    String key() {
        return "groups";
    }

    @Override
    List<Map<String, Object>> json(Host host) {
        Sysfs sysfs = host.sysfs();
        List<Map<String, Object>> groups = new ArrayList<>();
        for (String id : sysfs.list(Sysfs.IOMMU_GROUPS)) {
            String dir = Sysfs.IOMMU_GROUPS + "/" + id;
            Map<String, Object> g = new LinkedHashMap<>();
            g.put("id", Integer.parseInt(id));
            g.put("type", sysfs.read(dir + "/type").orElse(""));
            sysfs.read(dir + "/name").ifPresent(n -> g.put("name", n));
            g.put("node", host.vfio().nodeOf(Integer.parseInt(id)).orElse(""));
            List<Map<String, String>> devices = new ArrayList<>();
            for (String dev : sysfs.list(dir + "/devices")) {
                Map<String, String> d = new LinkedHashMap<>();
                d.put("device", dev);
                d.put("link", sysfs.readlink(dir + "/devices/" + dev).orElse(""));
                d.put("driver", host.buses().require(dev).driver() == null ? "" : host.buses().require(dev).driver());
                devices.add(d);
            }
            g.put("devices", devices);
            groups.add(g);
        }
        return groups;
    }

    @Override
    void print(Host host) {
        List<Map<String, Object>> groups = json(host);
        var out = out();
        out.println(Sysfs.IOMMU_GROUPS);
        if (groups.isEmpty()) {
            out.println("`-- (no groups: no backend manages a device, or no device is bound)");
        }
        for (int i = 0; i < groups.size(); i++) {
            Map<String, Object> g = groups.get(i);
            boolean lastGroup = i == groups.size() - 1;
            out.println((lastGroup ? "`-- " : "|-- ") + g.get("id") + "  type=" + g.get("type")
                    + (g.containsKey("name") ? " name=" + g.get("name") : "")
                    + (g.get("node").toString().isEmpty() ? "" : "  " + g.get("node")));
            @SuppressWarnings("unchecked")
            List<Map<String, String>> devices = (List<Map<String, String>>) g.get("devices");
            String indent = lastGroup ? "    " : "|   ";
            out.println(indent + "`-- devices");
            for (int k = 0; k < devices.size(); k++) {
                Map<String, String> d = devices.get(k);
                out.println(indent + "    " + (k == devices.size() - 1 ? "`-- " : "|-- ") + d.get("device") + " -> "
                        + d.get("link") + (d.get("driver").isEmpty() ? "" : "  [" + d.get("driver") + "]"));
            }
        }
    }
}
