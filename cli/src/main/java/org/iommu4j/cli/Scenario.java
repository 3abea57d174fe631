package org.iommu4j.cli;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.fault.FaultAttr;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.loader.BackendLoader;

/**
 * A scenario file run step by step: a host (memory, CPUs, kernel command line, devices), backends with
 * parameters, processes with capabilities (and optionally {@code memlock}, their RLIMIT_MEMLOCK in bytes or
 * "unlimited"), then steps. Each step prints one line; the first unexpected
 * result stops the run with its step number ({@link StepFailed}); a scenario that cannot be read or says
 * something invalid (unknown step, missing field, unknown name, bad value) is {@link Malformed}. Steps:
 * <ul>
 *   <li>{@code load} {backend, params}; {@code unload} {backend}; {@code bind} {device}</li>
 *   <li>{@code open} {process, device, type}: container, group, iommu type, device</li>
 *   <li>{@code map} {process, device, buffer, bytes, contiguous, iova ("any" or a number), prot ("r", "w", "rw")}</li>
 *   <li>{@code cpu-write} / {@code cpu-read} {process, buffer, offset, data / expect}</li>
 *   <li>{@code device-dma} {device, buffer or address, offset, write: data | read: expect}</li>
 *   <li>{@code sync} {process, device, buffer, for: "cpu" | "device"}; {@code unmap} {process, device, buffer}</li>
 *   <li>{@code fault} {attr ("fail_page_alloc", "failslab" or "fail_iommu"), interval, probability, space, times}:
 *       arms the host's fault injection, so that the next steps meet an allocation failure</li>
 *   <li>{@code expect-error} {errno, step}: the inner step must fail with that errno</li>
 * </ul>
 * A host with {@code "xen": {"hide": ...}} is a guest of a Xen platform ({@link ScenarioXen}).
 */
final class Scenario {
    private final BackendLoader loader;
    private final JsonNode root;
    private final Consumer<String> out;
    private final PrintWriter progress;
    private final Map<String, UserProcess> processes = new HashMap<>();
    private final Map<String, VfioSession> sessions = new HashMap<>();
    private final Map<String, Buffer> buffers = new HashMap<>();
    private Host host;

    private record Buffer(UserProcess owner, String device, long vaddr, long bytes, VfioDmaMapping mapping) {
    }

    /** The outcome: the host as the steps left it, and how many steps ran. */
    record Outcome(Host host, int steps) {
    }

    /** A step that did not do what the scenario said, with its number. */
    static final class StepFailed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        StepFailed(String message) {
            super(message);
        }
    }

    /**
     * A scenario that cannot be run as written: unreadable, not JSON, or naming an unknown step, field, name or
     * value. Bad usage, where {@link StepFailed} is a failure of the operation.
     */
    static final class Malformed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Malformed(String message) {
            super(message);
        }
    }

    /** Clears the progress line: back to its start, erase to the end of the line (ANSI EL). */
    static final String CLEAR_LINE = "\r\u001b[K";

    /**
     * @param loader finds and loads backends
     * @param root the scenario
     * @param out takes each step's line
     * @param progress where to show "[step i/n]" while a step runs (a terminal's standard error), or null for
     *     no progress; the progress line is cleared before each step's line goes to {@code out}
     */
    Scenario(BackendLoader loader, JsonNode root, Consumer<String> out, PrintWriter progress) {
        this.loader = loader;
        this.root = root;
        this.out = out;
        this.progress = progress;
    }

    /**
     * @param file a scenario file
     * @return its JSON object
     * @throws Malformed if it cannot be read or is not a JSON object
     */
    static JsonNode read(Path file) {
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new Malformed("cannot read scenario " + file + ": no such file");
        } catch (IOException e) {
            throw new Malformed("cannot read scenario " + file + ": " + e.getClass().getSimpleName()
                    + (e.getMessage() == null ? "" : ": " + e.getMessage()));
        }
        JsonNode root;
        try {
            root = Json.mapper().readTree(text);
        } catch (JsonProcessingException e) {
            JsonLocation at = e.getLocation();
            throw new Malformed("scenario " + file + " is not valid JSON"
                    + (at == null ? "" : " at line " + at.getLineNr() + ", column " + at.getColumnNr()) + ": "
                    + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new Malformed("scenario " + file + " is not a JSON object: expected {\"host\": ..., \"steps\": [...]}"
                    + " (see examples/scenarios/)");
        }
        return root;
    }

    Outcome run() {
        try {
            host = root.path("host").has("xen") ? ScenarioXen.guest(loader, root.path("host"))
                    : buildHost(root.path("host"));
        } catch (IllegalArgumentException | org.iommu4j.api.InvalidParameterException e) {
            throw new Malformed("host: " + e.getMessage());
        }
        for (JsonNode p : root.path("processes")) {
            try {
                Set<Capability> caps = EnumSet.noneOf(Capability.class);
                p.path("capabilities").forEach(c -> caps.add(capability(c.asText())));
                String name = required(p, "name");
                String limit = p.has("memlock") ? p.get("memlock").asText() : null;
                UserProcess process = limit == null ? host.spawn(name, p.path("uid").asInt(0), caps)
                        : host.spawn(name, p.path("uid").asInt(0), caps, limit.equals("unlimited")
                                ? UserProcess.RLIM_INFINITY : Long.decode(limit));
                processes.put(name, process);
            } catch (IllegalArgumentException | org.iommu4j.api.IommuException e) {
                throw new Malformed("process " + p + ": " + e.getMessage());
            }
        }
        for (JsonNode b : root.path("backends")) {
            try {
                loader.load(host, required(b, "name"), params(b.path("params")));
            } catch (IllegalArgumentException e) {
                throw new Malformed("backend " + b + ": " + e.getMessage());
            }
        }
        JsonNode steps = root.path("steps");
        if (!steps.isMissingNode() && !steps.isArray()) {
            throw new Malformed("\"steps\" must be a list of steps, like [{\"do\": \"bind\", \"device\": ...}]");
        }
        for (int i = 0; i < steps.size(); i++) {
            JsonNode step = steps.get(i);
            showProgress("[step " + (i + 1) + "/" + steps.size() + "]");
            String what;
            try {
                if (!step.isObject()) {
                    throw new IllegalArgumentException("a step is an object like {\"do\": \"bind\", \"device\": ...},"
                            + " not " + step);
                }
                what = execute(step);
            } catch (StepFailed | IommuException e) {
                throw new StepFailed("step " + (i + 1) + " (" + step.path("do").asText() + ") failed: "
                        + (e instanceof IommuException ie ? ie.errno() + ": " : "") + e.getMessage());
            } catch (IllegalArgumentException e) {
                throw new Malformed("step " + (i + 1) + " (" + step.path("do").asText() + ") is malformed: "
                        + e.getMessage());
            } finally {
                clearProgress();
            }
            out.accept("step " + (i + 1) + ": " + what);
        }
        return new Outcome(host, steps.size());
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

    private static Capability capability(String name) {
        try {
            return Capability.valueOf(name);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown capability \"" + name + "\": expected one of "
                    + Arrays.toString(Capability.values()));
        }
    }

    private static Errno errno(String name) {
        try {
            return Errno.valueOf(name);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown errno \"" + name + "\": expected a name such as EINVAL,"
                    + " ENOMEM or EFAULT");
        }
    }

    private static Host buildHost(JsonNode h) {
        long memory = h.path("memoryMiB").asLong(Host.DEFAULT_MEMORY >> 20) << 20;
        int cpus = h.path("cpus").asInt(EmbeddedHost.CPUS);
        String commandLine = h.path("cmdline").asText("");
        if (!h.has("devices")) {
            return EmbeddedHost.build(commandLine, memory, cpus);
        }
        Host.Builder b = Host.builder()
                .memory(memory)
                .cpus(cpus)
                .commandLine(commandLine);
        for (JsonNode d : h.path("devices")) {
            PciDeviceSpec spec = PciDeviceSpec.of(required(d, "bdf")).withDmaMask(DmaMasks.bits(
                    d.path("dmaMaskBits").asInt(64)));
            if (d.hasNonNull("driver")) {
                spec = spec.withDriver(d.get("driver").asText());
            }
            b.pciDevice(spec);
        }
        return b.build();
    }

    private static Map<String, String> params(JsonNode node) {
        Map<String, String> params = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            params.put(e.getKey(), e.getValue().asText());
        }
        return params;
    }

    private static String required(JsonNode node, String field) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) {
            throw new IllegalArgumentException("missing \"" + field + "\" in " + node);
        }
        return v.asText();
    }

    private UserProcess process(JsonNode step) {
        String name = required(step, "process");
        UserProcess p = processes.get(name);
        if (p == null) {
            throw new IllegalArgumentException("no process \"" + name + "\"; the scenario declares "
                    + processes.keySet());
        }
        return p;
    }

    private Buffer buffer(JsonNode step) {
        String name = required(step, "buffer");
        Buffer b = buffers.get(name);
        if (b == null) {
            throw new IllegalArgumentException("no buffer \"" + name + "\" was mapped; mapped: " + buffers.keySet());
        }
        return b;
    }

    private VfioSession session(UserProcess p, String device) {
        VfioSession s = sessions.get(p.comm() + "@" + device);
        if (s == null) {
            throw new IllegalArgumentException(p.comm() + " has not opened " + device + "; add an \"open\" step");
        }
        return s;
    }

    private String execute(JsonNode step) {
        String kind = required(step, "do");
        switch (kind) {
            case "load": {
                String name = required(step, "backend");
                loader.load(host, name, params(step.path("params")));
                return "loaded " + name + " -> " + host.taint().taintedString();
            }
            case "unload": {
                String name = required(step, "backend");
                loader.unload(host, name);
                return "unloaded " + name;
            }
            case "bind": {
                String device = required(step, "device");
                host.vfio().bind(device);
                return "bound " + device + " to vfio-pci, " + host.vfio().nodeOf(
                        host.buses().require(device).group().id()).orElse("?");
            }
            case "open": {
                UserProcess p = process(step);
                String device = required(step, "device");
                VfioSession s = VfioSession.open(host, p, device, VfioSession.parseType(step.path("type").asText("any")));
                sessions.put(p.comm() + "@" + device, s);
                return p + " opened " + s.group().node() + " with " + Vfio.typeName(s.type());
            }
            case "map": {
                UserProcess p = process(step);
                String device = required(step, "device");
                long bytes = step.path("bytes").asLong(4096);
                long va = step.path("contiguous").asBoolean(false) ? p.mmapContiguous(bytes) : p.mmap(bytes);
                String iovaText = step.path("iova").asText("any");
                long iova = iovaText.equals("any") ? Vfio.ANY_IOVA
                        : iovaText.equals("phys") ? p.virtToPhys(va) : Long.decode(iovaText);
                VfioDmaMapping m = session(p, device).container().mapDma(p, va, bytes, iova,
                        prot(step.path("prot").asText("rw")));
                buffers.put(required(step, "buffer"), new Buffer(p, device, va, bytes, m));
                return String.format("mapped %s (%d bytes) for %s at iova 0x%x", step.get("buffer").asText(), bytes,
                        device, m.iova());
            }
            case "unmap": {
                Buffer b = buffer(step);
                long n = session(b.owner(), b.device()).container().unmapDma(b.owner(), b.mapping().iova(),
                        b.mapping().size());
                buffers.remove(step.get("buffer").asText());
                return "unmapped " + n + " bytes";
            }
            case "sync": {
                Buffer b = buffer(step);
                VfioSession s = session(b.owner(), b.device());
                if (step.path("for").asText("cpu").equals("cpu")) {
                    s.container().syncForCpu(b.owner(), b.mapping().iova(), b.bytes());
                } else {
                    s.container().syncForDevice(b.owner(), b.mapping().iova(), b.bytes());
                }
                return "synced " + step.get("buffer").asText() + " for the " + step.path("for").asText("cpu");
            }
            case "cpu-write": {
                Buffer b = buffer(step);
                byte[] data = required(step, "data").getBytes(StandardCharsets.UTF_8);
                b.owner().write(b.vaddr() + step.path("offset").asLong(0), data);
                return b.owner() + " wrote " + data.length + " bytes";
            }
            case "cpu-read": {
                Buffer b = buffer(step);
                byte[] expect = required(step, "expect").getBytes(StandardCharsets.UTF_8);
                byte[] got = b.owner().read(b.vaddr() + step.path("offset").asLong(0), expect.length);
                requireEqual(expect, got);
                return b.owner() + " read \"" + escape(got) + "\"";
            }
            case "device-dma": {
                BusDevice device = host.buses().require(required(step, "device"));
                long at = (step.has("buffer") ? buffer(step).mapping().iova() : Long.decode(required(step, "address")))
                        + step.path("offset").asLong(0);
                if (step.has("write")) {
                    byte[] data = step.get("write").asText().getBytes(StandardCharsets.UTF_8);
                    device.dmaWrite(at, data);
                    return String.format("%s wrote %d bytes at bus address 0x%x", device.name(), data.length, at);
                }
                byte[] expect = required(step, "read").getBytes(StandardCharsets.UTF_8);
                byte[] got = device.dmaRead(at, expect.length);
                requireEqual(expect, got);
                return String.format("%s read \"%s\" at bus address 0x%x", device.name(), escape(got), at);
            }
            case "fault": {
                FaultAttr attr = host.faults().attr(required(step, "attr"));
                attr.configure(step.path("interval").asLong(1), step.path("probability").asInt(100),
                        step.path("space").asLong(0), step.path("times").asInt(1));
                return String.format("armed %s: interval %d, probability %d%%, space %d, times %d", attr.name(),
                        step.path("interval").asLong(1), step.path("probability").asInt(100),
                        step.path("space").asLong(0), step.path("times").asInt(1));
            }
            case "expect-error": {
                Errno errno = errno(required(step, "errno"));
                if (!step.path("step").isObject()) {
                    throw new IllegalArgumentException("missing \"step\" in " + step + ": expect-error wraps a step"
                            + " object, like {\"do\": \"unload\", \"backend\": ...}");
                }
                try {
                    String done = execute(step.path("step"));
                    throw new StepFailed("expected " + errno + " but the step succeeded: " + done);
                } catch (IommuException e) {
                    if (e.errno() != errno) {
                        throw new StepFailed("expected " + errno + " but got " + e.errno() + ": " + e.getMessage());
                    }
                    return "failed as expected with " + errno + ": " + e.getMessage();
                }
            }
            default:
                throw new IllegalArgumentException("unknown step \"" + kind + "\": expected load, unload, bind, open,"
                        + " map, unmap, sync, cpu-write, cpu-read, device-dma, fault or expect-error");
        }
    }

    private static int prot(String text) {
        int prot = (text.contains("r") ? IommuProt.READ : 0) | (text.contains("w") ? IommuProt.WRITE : 0);
        if (prot == 0) {
            throw new IllegalArgumentException("prot \"" + text + "\" is invalid: expected r, w or rw");
        }
        return prot;
    }

    private static void requireEqual(byte[] expect, byte[] got) {
        if (!Arrays.equals(expect, got)) {
            throw new StepFailed("expected \"" + escape(expect) + "\" but found \"" + escape(got) + "\"");
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
