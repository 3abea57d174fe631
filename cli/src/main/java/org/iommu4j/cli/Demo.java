package org.iommu4j.cli;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.taint.TaintRecord;
import org.iommu4j.loader.BackendCandidate;
import org.iommu4j.loader.BackendLoader;

/**
 * The demo: on a fresh embedded host, load a backend, give the NIC to VFIO, map a buffer for a user process
 * (privileged with CAP_SYS_RAWIO only when the NIC's group is not isolated, as VFIO demands), let the device DMA
 * a packet in and out, try one stray DMA at another process's page, and say what happened. A backend whose
 * opt-in parameters are {@code enable_unsafe_*} runs only when the user says {@code --unsafe}; a backend with a
 * {@code hide} parameter is given the NIC through it.
 */
final class Demo {
    private static final int BUFFER = 16 * 1024;
    private static final long TYPE1_IOVA = 0x100000;
    private static final byte[] RX = "rx: frame from the wire, 64 bytes of it, delivered by bus-master DMA!"
            .substring(0, 64).getBytes(StandardCharsets.US_ASCII);
    private static final byte[] TX = "tx: frame from the driver, 64 bytes of it, fetched by the device....."
            .substring(0, 64).getBytes(StandardCharsets.US_ASCII);

    /** How {@link VfioSession#open} says that no iommu type fits the group. */
    private static final String NO_TYPE = "no VFIO iommu type is offered";

    private final BackendLoader loader;
    private final boolean unsafe;

    Demo(BackendLoader loader, boolean unsafe) {
        this.loader = loader;
        this.unsafe = unsafe;
    }

    static boolean isUnsafe(ModuleInfo info) {
        return info.parameters().stream().anyMatch(p -> p.name().startsWith("enable_unsafe_"));
    }

    /** @return the backends the demo can run: loadable, each name once */
    List<String> runnable() {
        List<String> names = new ArrayList<>();
        for (BackendCandidate c : loader.backends()) {
            if (c.loadable() && loader.find(c.name()).isPresent() && !names.contains(c.name())) {
                names.add(c.name());
            }
        }
        return names;
    }

    DemoResult run(String name) {
        ModuleInfo info = loader.find(name).flatMap(BackendCandidate::metadata).orElse(null);
        String backend = info == null ? name : ModuleInfo.normalizeName(info.name());
        List<String> story = new ArrayList<>();
        if (info != null && isUnsafe(info) && !unsafe) {
            story.add(backend + " gives no DMA isolation and taints the kernel: rerun with --unsafe to try it");
            return new DemoResult(backend, "skipped", "needs --unsafe", "", "", false, "", false, false, 0, "", "",
                    "", story);
        }
        // xen loads only in a Xen domain: its demo runs in a guest of a Xen platform, beside another guest
        DemoXen xen = backend.equals("xen") ? new DemoXen(loader) : null;
        Host host = xen != null ? xen.host() : EmbeddedHost.build("");
        if (xen != null) {
            story.addAll(xen.story());
        } else {
            story.add("host: embedded, " + EmbeddedHost.describe(host) + ", devices " + host.buses().all().stream()
                    .map(d -> d.name() + (d.driver() == null ? "" : " (" + d.driver() + ")")).toList());
        }
        Map<String, String> params = new LinkedHashMap<>();
        if (info != null) {
            for (ParameterSpec p : info.parameters()) {
                if (p.name().startsWith("enable_unsafe_")) {
                    params.put(p.name(), "1");
                } else if (p.name().equals("hide") && xen == null) {
                    params.put(p.name(), "(" + EmbeddedHost.NIC + ")");
                }
            }
        }
        try {
            LoadedModule module = loader.load(host, name, params);
            story.add(String.format("loaded %s %s (%s, %s)%s%s", module.name(), module.info().version(),
                    module.info().inTree() ? "in-tree" : "out-of-tree", module.info().license(),
                    params.isEmpty() ? "" : " with " + params,
                    isUnsafe(module.info()) ? " -- UNSAFE, because you said --unsafe" : ""));
            return exercise(host, backend, story, xen);
        } catch (IommuException e) {
            if (e.getMessage().startsWith(NO_TYPE)) {
                // A backend that gives groups and nothing else (fsl-none): VFIO has nothing to map with. A result.
                story.add(backend + " offers VFIO no iommu type for " + groupNode(host) + " (it gives the device a"
                        + " group, nothing else): there is nothing for a user-level driver to map");
                return new DemoResult(backend, "skipped", "offers VFIO no iommu type", "", groupNode(host), false,
                        "", false, false, 0, "", host.taint().taintedString(), flags(host), story);
            }
            story.add("FAILED: " + e.getMessage());
            return new DemoResult(backend, "failed", e.errno() + ": " + e.getMessage(), "", groupNode(host), false,
                    "", false, false, bounced(host), "", host.taint().taintedString(), flags(host), story);
        }
    }

    private DemoResult exercise(Host host, String backend, List<String> story, DemoXen xen) {
        host.vfio().bind(EmbeddedHost.NIC);
        BusDevice nic = host.buses().require(EmbeddedHost.NIC);
        Group group = nic.group();
        String node = host.vfio().nodeOf(group.id()).orElseThrow();
        story.add(String.format("bound %s to vfio-pci: iommu group %d, %s, %s", EmbeddedHost.NIC, group.id(), node,
                group.isolated() ? "isolated" : "NOT isolated"));
        if (!group.isolated() && !unsafe) {
            // A backend without an enable_unsafe_* opt-in that still gives no isolation (fsl-none): the same rule.
            story.add(backend + " gives no DMA isolation: rerun with --unsafe to try it");
            return new DemoResult(backend, "skipped", "needs --unsafe", "", node, false, "", false, false, 0, "",
                    "", "", story);
        }
        // VFIO asks for CAP_SYS_RAWIO only where the group is not isolated; an isolated group is opened
        // without it, to show that isolation is what lets an unprivileged driver have the device.
        UserProcess driver = host.spawn("iommu-demo", 0, group.isolated() ? Set.of(Capability.CAP_IPC_LOCK)
                : Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
        VfioSession session = VfioSession.open(host, driver, EmbeddedHost.NIC, 0);
        story.add("container: " + Vfio.typeName(session.type()) + " via "
                + session.container().driverName().orElse("?") + ", opened by " + driver
                + (group.isolated() ? " without CAP_SYS_RAWIO: " + (backend.equals("xen") ? "the hypervisor"
                        : "the IOMMU") + " isolates, so no privilege is needed" : " with CAP_SYS_RAWIO"));

        boolean needsContiguous = session.type() == Vfio.NOIOMMU_IOMMU;
        long va = needsContiguous ? driver.mmapContiguous(BUFFER) : driver.mmap(BUFFER);
        long iova = session.type() == Vfio.TYPE1_IOMMU || session.type() == Vfio.TYPE1v2_IOMMU ? TYPE1_IOVA
                : Vfio.ANY_IOVA;
        VfioDmaMapping m = session.container().mapDma(driver, va, BUFFER, iova, IommuProt.READ | IommuProt.WRITE);
        String mapping = mappingKind(session.type(), m, driver.virtToPhys(va));
        story.add(String.format("mapped %d KiB of %s (%s) at iova 0x%x: %s", BUFFER / 1024, driver,
                needsContiguous ? "physically contiguous" : "scattered pages", m.iova(), mapping));

        nic.dmaWrite(m.iova(), RX);
        session.container().syncForCpu(driver, m.iova(), RX.length);
        boolean in = Arrays.equals(driver.read(va, RX.length), RX);
        story.add("device wrote a " + RX.length + "-byte packet; the process " + (in ? "read it intact" : "read"
                + " something else"));
        driver.write(va + 8192, TX);
        session.container().syncForDevice(driver, m.iova() + 8192, TX.length);
        boolean out = Arrays.equals(nic.dmaRead(m.iova() + 8192, TX.length), TX);
        story.add("process wrote a " + TX.length + "-byte packet; the device " + (out ? "read it intact" : "read"
                + " something else"));
        long bounced = bounced(host);
        if (bounced > 0) {
            story.add("bounced through the swiotlb pool: " + bounced + " bytes copied by the CPU");
        }

        UserProcess victim = (xen != null ? xen.victimHost() : host).spawn("sshd", 0, Set.of());
        long secretVa = victim.mmap(4096);
        byte[] secret = "root:$6$secret-hash".getBytes(StandardCharsets.US_ASCII);
        victim.write(secretVa, secret);
        long target = xen != null ? xen.victimBusAddress(victim.virtToPhys(secretVa)) : victim.virtToPhys(secretVa);
        String stray;
        try {
            nic.dmaWrite(target, "0wned".getBytes(StandardCharsets.US_ASCII));
            stray = Arrays.equals(victim.read(secretVa, secret.length), secret) ? "no effect" : "corrupted";
        } catch (IommuFaultException e) {
            stray = "faulted";
        }
        story.add(String.format("stray DMA to 0x%x (a page of %s%s it was never given): %s", target, victim,
                xen != null ? " in guest-b" : "", switch (stray) {
                    case "faulted" -> "FAULTED, nothing written";
                    case "corrupted" -> "CORRUPTED the other process's memory";
                    default -> "wrote nothing there";
                }));
        if (xen != null && stray.equals("faulted")) {
            story.add("hypervisor log: " + xen.lastHypervisorLine());
        }
        story.add(host.taint().taintedString() + whoTainted(host));
        return new DemoResult(backend, "ok", "", Vfio.typeName(session.type()), node, group.isolated(), mapping, in,
                out, bounced, stray, host.taint().taintedString(), flags(host), story);
    }

    /** The NIC's group node, or empty when it has none (not bound, or no backend gave it a group). */
    private static String groupNode(Host host) {
        Group group = host.buses().find(EmbeddedHost.NIC).map(BusDevice::group).orElse(null);
        return group == null ? "" : host.vfio().nodeOf(group.id()).orElse("");
    }

    private static String flags(Host host) {
        StringBuilder sb = new StringBuilder();
        host.taint().flags().forEach(f -> sb.append(f.letter()));
        return sb.toString();
    }

    private static String mappingKind(int type, VfioDmaMapping m, long phys) {
        if (type == Vfio.TYPE1_IOMMU || type == Vfio.TYPE1v2_IOMMU) {
            return "translated by the IOMMU";
        }
        if (type == Vfio.NOIOMMU_IOMMU) {
            return "iova == phys, no translation";
        }
        return m.iova() == phys ? "direct, iova == phys" : "bounced through the swiotlb pool";
    }

    private static String whoTainted(Host host) {
        List<TaintRecord> records = host.taint().records();
        if (records.isEmpty()) {
            return "";
        }
        StringBuilder sb = new StringBuilder(" (");
        for (int i = 0; i < records.size(); i++) {
            TaintRecord r = records.get(i);
            sb.append(i == 0 ? "" : "; ").append(r.flag().letter()).append(" by ").append(r.who()).append(": ")
                    .append(r.event());
        }
        return sb.append(')').toString();
    }

    /** Bytes any loaded module's bounce counters show, both ways. */
    static long bounced(Host host) {
        long n = 0;
        for (LoadedModule m : host.modules().modules()) {
            if (m.backend() == null) {
                continue;
            }
            for (ModuleAttribute a : m.backend().attributes()) {
                if (a.name().startsWith("bounced_bytes_")) {
                    n += Long.parseLong(a.read().strip());
                }
            }
        }
        return n;
    }
}
