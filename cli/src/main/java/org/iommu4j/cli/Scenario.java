package org.iommu4j.cli;

import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciSlotPattern;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.cli.ScenarioFile.Bind;
import org.iommu4j.cli.ScenarioFile.CloseContainer;
import org.iommu4j.cli.ScenarioFile.CloseDevice;
import org.iommu4j.cli.ScenarioFile.CloseGroup;
import org.iommu4j.cli.ScenarioFile.CpuRead;
import org.iommu4j.cli.ScenarioFile.CpuWrite;
import org.iommu4j.cli.ScenarioFile.DeviceDma;
import org.iommu4j.cli.ScenarioFile.DeviceSpec;
import org.iommu4j.cli.ScenarioFile.ExpectError;
import org.iommu4j.cli.ScenarioFile.Fault;
import org.iommu4j.cli.ScenarioFile.HostSpec;
import org.iommu4j.cli.ScenarioFile.HotAdd;
import org.iommu4j.cli.ScenarioFile.HotRemove;
import org.iommu4j.cli.ScenarioFile.Load;
import org.iommu4j.cli.ScenarioFile.MapDma;
import org.iommu4j.cli.ScenarioFile.NewSlot;
import org.iommu4j.cli.ScenarioFile.Open;
import org.iommu4j.cli.ScenarioFile.ProcessSpec;
import org.iommu4j.cli.ScenarioFile.RemoveSlot;
import org.iommu4j.cli.ScenarioFile.SetRlimit;
import org.iommu4j.cli.ScenarioFile.Step;
import org.iommu4j.cli.ScenarioFile.Sync;
import org.iommu4j.cli.ScenarioFile.Unbind;
import org.iommu4j.cli.ScenarioFile.Unload;
import org.iommu4j.cli.ScenarioFile.Unmap;
import org.iommu4j.cli.Values.SyncFor;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.fault.FaultAttr;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioDeviceFile;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.loader.BackendLoader;

/**
 * A scenario run step by step (the format: {@link ScenarioFile}, docs/scenarios.md). {@link #check} looks at the
 * whole file before anything runs: value ranges, the one-of fields, and every cross-reference (processes,
 * buffers, containers, devices, backends and their parameters), so that a mistake anywhere is bad input
 * ({@link BadInput}) and no step ran. Then {@link #run} builds the host, loads the backends, spawns the
 * processes and runs the steps, one line each; the first unexpected result stops the run ({@link StepFailed},
 * which keeps the host as the step left it).
 * A host with {@code "xen": {"hide": ...}} is a guest of a Xen platform ({@link ScenarioXen}).
 */
final class Scenario {
    /** The largest buffer a map step may ask for: the largest host's memory. */
    static final long MAX_BUFFER = 1L << 40;

    private final BackendLoader loader;
    private final ScenarioReader.Read read;
    private final ScenarioFile file;
    private final Consumer<String> out;
    private final PrintWriter progress;
    private final Map<String, UserProcess> processes = new LinkedHashMap<>();
    private final Map<String, VfioContainer> containers = new HashMap<>();
    private final Map<String, VfioGroupFile> groups = new HashMap<>();
    private final Map<String, String> groupContainer = new HashMap<>();
    private final Map<String, VfioDeviceFile> devices = new HashMap<>();
    private final Map<String, Buffer> buffers = new HashMap<>();
    private List<String> warnings;
    private Host host;

    private record Buffer(UserProcess owner, VfioContainer container, long vaddr, long bytes,
            VfioDmaMapping mapping) {
    }

    /**
     * The outcome.
     *
     * @param host the host as the steps left it
     * @param steps how many steps ran
     */
    record Outcome(Host host, int steps) {
    }

    /** A step that did not do what the scenario said: exit 1, with the host as the step left it. */
    static final class StepFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        private final transient Host host;
        private final Errno errno;
        private final String path;

        StepFailed(String message, Errno errno, String path, Host host) {
            super(message);
            this.errno = errno;
            this.path = path;
            this.host = host;
        }

        /** @return the host as the failing step left it */
        Host host() {
            return host;
        }

        /** @return the errno the step failed with, or null when it failed otherwise */
        Errno errno() {
            return errno;
        }

        /** @return the failing step's JSON path, {@code steps[3]} */
        String path() {
            return path;
        }
    }

    /** A step's own failure, before the run adds which step it was. */
    private static final class Unexpected extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Unexpected(String message) {
            super(message);
        }
    }

    /** Clears the progress line: back to its start, erase to the end of the line (ANSI EL). */
    static final String CLEAR_LINE = "\r\u001b[K";

    /**
     * @param loader finds and loads backends
     * @param read the scenario
     * @param out takes each step's line
     * @param progress where to show "[step i/n]" while a step runs (a terminal's standard error), or null
     */
    Scenario(BackendLoader loader, ScenarioReader.Read read, Consumer<String> out, PrintWriter progress) {
        this.loader = loader;
        this.read = read;
        this.file = read.scenario();
        this.out = out;
        this.progress = progress;
    }

    private static String stepPath(int i) {
        return "steps[" + i + "]";
    }

    // ---- the check -----------------------------------------------------------------------------------------

    /** What the check knows while it walks the steps. */
    private final class Known {
        final Set<String> processNames = new LinkedHashSet<>();
        final Set<PciAddress> deviceSet = new LinkedHashSet<>();
        final Set<String> bufferNames = new LinkedHashSet<>();
        final Set<String> containerNames = new HashSet<>();
        final Set<String> opened = new HashSet<>();
    }

    /**
     * Checks the whole scenario; nothing runs.
     *
     * @return warnings (kernel command line words that will be ignored), each one line
     * @throws BadInput at the first mistake, with its JSON path
     */
    List<String> check() {
        if (warnings != null) {
            return warnings;
        }
        if (file.steps() == null) {
            throw new BadInput("steps", "missing: a scenario lists its steps, [] for none (see docs/scenarios.md)");
        }
        Known k = new Known();
        HostSpec h = file.host();
        List<String> found = new ArrayList<>();
        if (h != null) {
            range("host.memoryMiB", h.memoryMiB(), 16, 1L << 20, "MiB");
            range("host.cpus", h.cpus(), 1, 256, "CPUs");
            if (h.cmdline() != null) {
                found.addAll(CommandLineCheck.check(h.cmdline(), "host.cmdline", loader));
            }
            if (h.xen() != null && h.xen().hide() != null) {
                CommandLineCheck.hide("xen-pciback.hide", h.xen().hide(), "host.xen.hide");
            }
        }
        if (h == null || h.devices() == null) {
            k.deviceSet.addAll(EmbeddedHost.PCI_DEVICES);
        } else {
            List<DeviceSpec> ds = h.devices();
            for (int i = 0; i < ds.size(); i++) {
                device("host.devices[" + i + "]", ds.get(i), k);
            }
        }
        List<ScenarioFile.BackendSpec> backends = ScenarioReader.orEmpty(file.backends());
        for (int i = 0; i < backends.size(); i++) {
            var b = backends.get(i);
            CommandLineCheck.requireBackend(loader, b.name(), "backends[" + i + "].name");
            CommandLineCheck.params(b.name(), b.params(), "backends[" + i + "].params", loader);
        }
        List<ProcessSpec> ps = ScenarioReader.orEmpty(file.processes());
        for (int i = 0; i < ps.size(); i++) {
            ProcessSpec p = ps.get(i);
            String at = "processes[" + i + "]";
            if (p.name().isBlank()) {
                throw new BadInput(at + ".name", "\"\" is not a process name: expected a name such as \"qemu\"");
            }
            if (!k.processNames.add(p.name())) {
                throw new BadInput(at + ".name", Values.quote(p.name()) + " is declared twice: process names are"
                        + " unique");
            }
            range(at + ".uid", p.uid(), 0, Integer.MAX_VALUE, "");
        }
        List<Step> steps = file.steps();
        for (int i = 0; i < steps.size(); i++) {
            checkStep(stepPath(i), steps.get(i), k, true);
        }
        warnings = List.copyOf(found);
        return warnings;
    }

    private void device(String at, DeviceSpec d, Known k) {
        range(at + ".dmaMaskBits", d.dmaMaskBits(), 1, 64, "bits");
        if (!k.deviceSet.add(d.bdf())) {
            throw new BadInput(at + ".bdf", d.bdf() + " is on the host twice: a PCI address is unique");
        }
    }

    private static void range(String at, Number value, long min, long max, String unit) {
        if (value != null && (value.longValue() < min || value.longValue() > max)) {
            throw new BadInput(at, value + " is out of range: expected " + min + " to " + max
                    + (unit.isEmpty() ? "" : " " + unit));
        }
    }

    private void process(String at, String name, Known k, boolean required) {
        if (name == null) {
            if (required) {
                throw new BadInput(at, "missing: expected one of the processes " + k.processNames);
            }
            return;
        }
        if (!k.processNames.contains(name)) {
            throw new BadInput(at, Values.quote(name) + " is not a process of the scenario: expected one of "
                    + (k.processNames.isEmpty() ? "none (declare it under \"processes\")" : k.processNames));
        }
    }

    private static void knownDevice(String at, PciAddress device, Known k) {
        if (!k.deviceSet.contains(device)) {
            throw new BadInput(at, device + " is not a device of the host: expected one of " + k.deviceSet
                    + " (or one a hot-add step adds before)");
        }
    }

    private static void buffer(String at, String name, Known k) {
        if (!k.bufferNames.contains(name)) {
            throw new BadInput(at, Values.quote(name) + " is not a buffer an earlier map step makes: expected one of "
                    + (k.bufferNames.isEmpty() ? "none yet (map it first)" : k.bufferNames));
        }
    }

    private static void oneOf(String at, String a, Object va, String b, Object vb) {
        if ((va == null) == (vb == null)) {
            throw new BadInput(at, va == null ? "needs \"" + a + "\" or \"" + b + "\"" : "has both \"" + a
                    + "\" and \"" + b + "\": give one");
        }
    }

    /**
     * @param defines whether the step's effects count for later steps (not inside expect-error, which must fail)
     */
    private void checkStep(String at, Step step, Known k, boolean defines) {
        if (step instanceof Load s) {
            CommandLineCheck.requireBackend(loader, s.backend(), at + ".backend");
            CommandLineCheck.params(s.backend(), s.params(), at + ".params", loader);
        } else if (step instanceof Unload s) {
            CommandLineCheck.requireBackend(loader, s.backend(), at + ".backend");
        } else if (step instanceof Bind s) {
            knownDevice(at + ".device", s.device(), k);
        } else if (step instanceof Unbind s) {
            knownDevice(at + ".device", s.device(), k);
        } else if (step instanceof Open s) {
            process(at + ".process", s.process(), k, true);
            knownDevice(at + ".device", s.device(), k);
            if (defines) {
                k.opened.add(s.process() + "/" + s.device());
                if (s.container() != null) {
                    k.containerNames.add(s.process() + "/" + s.container());
                }
            }
        } else if (step instanceof MapDma s) {
            process(at + ".process", s.process(), k, true);
            oneOf(at, "device", s.device(), "container", s.container());
            if (s.device() != null) {
                knownDevice(at + ".device", s.device(), k);
                if (!k.opened.contains(s.process() + "/" + s.device())) {
                    throw new BadInput(at + ".device", s.process() + " does not open " + s.device()
                            + " in an earlier step: add an open step before this map");
                }
            } else {
                container(at + ".container", s.process(), s.container(), k);
            }
            range(at + ".bytes", s.bytes().bytes(), 1, MAX_BUFFER, "bytes (1 TiB)");
            if (s.buffer().isEmpty()) {
                throw new BadInput(at + ".buffer", "\"\" is not a buffer name: expected a name such as \"rx\"");
            }
            if (defines) {
                k.bufferNames.add(s.buffer());
            }
        } else if (step instanceof Unmap s) {
            process(at + ".process", s.process(), k, false);
            buffer(at + ".buffer", s.buffer(), k);
        } else if (step instanceof Sync s) {
            process(at + ".process", s.process(), k, false);
            buffer(at + ".buffer", s.buffer(), k);
        } else if (step instanceof CpuWrite s) {
            process(at + ".process", s.process(), k, false);
            buffer(at + ".buffer", s.buffer(), k);
        } else if (step instanceof CpuRead s) {
            process(at + ".process", s.process(), k, false);
            buffer(at + ".buffer", s.buffer(), k);
        } else if (step instanceof DeviceDma s) {
            knownDevice(at + ".device", s.device(), k);
            oneOf(at, "buffer", s.buffer(), "address", s.address());
            oneOf(at, "write", s.write(), "read", s.read());
            if (s.buffer() != null) {
                buffer(at + ".buffer", s.buffer(), k);
            }
        } else if (step instanceof CloseDevice s) {
            process(at + ".process", s.process(), k, true);
            knownDevice(at + ".device", s.device(), k);
        } else if (step instanceof CloseGroup s) {
            process(at + ".process", s.process(), k, true);
            knownDevice(at + ".device", s.device(), k);
        } else if (step instanceof CloseContainer s) {
            process(at + ".process", s.process(), k, true);
            oneOf(at, "container", s.container(), "device", s.device());
            if (s.container() != null) {
                container(at + ".container", s.process(), s.container(), k);
            } else {
                knownDevice(at + ".device", s.device(), k);
            }
        } else if (step instanceof HotRemove s) {
            knownDevice(at + ".device", s.device(), k);
        } else if (step instanceof HotAdd s) {
            if (k.deviceSet.contains(s.device().bdf()) && defines) {
                return; // adding it again is the kernel's EEXIST to report
            }
            range(at + ".device.dmaMaskBits", s.device().dmaMaskBits(), 1, 64, "bits");
            if (defines) {
                k.deviceSet.add(s.device().bdf());
            }
        } else if (step instanceof SetRlimit s) {
            process(at + ".process", s.process(), k, true);
        } else if (step instanceof NewSlot s) {
            slot(at, s.backend(), s.slot());
        } else if (step instanceof RemoveSlot s) {
            slot(at, s.backend(), s.slot());
        } else if (step instanceof Fault s) {
            range(at + ".interval", s.interval(), 1, Long.MAX_VALUE, "");
            range(at + ".probability", s.probability(), 0, 100, "percent");
            range(at + ".times", s.times(), -1, Integer.MAX_VALUE, "(-1 for no limit)");
        } else if (step instanceof ExpectError s) {
            checkStep(at + "." + (read.version() == 1 ? "step" : "try"), s.attempt(), k, false);
        }
    }

    private static void container(String at, String process, String name, Known k) {
        if (!k.containerNames.contains(process + "/" + name)) {
            throw new BadInput(at, Values.quote(name) + " is not a container " + process + " opens in an earlier"
                    + " step: name it in an open step's \"container\" first");
        }
    }

    private void slot(String at, String backend, String slot) {
        CommandLineCheck.requireBackend(loader, backend, at + ".backend");
        try {
            PciSlotPattern.parse(slot);
        } catch (IommuException e) {
            throw new BadInput(at + ".slot", e.getMessage());
        }
    }

    // ---- the run -------------------------------------------------------------------------------------------

    /**
     * Checks, then runs.
     *
     * @return the outcome
     * @throws BadInput if the check finds a mistake (nothing ran)
     * @throws StepFailed at the first unexpected result
     */
    Outcome run() {
        check();
        host = file.host() != null && file.host().xen() != null ? ScenarioXen.guest(loader, file.host())
                : buildHost(file.host());
        for (ProcessSpec p : ScenarioReader.orEmpty(file.processes())) {
            Set<Capability> caps = EnumSet.noneOf(Capability.class);
            caps.addAll(ScenarioReader.orEmpty(p.capabilities()));
            int uid = p.uid() == null ? 0 : p.uid();
            // RLIMIT_MEMLOCK as the process starts with it, soft and hard (a raise later needs CAP_SYS_RESOURCE)
            UserProcess process = p.memlock() == null ? host.spawn(p.name(), uid, caps) : host.spawn(p.name(), uid,
                    caps, p.memlock().unlimited() ? UserProcess.RLIM_INFINITY : p.memlock().bytes());
            processes.put(p.name(), process);
        }
        List<ScenarioFile.BackendSpec> backends = ScenarioReader.orEmpty(file.backends());
        for (int i = 0; i < backends.size(); i++) {
            var b = backends.get(i);
            try {
                loader.load(host, b.name(), params(b.params()));
            } catch (IommuException e) {
                throw new StepFailed("backends[" + i + "] (" + b.name() + ") failed to load: " + e.errno() + ": "
                        + e.getMessage(), e.errno(), "backends[" + i + "]", host);
            }
        }
        List<Step> steps = file.steps();
        for (int i = 0; i < steps.size(); i++) {
            Step step = steps.get(i);
            showProgress("[step " + (i + 1) + "/" + steps.size() + "]");
            String what;
            try {
                what = execute(step);
            } catch (Unexpected e) {
                throw new StepFailed("step " + (i + 1) + " (" + name(step) + ") failed: " + e.getMessage(), null,
                        stepPath(i), host);
            } catch (IommuException e) {
                throw new StepFailed("step " + (i + 1) + " (" + name(step) + ") failed: " + e.errno() + ": "
                        + e.getMessage(), e.errno(), stepPath(i), host);
            } finally {
                clearProgress();
            }
            out.accept("step " + (i + 1) + ": " + what);
        }
        return new Outcome(host, steps.size());
    }

    /** @return the host, once {@link #run} built it, else null */
    Host host() {
        return host;
    }

    static String name(Step step) {
        String simple = step instanceof MapDma ? "map" : step.getClass().getSimpleName();
        for (String n : Step.NAMES) {
            if (n.replace("-", "").replace("_", "").equalsIgnoreCase(simple)) {
                return n;
            }
        }
        return simple;
    }

    private void showProgress(String text) {
        if (progress != null) {
            progress.print(CLEAR_LINE + text);
            progress.flush();
        }
    }

    private void clearProgress() {
        if (progress != null) {
            progress.print(CLEAR_LINE);
            progress.flush();
        }
    }

    private static Host buildHost(HostSpec h) {
        long memory = (h == null || h.memoryMiB() == null ? Host.DEFAULT_MEMORY >> 20 : h.memoryMiB()) << 20;
        int cpus = h == null || h.cpus() == null ? EmbeddedHost.CPUS : h.cpus();
        String commandLine = h == null || h.cmdline() == null ? "" : h.cmdline();
        boolean debug = h != null && Boolean.TRUE.equals(h.dmaApiDebug());
        if (h == null || h.devices() == null) {
            return EmbeddedHost.builder(commandLine, memory, cpus).dmaApiDebug(debug).build();
        }
        Host.Builder b = Host.builder().memory(memory).cpus(cpus).commandLine(commandLine).dmaApiDebug(debug);
        for (DeviceSpec d : h.devices()) {
            b.pciDevice(spec(d));
        }
        return b.build();
    }

    private static PciDeviceSpec spec(DeviceSpec d) {
        PciDeviceSpec spec = PciDeviceSpec.of(d.bdf().toString()).withDmaMask(DmaMasks.bits(
                d.dmaMaskBits() == null ? 64 : d.dmaMaskBits()));
        return d.driver() == null ? spec : spec.withDriver(d.driver());
    }

    private static Map<String, String> params(Map<String, String> params) {
        return params == null ? Map.of() : new LinkedHashMap<>(params);
    }

    private UserProcess process(String name) {
        return processes.get(name);
    }

    private static long offset(Values.Size offset) {
        return offset == null ? 0 : offset.bytes();
    }

    private String execute(Step step) {
        if (step instanceof Load s) {
            loader.load(host, s.backend(), params(s.params()));
            return "loaded " + s.backend() + " -> " + host.taint().taintedString();
        }
        if (step instanceof Unload s) {
            loader.unload(host, s.backend());
            return "unloaded " + s.backend();
        }
        if (step instanceof Bind s) {
            host.vfio().bind(s.device().toString());
            return "bound " + s.device() + " to vfio-pci, " + host.vfio().nodeOf(
                    host.buses().require(s.device().toString()).group().id()).orElse("?");
        }
        if (step instanceof Unbind s) {
            host.vfio().unbind(s.device().toString());
            return "unbound " + s.device() + " from vfio-pci";
        }
        if (step instanceof Open s) {
            return open(s);
        }
        if (step instanceof MapDma s) {
            return map(s);
        }
        if (step instanceof Unmap s) {
            Buffer b = buffer(s.process(), s.buffer());
            long n = b.container().unmapDma(b.owner(), b.mapping().iova(), b.mapping().size());
            buffers.remove(s.buffer());
            return "unmapped " + n + " bytes";
        }
        if (step instanceof Sync s) {
            Buffer b = buffer(s.process(), s.buffer());
            if (s.forWhom() == SyncFor.CPU) {
                b.container().syncForCpu(b.owner(), b.mapping().iova(), b.bytes());
            } else {
                b.container().syncForDevice(b.owner(), b.mapping().iova(), b.bytes());
            }
            return "synced " + s.buffer() + " for the " + s.forWhom();
        }
        if (step instanceof CpuWrite s) {
            Buffer b = buffer(s.process(), s.buffer());
            byte[] data = s.data().getBytes(StandardCharsets.UTF_8);
            b.owner().write(b.vaddr() + offset(s.offset()), data);
            return b.owner() + " wrote " + data.length + " bytes";
        }
        if (step instanceof CpuRead s) {
            Buffer b = buffer(s.process(), s.buffer());
            byte[] expect = s.expect().getBytes(StandardCharsets.UTF_8);
            byte[] got = b.owner().read(b.vaddr() + offset(s.offset()), expect.length);
            requireEqual(expect, got);
            return b.owner() + " read \"" + escape(got) + "\"";
        }
        if (step instanceof DeviceDma s) {
            BusDevice device = host.buses().require(s.device().toString());
            long at = (s.buffer() != null ? buffer(null, s.buffer()).mapping().iova() : s.address().value())
                    + offset(s.offset());
            if (s.write() != null) {
                byte[] data = s.write().getBytes(StandardCharsets.UTF_8);
                device.dmaWrite(at, data);
                return String.format("%s wrote %d bytes at bus address 0x%x", device.name(), data.length, at);
            }
            byte[] expect = s.read().getBytes(StandardCharsets.UTF_8);
            byte[] got = device.dmaRead(at, expect.length);
            requireEqual(expect, got);
            return String.format("%s read \"%s\" at bus address 0x%x", device.name(), escape(got), at);
        }
        if (step instanceof CloseDevice s) {
            VfioDeviceFile f = devices.remove(s.process() + "/" + s.device());
            if (f == null) {
                throw new IommuException(Errno.EBADF, s.process() + " has no open file of " + s.device());
            }
            f.close(process(s.process()));
            return s.process() + " closed " + s.device();
        }
        if (step instanceof CloseGroup s) {
            String key = groupKey(s.process(), s.device());
            VfioGroupFile g = key == null ? null : groups.remove(key);
            if (g == null) {
                throw new IommuException(Errno.EBADF, s.process() + " has no open group file of " + s.device());
            }
            g.close(process(s.process()));
            groupContainer.remove(key);
            return s.process() + " closed " + g.node();
        }
        if (step instanceof CloseContainer s) {
            String key = s.container() != null ? s.process() + "/" + s.container()
                    : containerOf(s.process(), s.device());
            VfioContainer c = key == null ? null : containers.remove(key);
            if (c == null) {
                throw new IommuException(Errno.EBADF, s.process() + " has no open container "
                        + (s.container() != null ? Values.quote(s.container()) : "of " + s.device()));
            }
            c.close(process(s.process()));
            groupContainer.values().removeIf(key::equals);
            return s.process() + " closed its container" + (s.container() == null ? "" : " " + s.container());
        }
        if (step instanceof HotRemove s) {
            host.buses().remove(s.device().toString());
            return "hot-removed " + s.device();
        }
        if (step instanceof HotAdd s) {
            host.buses().addPci(spec(s.device()));
            Group g = host.buses().require(s.device().bdf().toString()).group();
            return "hot-added " + s.device().bdf() + (g == null ? ", in no iommu group" : ", iommu group "
                    + g.id());
        }
        if (step instanceof SetRlimit s) {
            UserProcess p = process(s.process());
            p.setMemlockLimit(s.memlock().unlimited() ? UserProcess.RLIM_INFINITY : s.memlock().bytes());
            return p + " RLIMIT_MEMLOCK " + s.memlock();
        }
        if (step instanceof NewSlot s) {
            attribute(s.backend(), "new_slot").write(s.slot());
            return "wrote " + s.slot() + " to " + s.backend() + "'s new_slot";
        }
        if (step instanceof RemoveSlot s) {
            attribute(s.backend(), "remove_slot").write(s.slot());
            return "wrote " + s.slot() + " to " + s.backend() + "'s remove_slot";
        }
        if (step instanceof Fault s) {
            FaultAttr attr = host.faults().attr(s.attr().name());
            long interval = s.interval() == null ? 1 : s.interval();
            int probability = s.probability() == null ? 100 : s.probability();
            long space = offset(s.space());
            int times = s.times() == null ? 1 : s.times();
            attr.configure(interval, probability, space, times);
            return String.format("armed %s: interval %d, probability %d%%, space %d, times %d", attr.name(),
                    interval, probability, space, times);
        }
        if (step instanceof ExpectError s) {
            String done;
            try {
                done = execute(s.attempt());
            } catch (IommuException e) {
                if (e.errno() != s.errno()) {
                    throw new Unexpected("expected " + s.errno() + " but got " + e.errno() + ": " + e.getMessage());
                }
                return "failed as expected with " + s.errno() + ": " + e.getMessage();
            }
            throw new Unexpected("expected " + s.errno() + " but the step succeeded: " + done);
        }
        throw new IllegalStateException("unknown step " + step);
    }

    private ModuleAttribute attribute(String backend, String name) {
        LoadedModule m = host.modules().require(backend);
        if (m.backend() == null) {
            throw new IommuException(Errno.ENOENT, backend + " is not live");
        }
        return m.backend().attributes().stream().filter(a -> a.name().equals(name)).findFirst()
                .orElseThrow(() -> new IommuException(Errno.ENOENT, "/sys/module/" + m.name() + "/" + name
                        + ": no such file: " + m.name() + " keeps no slot list"));
    }

    private String groupKey(String process, PciAddress device) {
        Group g = host.buses().find(device.toString()).map(BusDevice::group).orElse(null);
        if (g != null) {
            return process + "/" + g.id();
        }
        // a removed device: the group file the process opened for it, if any
        VfioDeviceFile f = devices.get(process + "/" + device);
        if (f != null) {
            for (var e : groups.entrySet()) {
                if (e.getKey().startsWith(process + "/") && e.getValue().openDevices().contains(f)) {
                    return e.getKey();
                }
            }
        }
        return null;
    }

    private String containerOf(String process, PciAddress device) {
        String g = groupKey(process, device);
        return g == null ? null : groupContainer.get(g);
    }

    private String open(Open s) {
        UserProcess p = process(s.process());
        String bdf = s.device().toString();
        BusDevice dev = host.buses().require(bdf);
        Group group = dev.group();
        if (group == null) {
            throw new IommuException(Errno.ENODEV, bdf + " is in no iommu group: no loaded backend manages it");
        }
        String node = host.vfio().nodeOf(group.id()).orElseThrow(() -> new IommuException(Errno.ENODEV, bdf
                + " has no VFIO group node: bind it to vfio-pci first"));
        String gkey = s.process() + "/" + group.id();
        VfioGroupFile g = groups.get(gkey);
        if (g != null) {
            VfioDeviceFile d = g.getDevice(p, bdf);
            devices.put(s.process() + "/" + bdf, d);
            return p + " opened " + bdf + " of " + node + ", which it has open";
        }
        String ckey = s.process() + "/" + (s.container() != null ? s.container() : "@" + bdf);
        VfioContainer existing = containers.get(ckey);
        List<org.iommu4j.kernel.proc.FileObject> opened = new ArrayList<>();
        try {
            VfioContainer c = existing != null ? existing : host.vfio().openContainer(p);
            if (existing == null) {
                opened.add(c);
            }
            g = host.vfio().openGroup(p, node);
            opened.add(0, g);
            g.setContainer(p, c);
            int type = s.type().value();
            if (existing == null) {
                if (type == 0) {
                    VfioContainer fresh = c;
                    type = VfioSession.PREFERRED_TYPES.stream().filter(t -> fresh.checkExtension(p, t) > 0).findFirst()
                            .orElseThrow(() -> new IommuException(Errno.ENODEV, "no VFIO iommu type is offered for "
                                    + node + ": the loaded backends offer none for its kind of group"));
                }
                c.setIommu(p, type);
            }
            VfioDeviceFile d = g.getDevice(p, bdf);
            containers.put(ckey, c);
            groups.put(gkey, g);
            groupContainer.put(gkey, ckey);
            devices.put(s.process() + "/" + bdf, d);
            if (existing != null) {
                return p + " opened " + node + " into its container " + s.container() + " ("
                        + c.iommuType().stream().mapToObj(Vfio::typeName).findFirst().orElse("?") + ")";
            }
            return p + " opened " + node + " with " + Vfio.typeName(type);
        } catch (RuntimeException e) {
            for (org.iommu4j.kernel.proc.FileObject a : opened) {
                try {
                    a.close(p);
                } catch (RuntimeException ignored) {
                    // closing what this step opened is best effort; the step's own error is what counts
                }
            }
            throw e;
        }
    }

    private String map(MapDma s) {
        UserProcess p = process(s.process());
        VfioContainer c;
        String where;
        if (s.container() != null) {
            c = containers.get(s.process() + "/" + s.container());
            where = "container " + s.container();
            if (c == null) {
                throw new IommuException(Errno.EBADF, s.process() + " has no open container "
                        + Values.quote(s.container()));
            }
        } else {
            String key = containerOf(s.process(), s.device());
            c = key == null ? null : containers.get(key);
            where = s.device().toString();
            if (c == null) {
                throw new IommuException(Errno.EBADF, s.process() + " has not opened " + s.device()
                        + " (or closed its container)");
            }
        }
        int type = c.iommuType().orElse(0);
        if ("any".equals(s.iova().keyword()) && (type == Vfio.TYPE1_IOMMU || type == Vfio.TYPE1v2_IOMMU)) {
            // Said before the kernel's "Vfio.ANY_IOVA is not allowed", in the scenario's words (same errno).
            throw new IommuException(Errno.EINVAL, "vfio-iommu-type1 maps at the iova the user chooses: give the map"
                    + " an \"iova\" such as \"0x40000000\" (\"any\" is for the SWIOTLB and NOIOMMU types)");
        }
        long bytes = s.bytes().bytes();
        long va = Boolean.TRUE.equals(s.contiguous()) ? p.mmapContiguous(bytes) : p.mmap(bytes);
        long iova = s.iova().keyword() == null ? s.iova().address().value()
                : s.iova().keyword().equals("phys") ? p.virtToPhys(va) : Vfio.ANY_IOVA;
        VfioDmaMapping m;
        try {
            m = c.mapDma(p, va, bytes, iova, s.prot().bits());
        } catch (RuntimeException e) {
            p.munmap(va);
            throw e;
        }
        buffers.put(s.buffer(), new Buffer(p, c, va, bytes, m));
        return String.format("mapped %s (%d bytes) for %s at iova 0x%x", s.buffer(), bytes, where, m.iova());
    }

    private Buffer buffer(String process, String name) {
        Buffer b = buffers.get(name);
        if (b == null) {
            throw new IommuException(Errno.EINVAL, "buffer " + Values.quote(name) + " is not mapped (its map"
                    + " failed, or it was unmapped)");
        }
        if (process != null && !b.owner().comm().equals(process)) {
            throw new Unexpected("buffer " + Values.quote(name) + " belongs to " + b.owner() + ", not " + process);
        }
        return b;
    }

    private static void requireEqual(byte[] expect, byte[] got) {
        if (!Arrays.equals(expect, got)) {
            throw new Unexpected("expected \"" + escape(expect) + "\" but found \"" + escape(got) + "\"");
        }
    }

    /**
     * @param bytes bytes read from memory
     * @return them as printable ASCII: backslash, double quote and control or non-ASCII bytes escaped C-style
     *     ({@code \\}, {@code \"}, {@code \n}, {@code \r}, {@code \t}, else {@code \xNN}), so that a step line
     *     stays one clean line on a terminal
     */
    static String escape(byte[] bytes) {
        StringBuilder sb = new StringBuilder(bytes.length);
        for (byte b : bytes) {
            int c = b & 0xff;
            switch (c) {
                case '\\' -> sb.append("\\\\");
                case '"' -> sb.append("\\\"");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c >= 0x20 && c < 0x7f) {
                        sb.append((char) c);
                    } else {
                        sb.append(String.format("\\x%02x", c));
                    }
                }
            }
        }
        return sb.toString();
    }
}
