package org.iommu4j.kernel.sysfs;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.TreeMap;
import java.util.TreeSet;
import org.iommu4j.api.BusType;
import org.iommu4j.api.PciBridge;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.Buses;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.iommu.Iommu;
import org.iommu4j.kernel.taint.TaintState;

/**
 * A read-only view of the host laid out as the kernel's sysfs and procfs lay it out, so that code written to
 * read {@code /sys/kernel/iommu_groups} or a device's {@code iommu_group} link works unchanged. Built fresh
 * on every call from the live state.
 */
public final class Sysfs {
    /** The groups directory. */
    public static final String IOMMU_GROUPS = "/sys/kernel/iommu_groups";

    private final Buses buses;
    private final Iommu iommu;
    private final TaintState taint;

    /**
     * @param buses the host's buses
     * @param iommu the iommu core
     * @param taint the host's taint
     */
    public Sysfs(Buses buses, Iommu iommu, TaintState taint) {
        this.buses = buses;
        this.iommu = iommu;
        this.taint = taint;
    }

    /** @return every node, by path */
    public TreeMap<String, SysfsNode> snapshot() {
        TreeMap<String, SysfsNode> nodes = new TreeMap<>();
        for (Group g : iommu.groups()) {
            String dir = IOMMU_GROUPS + "/" + g.id();
            file(nodes, dir + "/type", g.sysfsType());
            g.name().ifPresent(n -> file(nodes, dir + "/name", n));
            for (BusDevice d : g.busDevices()) {
                link(nodes, dir + "/devices/" + d.name(), "../../../../devices/" + deviceDir(d));
            }
        }
        for (BusDevice d : buses.all()) {
            String dir = "/sys/bus/" + d.bus().sysfsName() + "/devices/" + d.name();
            link(nodes, dir, "../../../devices/" + deviceDir(d));
            String real = "/sys/devices/" + deviceDir(d);
            String toSys = "../".repeat(real.split("/").length - 2);
            Group g = d.group();
            if (g != null) {
                link(nodes, real + "/iommu_group", toSys + "kernel/iommu_groups/" + g.id());
            }
            if (d.driver() != null) {
                link(nodes, real + "/driver", toSys + "bus/" + d.bus().sysfsName() + "/drivers/" + d.driver());
            }
            if (d.bus() == BusType.PCI) {
                file(nodes, real + "/vendor", String.format("0x%04x", d.vendorId()));
                file(nodes, real + "/device", String.format("0x%04x", d.deviceId()));
                file(nodes, real + "/class", String.format("0x%06x", d.classCode()));
            }
            file(nodes, real + "/dma_mask_bits", Integer.toString(64 - Long.numberOfLeadingZeros(d.dmaMask())));
            String bridgeDir = real.substring(0, real.lastIndexOf('/'));
            for (PciBridge b : d.upstreamBridges()) {
                file(nodes, bridgeDir + "/secondary_bus_number", Integer.toString(b.secondaryBus()));
                bridgeDir = bridgeDir.substring(0, bridgeDir.lastIndexOf('/'));
            }
        }
        file(nodes, "/proc/sys/kernel/tainted", Long.toString(taint.mask()));
        return nodes;
    }

    /**
     * Where a device lives under {@code /sys/devices}: below its bridges, as the kernel's tree does (each bridge
     * directory has a {@code secondary_bus_number}). A device whose spec names no bridge sits on the root bus
     * directly when its bus is 0, else behind one implied port ({@code DDDD:00:01.0}), which makes a
     * secondary-bus device's {@code iommu_group} link climb four levels as on real machines.
     */
    private static String deviceDir(BusDevice d) {
        if (d.bus() == BusType.PCI && !d.upstreamBridges().isEmpty()) {
            // the tree: the root bus of the topmost bridge, then every bridge down to the device
            List<PciBridge> chain = d.upstreamBridges();
            PciBridge top = chain.get(chain.size() - 1);
            StringBuilder path = new StringBuilder(String.format("pci%04x:%02x", top.address().domain(),
                    top.address().bus()));
            for (int i = chain.size() - 1; i >= 0; i--) {
                path.append('/').append(chain.get(i).address());
            }
            return path.append('/').append(d.name()).toString();
        }
        if (d.bus() == BusType.PCI) {
            String name = d.name();
            String domain = name.substring(0, 4);
            String root = "pci" + domain + ":00/";
            return name.substring(5, 7).equals("00") ? root + name : root + domain + ":00:01.0/" + name;
        }
        return "platform/" + d.name();
    }

    private static void file(TreeMap<String, SysfsNode> nodes, String path, String content) {
        nodes.put(path, new SysfsNode(path, content, false));
    }

    private static void link(TreeMap<String, SysfsNode> nodes, String path, String target) {
        nodes.put(path, new SysfsNode(path, target, true));
    }

    /**
     * Reads a file, following links on the way (so {@code /sys/bus/pci/devices/<bdf>/vendor} works).
     *
     * @param path an absolute path
     * @return the file's text
     */
    public Optional<String> read(String path) {
        TreeMap<String, SysfsNode> nodes = snapshot();
        SysfsNode node = nodes.get(resolve(nodes, path));
        return node == null || node.link() ? Optional.empty() : Optional.of(node.content());
    }

    /**
     * Reads a link's target as {@code readlink} prints it, following links in the directories above it.
     *
     * @param path an absolute path to a link
     * @return the target
     */
    public Optional<String> readlink(String path) {
        TreeMap<String, SysfsNode> nodes = snapshot();
        int slash = path.lastIndexOf('/');
        String parent = resolve(nodes, path.substring(0, slash));
        SysfsNode node = nodes.get(parent + path.substring(slash));
        return node == null || !node.link() ? Optional.empty() : Optional.of(node.content());
    }

    /**
     * Lists a directory.
     *
     * @param path an absolute directory path
     * @return the names in it, sorted (numbers by value)
     */
    public List<String> list(String path) {
        TreeMap<String, SysfsNode> nodes = snapshot();
        String dir = resolve(nodes, path) + "/";
        TreeSet<String> names = new TreeSet<>((a, b) -> isNumber(a) && isNumber(b)
                ? Integer.compare(Integer.parseInt(a), Integer.parseInt(b)) : a.compareTo(b));
        for (String p : nodes.tailMap(dir).keySet()) {
            if (!p.startsWith(dir)) {
                break;
            }
            String rest = p.substring(dir.length());
            names.add(rest.contains("/") ? rest.substring(0, rest.indexOf('/')) : rest);
        }
        return new ArrayList<>(names);
    }

    private static boolean isNumber(String s) {
        return !s.isEmpty() && s.chars().allMatch(Character::isDigit);
    }

    /**
     * Resolves every link along a path, as the kernel's path walk does.
     *
     * @param path an absolute path
     * @return the path with no links in it
     */
    public String resolve(String path) {
        return resolve(snapshot(), path);
    }

    private static String resolve(TreeMap<String, SysfsNode> nodes, String path) {
        String[] parts = path.split("/");
        String current = "";
        for (int i = 1; i < parts.length; i++) {
            current = current + "/" + parts[i];
            SysfsNode n = nodes.get(current);
            for (int hops = 0; n != null && n.link() && hops < 8; hops++) {
                current = normalize(current.substring(0, current.lastIndexOf('/')) + "/" + n.content());
                n = nodes.get(current);
            }
        }
        return current;
    }

    private static String normalize(String path) {
        List<String> out = new ArrayList<>();
        for (String p : path.split("/")) {
            if (p.isEmpty() || p.equals(".")) {
                continue;
            }
            if (p.equals("..")) {
                if (!out.isEmpty()) {
                    out.remove(out.size() - 1);
                }
            } else {
                out.add(p);
            }
        }
        return "/" + String.join("/", out);
    }
}
