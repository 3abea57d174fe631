package org.iommu4j.tck;

import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicReference;
import java.util.jar.Attributes;
import java.util.jar.JarFile;
import java.util.regex.Pattern;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.dma.DirectDmaOps;
import org.iommu4j.kernel.fault.FaultAttr;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.module.ModuleState;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.tck.KitHost.Mapped;
import org.iommu4j.tck.KitHost.Session;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.opentest4j.AssertionFailedError;

/**
 * The backend compatibility kit: subclass it in your backend's tests with one factory method,
 * {@link #createProvider()}, and the declaration of what your backend claims, {@link #claims()}; every check
 * then runs against your backend on fresh simulated hosts. Checks of a capability you do not claim are skipped
 * with the reason, never failed; a failure message starts with the {@link Rule} broken, {@code [iommu.overlap]}.
 *
 * <pre>{@code
 * class MyBackendKitTest extends BackendCompatibilityKit {
 *     protected BackendProvider createProvider() { return new MyProvider(); }
 *     protected BackendClaims claims() {
 *         return BackendClaims.builder().translation().isolation().dmaApi().smallPagesOnly()
 *                 .vfioTypes(Vfio.TYPE1v2_IOMMU, Vfio.TYPE1_IOMMU).build();
 *     }
 * }
 * }</pre>
 *
 * <p>The host every check starts from has {@value #DEVICE} (a PCI device the kit assigns and DMAs with), a
 * device with a 32-bit DMA mask ({@value #NARROW_DEVICE}) and 8 GiB of memory; override {@link #host()} to add
 * what your backend needs. System properties: {@value #JAR_PROPERTY} (the built jar, for the metadata checks;
 * by default the jar or directory the provider class came from), {@value #STEPS_PROPERTY} (steps of the random
 * sequence, {@value #DEFAULT_STEPS} by default) and {@value #SEED_PROPERTY} (its seed, printed on failure).
 */
public abstract class BackendCompatibilityKit {
    /** The PCI device the kit assigns to VFIO and DMAs with. */
    public static final String DEVICE = "0000:06:0d.0";
    /** A PCI device that can address only the low 4 GiB. */
    public static final String NARROW_DEVICE = "0000:07:00.0";
    /** The device the hot-plug check adds and removes. */
    public static final String HOTPLUG_DEVICE = "0000:08:00.0";
    /** The system property naming the built jar. */
    public static final String JAR_PROPERTY = "iommu4j.tck.jar";
    /** The system property with the number of random steps. */
    public static final String STEPS_PROPERTY = "iommu4j.tck.steps";
    /** The system property with the random seed. */
    public static final String SEED_PROPERTY = "iommu4j.tck.seed";
    /** Random steps in a default run. */
    public static final int DEFAULT_STEPS = 300;

    private static final int PAGE = PhysicalMemory.PAGE_SIZE;
    private static final long HIGH = 6L << 30;
    private static final Pattern VERSION = Pattern.compile("\\d+(\\.\\d+){0,2}([-+.][0-9A-Za-z.+-]+)?");
    private static final List<String> LICENSES = List.of("GPL", "GPL v2", "GPL and additional rights",
            "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL", "Proprietary");
    private static final String SERVICES = "META-INF/services/" + BackendProvider.class.getName();

    /**
     * The one factory: a new provider, as the loader would instantiate it (constructed, nothing started).
     *
     * @return a new provider of the backend under test
     */
    protected abstract BackendProvider createProvider();

    /** @return what the backend claims; checks of what it does not claim are skipped */
    protected abstract BackendClaims claims();

    /** @return providers of the modules the backend depends on, loaded before it, in order; none by default */
    protected List<BackendProvider> dependencies() {
        return List.of();
    }

    /** @return the host every check starts from; override to add devices or a command line */
    protected Host.Builder host() {
        return Host.builder().memory(8L << 30).cpus(2)
                .pciDevice(PciDeviceSpec.of(DEVICE))
                .pciDevice(PciDeviceSpec.of(NARROW_DEVICE).withDmaMask(DmaMasks.bits(32)));
    }

    /**
     * The machine every check starts from, nothing loaded: by default {@link #host()} built. Override it when the
     * backend runs on a machine a builder does not make (a Xen guest of a platform, say).
     *
     * @return a fresh host
     */
    protected Host buildHost() {
        return host().build();
    }

    /**
     * @return the backend's built jar (or class directory) for the metadata checks: the {@value #JAR_PROPERTY}
     *     property if set, else where the provider's class came from
     */
    protected Optional<Path> builtJar() {
        String property = System.getProperty(JAR_PROPERTY);
        if (property != null && !property.isBlank()) {
            return Optional.of(Path.of(property));
        }
        try {
            var cs = createProvider().getClass().getProtectionDomain().getCodeSource();
            return cs == null || cs.getLocation() == null ? Optional.empty()
                    : Optional.of(Path.of(cs.getLocation().toURI()));
        } catch (java.net.URISyntaxException | RuntimeException e) {
            return Optional.empty();
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // What every check uses

    /** @return a fresh host with nothing loaded */
    protected final KitHost newHost() {
        return new KitHost(buildHost(), dependencies(), createProvider(), claims().parameters());
    }

    /** @return a fresh host with the backend loaded */
    protected final KitHost loadedHost() {
        KitHost h = newHost();
        h.load();
        return h;
    }

    /** Skips the check when the rule is a known bug of the backend, naming it. */
    private void rule(Rule rule) {
        String bug = claims().knownBugs().get(rule.id());
        assumeFalse(bug != null, () -> "skipped for a known bug: " + bug);
    }

    private static void claimed(boolean claimed, String what) {
        assumeTrue(claimed, () -> "not claimed: " + what);
    }

    /** Fails naming the rule. */
    static AssertionFailedError broken(Rule rule, String detail) {
        return new AssertionFailedError(rule.tag() + ": " + detail);
    }

    static void check(Rule rule, boolean ok, String detail) {
        if (!ok) {
            throw broken(rule, detail);
        }
    }

    static <T> void checkEquals(Rule rule, T expected, T actual, String what) {
        if (!java.util.Objects.equals(expected, actual)) {
            throw new AssertionFailedError(rule.tag() + ": " + what + ": expected " + expected + " but was " + actual,
                    expected, actual);
        }
    }

    /** Runs {@code call} and demands an {@link IommuException} with the errno. */
    static IommuException expectErrno(Rule rule, Errno errno, String what, Runnable call) {
        try {
            call.run();
        } catch (IommuException e) {
            if (e.errno() != errno) {
                throw broken(rule, what + ": expected " + errno + " but got " + e.errno() + ": " + e.getMessage());
            }
            return e;
        } catch (RuntimeException e) {
            throw broken(rule, what + ": expected IommuException " + errno + " but got " + e);
        }
        throw broken(rule, what + ": expected " + errno + " but it succeeded");
    }

    private static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < length; i++) {
            b[i] = (byte) r.nextInt(256);
        }
        return b;
    }

    private static byte[] read(Host host, long phys, int length) {
        byte[] b = new byte[length];
        host.memory().read(phys, b, 0, length);
        return b;
    }

    private static void write(Host host, long phys, byte[] bytes) {
        host.memory().write(phys, bytes, 0, bytes.length);
    }

    /** @return the IOMMU ops the backend registered for PCI, if any */
    private static Optional<IommuOps> ops(KitHost h) {
        return h.host().iommu().ops(BusType.PCI).filter(o -> h.host().iommu().opsOwner(BusType.PCI)
                .map(ref -> ref.name().equals(h.module().name())).orElse(false));
    }

    /** The best claimed VFIO type, the one the round trips use. */
    private int preferredType() {
        for (int t : List.of(Vfio.TYPE1v2_IOMMU, Vfio.TYPE1_IOMMU, Vfio.SWIOTLB_IOMMU, Vfio.NOIOMMU_IOMMU)) {
            if (claims().vfioTypes().contains(t)) {
                return t;
            }
        }
        return claims().vfioTypes().iterator().next();
    }

    /** A session on a loaded host, privileged as the group needs. */
    private Session session(KitHost h) {
        h.bind();
        return h.open(h.capabilitiesFor(), preferredType());
    }

    // ----------------------------------------------------------------------------------------------------------

    /** Metadata: what the loader reads before anything starts. */
    @Nested
    @DisplayName("metadata")
    public class Metadata {
        @Test
        @DisplayName("metadata.name: a valid module name")
        void name() {
            rule(Rule.METADATA_NAME);
            String name = createProvider().info().name();
            check(Rule.METADATA_NAME, name.length() <= 55, "'" + name + "' is " + name.length()
                    + " characters; the kernel's MODULE_NAME_LEN allows 55");
        }

        @Test
        @DisplayName("metadata.version: MAJOR[.MINOR[.PATCH]][-suffix]")
        void version() {
            rule(Rule.METADATA_VERSION);
            String v = createProvider().info().version();
            check(Rule.METADATA_VERSION, VERSION.matcher(v).matches(), "version '" + v
                    + "' is not MAJOR[.MINOR[.PATCH]][-suffix], for example 1.0.0 or 2.1-rc1");
        }

        @Test
        @DisplayName("metadata.license: one of the kernel's MODULE_LICENSE strings")
        void license() {
            rule(Rule.METADATA_LICENSE);
            String l = createProvider().info().license();
            check(Rule.METADATA_LICENSE, LICENSES.contains(l), "license '" + l + "' is not one the kernel knows: "
                    + LICENSES);
        }

        @Test
        @DisplayName("metadata.api-range: accepts this API, within its major version")
        void apiRange() {
            rule(Rule.METADATA_API_RANGE);
            var range = createProvider().info().apiVersions();
            check(Rule.METADATA_API_RANGE, range.contains(ApiVersion.CURRENT), "apiVersions " + range
                    + " does not accept API " + ApiVersion.CURRENT + ", the one it is tested against");
            check(Rule.METADATA_API_RANGE, range.min().major() == ApiVersion.CURRENT.major(), "apiVersions " + range
                    + " starts in another major version than " + ApiVersion.CURRENT);
        }

        @Test
        @DisplayName("metadata.info-stable: info() returns the same metadata every time")
        void infoStable() {
            rule(Rule.METADATA_INFO_STABLE);
            BackendProvider p = createProvider();
            ModuleInfo first = p.info();
            for (int i = 0; i < 3; i++) {
                checkEquals(Rule.METADATA_INFO_STABLE, first, p.info(), "info() call " + (i + 2));
            }
            checkEquals(Rule.METADATA_INFO_STABLE, first, createProvider().info(), "info() of a second instance");
        }

        @Test
        @DisplayName("metadata.constructor: constructing the provider does no work")
        void constructorDoesNoWork() {
            rule(Rule.METADATA_CONSTRUCTOR);
            Properties before = (Properties) System.getProperties().clone();
            Set<Thread> threads = Thread.getAllStackTraces().keySet();
            createProvider();
            Set<Thread> started = new HashSet<>(Thread.getAllStackTraces().keySet());
            started.removeAll(threads);
            started.removeIf(t -> !t.isAlive());
            check(Rule.METADATA_CONSTRUCTOR, started.isEmpty(), "the constructor started threads " + started);
            Map<Object, Object> changed = new HashMap<>(System.getProperties());
            changed.entrySet().removeAll(before.entrySet());
            check(Rule.METADATA_CONSTRUCTOR, changed.isEmpty() && before.size() == System.getProperties().size(),
                    "the constructor changed system properties " + changed);
        }

        @Test
        @DisplayName("metadata.service-file: the built jar lists the provider")
        void serviceFile() throws IOException {
            rule(Rule.METADATA_SERVICE_FILE);
            Path jar = builtJar().orElse(null);
            assumeTrue(jar != null && Files.exists(jar), () -> "no built jar or class directory found; set -D"
                    + JAR_PROPERTY + "=path/to/your-backend.jar");
            String className = createProvider().getClass().getName();
            List<String> listed = listed(jar);
            check(Rule.METADATA_SERVICE_FILE, listed != null, jar + " has no " + SERVICES + "; add it, listing "
                    + className);
            check(Rule.METADATA_SERVICE_FILE, listed.contains(className), jar + "!/" + SERVICES + " lists "
                    + listed + " but not " + className);
        }

        @Test
        @DisplayName("metadata.manifest: Iommu4j-Api-Version and Iommu4j-Backend-Name agree with info()")
        void manifest() throws IOException {
            rule(Rule.METADATA_MANIFEST);
            Path jar = builtJar().orElse(null);
            assumeTrue(jar != null && Files.isRegularFile(jar), () -> "no built jar (running from " + jar
                    + "): the manifest is checked when -D" + JAR_PROPERTY + " names the packaged jar");
            ModuleInfo info = createProvider().info();
            Attributes a;
            try (JarFile f = new JarFile(jar.toFile())) {
                a = f.getManifest() == null ? new Attributes() : f.getManifest().getMainAttributes();
            }
            String api = a.getValue(ApiVersion.MANIFEST_ATTRIBUTE);
            check(Rule.METADATA_MANIFEST, api != null, jar + " has no " + ApiVersion.MANIFEST_ATTRIBUTE
                    + " in its manifest; the loader refuses such a plugin");
            ApiVersion built = ApiVersion.parse(api);
            check(Rule.METADATA_MANIFEST, info.apiVersions().contains(built), ApiVersion.MANIFEST_ATTRIBUTE + ": "
                    + built + " is outside info().apiVersions() " + info.apiVersions());
            check(Rule.METADATA_MANIFEST, built.major() == ApiVersion.CURRENT.major()
                    && built.compareTo(ApiVersion.CURRENT) <= 0, ApiVersion.MANIFEST_ATTRIBUTE + ": " + built
                    + " cannot run on API " + ApiVersion.CURRENT);
            String name = a.getValue("Iommu4j-Backend-Name");
            check(Rule.METADATA_MANIFEST, name != null, jar + " has no Iommu4j-Backend-Name in its manifest");
            checkEquals(Rule.METADATA_MANIFEST, ModuleInfo.normalizeName(info.name()),
                    ModuleInfo.normalizeName(name), "Iommu4j-Backend-Name against info().name()");
        }
    }

    /** @return the classes a jar's or directory's services file lists, or null without one */
    private static List<String> listed(Path jarOrDir) throws IOException {
        byte[] content;
        if (Files.isDirectory(jarOrDir)) {
            Path file = jarOrDir.resolve(SERVICES);
            if (!Files.isRegularFile(file)) {
                return null;
            }
            content = Files.readAllBytes(file);
        } else {
            try (JarFile f = new JarFile(jarOrDir.toFile())) {
                var e = f.getJarEntry(SERVICES);
                if (e == null) {
                    return null;
                }
                try (InputStream in = f.getInputStream(e)) {
                    content = in.readAllBytes();
                }
            }
        }
        List<String> out = new ArrayList<>();
        for (String line : new String(content, StandardCharsets.UTF_8).split("\n")) {
            String s = line.replaceFirst("#.*", "").strip();
            if (!s.isEmpty()) {
                out.add(s);
            }
        }
        return out;
    }

    /** Lifecycle: start, stop, again, two hosts, in use. */
    @Nested
    @DisplayName("lifecycle")
    public class Lifecycle {
        @Test
        @DisplayName("lifecycle.start: starts on a fresh host")
        void start() {
            rule(Rule.LIFECYCLE_START);
            KitHost h = newHost();
            LoadedModule m;
            try {
                m = h.load();
            } catch (RuntimeException e) {
                throw broken(Rule.LIFECYCLE_START, "load failed: " + e);
            }
            checkEquals(Rule.LIFECYCLE_START, ModuleState.LIVE, m.state(), "module state");
        }

        @Test
        @DisplayName("lifecycle.stop: stop leaves nothing behind")
        void stopLeavesNothing() {
            rule(Rule.LIFECYCLE_STOP);
            KitHost h = newHost();
            long free = h.host().pageAllocator().freePageCount();
            h.load();
            LoadedModule m = h.module();
            exercise(h);
            int logged = h.host().log().messages().size();
            h.host().modules().remove(m.name());
            List<String> after = h.host().log().messages();
            List<String> left = after.subList(Math.min(logged, after.size()), after.size()).stream()
                    .filter(s -> s.contains("registrations behind at exit")).toList();
            check(Rule.LIFECYCLE_STOP, left.isEmpty(), "stop() left registrations for the kernel to remove: "
                    + left);
            for (BusType bus : BusType.values()) {
                check(Rule.LIFECYCLE_STOP, h.host().iommu().opsOwner(bus).filter(o -> o.name().equals(m.name()))
                        .isEmpty(), "its IOMMU ops are still registered for " + bus);
            }
            check(Rule.LIFECYCLE_STOP, h.host().vfioDrivers().all().stream()
                    .noneMatch(r -> r.owner().name().equals(m.name())), "its VFIO iommu driver is still registered");
            h.unloadAll(); // its dependencies too: what is left now, nobody will remove
            for (BusDevice d : h.host().buses().all()) {
                check(Rule.LIFECYCLE_STOP, d.group() == null, d.name() + " is still in iommu group " + d.group());
                check(Rule.LIFECYCLE_STOP, h.host().dma().opsFor(d) instanceof DirectDmaOps, d.name()
                        + " still has its DMA ops " + h.host().dma().opsFor(d));
            }
            check(Rule.LIFECYCLE_STOP, h.host().pageAllocator().freePageCount() == free, "pages leaked: "
                    + (free - h.host().pageAllocator().freePageCount()) + " fewer free after unload");
        }

        @Test
        @DisplayName("lifecycle.load-twice: loads again after an unload")
        void loadTwice() {
            rule(Rule.LIFECYCLE_LOAD_TWICE);
            KitHost h = loadedHost();
            exercise(h);
            h.unloadAll();
            try {
                h.load();
            } catch (RuntimeException e) {
                throw broken(Rule.LIFECYCLE_LOAD_TWICE, "the second load failed: " + e);
            }
            exercise(h);
            expectErrno(Rule.LIFECYCLE_LOAD_TWICE, Errno.EEXIST, "loading it while loaded", h::load);
        }

        @Test
        @DisplayName("lifecycle.two-hosts: two hosts side by side stay independent")
        void twoHosts() {
            rule(Rule.LIFECYCLE_TWO_HOSTS);
            BackendProvider shared = createProvider();
            KitHost a = new KitHost(buildHost(), dependencies(), shared, claims().parameters());
            KitHost b = new KitHost(buildHost(), dependencies(), shared, claims().parameters());
            a.load();
            b.load();
            exercise(a);
            exercise(b);
            a.unloadAll();
            check(Rule.LIFECYCLE_TWO_HOSTS, b.module().state() == ModuleState.LIVE, "unloading host A's module"
                    + " changed host B's");
            try {
                exercise(b);
            } catch (AssertionError | RuntimeException e) {
                throw broken(Rule.LIFECYCLE_TWO_HOSTS, "host B stopped working when host A unloaded: " + e);
            }
            for (BusType bus : BusType.values()) {
                check(Rule.LIFECYCLE_TWO_HOSTS, a.host().iommu().ops(bus).isEmpty() || b.host().iommu().ops(bus)
                        .isEmpty() || a.host().iommu().ops(bus).get() != b.host().iommu().ops(bus).get(),
                        "both hosts share one IommuOps for " + bus);
            }
        }

        @Test
        @DisplayName("lifecycle.in-use: unload refused while held, allowed after")
        void inUse() {
            rule(Rule.LIFECYCLE_IN_USE);
            claimed(!claims().vfioTypes().isEmpty(), "a VFIO type, to hold the module with an open group");
            KitHost h = loadedHost();
            Session s = session(h);
            String name = h.module().name();
            expectErrno(Rule.LIFECYCLE_IN_USE, Errno.EAGAIN, "unloading while a VFIO group is open",
                    () -> h.host().modules().remove(name));
            checkEquals(Rule.LIFECYCLE_IN_USE, ModuleState.LIVE, h.module().state(), "state after the refusal");
            s.close();
            h.host().vfio().unbind(DEVICE);
            h.host().modules().remove(name);
        }
    }

    /** What every lifecycle check does with a loaded backend to see that it works: DMA, and VFIO if offered. */
    private void exercise(KitHost h) {
        if (claims().dmaApi()) {
            dmaRoundTrip(h, DmaDirection.BIDIRECTIONAL);
        }
        if (!claims().vfioTypes().isEmpty()) {
            try (Session s = session(h)) {
                vfioRoundTrip(h, s);
            }
            h.host().vfio().unbind(DEVICE);
        }
    }

    /** IOMMU contracts of the backend's domains for VFIO ({@code UNMANAGED}). */
    @Nested
    @DisplayName("iommu contracts")
    public class IommuContracts {
        private KitHost h;
        private IommuOps ops;
        private IommuDomain domain;

        private void setUp(Rule rule) {
            rule(rule);
            claimed(claims().translation(), "translation");
            h = loadedHost();
            ops = ops(h).orElseThrow(() -> broken(rule, "translation is claimed but no IOMMU ops are registered"
                    + " for PCI"));
            domain = ops.allocateDomain(DomainType.UNMANAGED);
        }

        private long pages(int n) {
            return h.host().pageAllocator().allocateContiguous(n, PageAllocator.NO_LIMIT);
        }

        @Test
        @DisplayName("iommu.map: mapped iovas translate, others fault")
        void map() {
            setUp(Rule.IOMMU_MAP);
            long pa = pages(2);
            long iova = 0x40_0000;
            domain.map(iova, pa, 2 * PAGE, IommuProt.READ | IommuProt.WRITE);
            checkEquals(Rule.IOMMU_MAP, pa + 0x123, domain.iovaToPhys(iova + 0x123), "iova_to_phys(iova + 0x123)");
            checkEquals(Rule.IOMMU_MAP, pa + PAGE + 8, domain.iovaToPhys(iova + PAGE + 8), "second page");
            checkEquals(Rule.IOMMU_MAP, IommuDomain.FAULT_NOT_MAPPED, domain.iovaToPhys(iova + 2 * PAGE),
                    "the page after the mapping");
            checkEquals(Rule.IOMMU_MAP, IommuDomain.FAULT_NOT_MAPPED, domain.iovaToPhys(pa + 4 * PAGE),
                    "an iova never mapped (the physical address of other memory)");
            domain.unmap(iova, 2 * PAGE);
            checkEquals(Rule.IOMMU_MAP, IommuDomain.FAULT_NOT_MAPPED, domain.iovaToPhys(iova), "after unmap");
        }

        @Test
        @DisplayName("iommu.overlap: mapping over a mapping is EEXIST and changes nothing")
        void overlap() {
            setUp(Rule.IOMMU_OVERLAP);
            long pa = pages(2);
            long other = pages(2);
            long iova = 0x80_0000;
            domain.map(iova, pa, 2 * PAGE, IommuProt.READ);
            expectErrno(Rule.IOMMU_OVERLAP, Errno.EEXIST, "mapping the second page again",
                    () -> domain.map(iova + PAGE, other, 2 * PAGE, IommuProt.READ));
            checkEquals(Rule.IOMMU_OVERLAP, pa + PAGE, domain.iovaToPhys(iova + PAGE), "the overlapped page");
            checkEquals(Rule.IOMMU_OVERLAP, IommuDomain.FAULT_NOT_MAPPED, domain.iovaToPhys(iova + 2 * PAGE),
                    "the page past the original mapping");
        }

        @Test
        @DisplayName("iommu.zero-length: a zero-length map is EINVAL")
        void zeroLength() {
            setUp(Rule.IOMMU_ZERO_LENGTH);
            long pa = pages(1);
            expectErrno(Rule.IOMMU_ZERO_LENGTH, Errno.EINVAL, "map of 0 bytes",
                    () -> domain.map(0xC0_0000, pa, 0, IommuProt.READ));
            checkEquals(Rule.IOMMU_ZERO_LENGTH, IommuDomain.FAULT_NOT_MAPPED, domain.iovaToPhys(0xC0_0000),
                    "the iova of the zero-length map");
        }

        @Test
        @DisplayName("iommu.overflow: iova + size past 2^64 is EINVAL")
        void overflow() {
            setUp(Rule.IOMMU_OVERFLOW);
            long pa = pages(2);
            long top = -PAGE; // 0xffff_ffff_ffff_f000
            expectErrno(Rule.IOMMU_OVERFLOW, Errno.EINVAL, "map of 2 pages at 0x" + Long.toHexString(top),
                    () -> domain.map(top, pa, 2 * PAGE, IommuProt.READ));
            checkEquals(Rule.IOMMU_OVERFLOW, IommuDomain.FAULT_NOT_MAPPED, domain.iovaToPhys(top), "the last page");
            checkEquals(Rule.IOMMU_OVERFLOW, IommuDomain.FAULT_NOT_MAPPED, domain.iovaToPhys(0), "iova 0 (wrapped)");
        }

        @Test
        @DisplayName("iommu.unaligned: unaligned sizes are EINVAL")
        void unaligned() {
            setUp(Rule.IOMMU_UNALIGNED);
            long pa = pages(2);
            expectErrno(Rule.IOMMU_UNALIGNED, Errno.EINVAL, "map of 0x1800 bytes through the core",
                    () -> h.host().iommu().map(ops, domain, 0x100_0000, pa, 0x1800, IommuProt.READ));
            expectErrno(Rule.IOMMU_UNALIGNED, Errno.EINVAL, "map of 0x1800 bytes on the domain",
                    () -> domain.map(0x100_0000, pa, 0x1800, IommuProt.READ));
            checkEquals(Rule.IOMMU_UNALIGNED, IommuDomain.FAULT_NOT_MAPPED, domain.iovaToPhys(0x100_0000),
                    "the iova of the refused map");
        }

        @Test
        @DisplayName("iommu.double-unmap: the second unmap unmaps nothing")
        void doubleUnmap() {
            setUp(Rule.IOMMU_DOUBLE_UNMAP);
            long pa = pages(2);
            domain.map(0x140_0000, pa, 2 * PAGE, IommuProt.READ);
            checkEquals(Rule.IOMMU_DOUBLE_UNMAP, 2L * PAGE, domain.unmap(0x140_0000, 2 * PAGE), "first unmap");
            long second;
            try {
                second = domain.unmap(0x140_0000, 2 * PAGE);
            } catch (RuntimeException e) {
                throw broken(Rule.IOMMU_DOUBLE_UNMAP, "the second unmap threw " + e);
            }
            checkEquals(Rule.IOMMU_DOUBLE_UNMAP, 0L, second, "bytes the second unmap unmapped");
        }

        @Test
        @DisplayName("iommu.page-sizes: advertised sizes are the claimed ones, and each maps")
        void pageSizes() {
            setUp(Rule.IOMMU_PAGE_SIZES);
            checkEquals(Rule.IOMMU_PAGE_SIZES, "0x" + Long.toHexString(claims().pageSizes()),
                    "0x" + Long.toHexString(ops.pageSizeBitmap()), "pageSizeBitmap()");
            long iova = 1L << 32;
            for (long sizes = ops.pageSizeBitmap(); sizes != 0; sizes &= sizes - 1) {
                long size = Long.lowestOneBit(sizes);
                if (size > (4L << 20)) {
                    continue; // a gigabyte page would take a gigabyte of the host: not tried
                }
                int order = Long.numberOfTrailingZeros(size) - PhysicalMemory.PAGE_SHIFT;
                long pa = h.host().pageAllocator().allocatePages(order, PageAllocator.NO_LIMIT);
                h.host().iommu().map(ops, domain, iova, pa, size, IommuProt.READ);
                checkEquals(Rule.IOMMU_PAGE_SIZES, pa + size - 1, domain.iovaToPhys(iova + size - 1),
                        "last byte of a 0x" + Long.toHexString(size) + " page");
                checkEquals(Rule.IOMMU_PAGE_SIZES, size, h.host().iommu().unmap(ops, domain, iova, size),
                        "unmapped bytes of a 0x" + Long.toHexString(size) + " page");
                iova += 1L << 32;
            }
        }

        @Test
        @DisplayName("iommu.concurrent: a stable mapping translates right while others change")
        void concurrentTranslate() throws InterruptedException {
            setUp(Rule.IOMMU_CONCURRENT);
            long stable = pages(1);
            long moving = pages(1);
            domain.map(0x200_0000, stable, PAGE, IommuProt.READ);
            AtomicReference<String> wrong = new AtomicReference<>();
            Thread mapper = new Thread(() -> {
                for (int i = 0; i < 2000 && wrong.get() == null; i++) {
                    long iova = 0x200_0000 + (long) (1 + i % 8) * PAGE;
                    try {
                        domain.map(iova, moving, PAGE, IommuProt.READ);
                        domain.unmap(iova, PAGE);
                    } catch (RuntimeException e) {
                        wrong.compareAndSet(null, "map/unmap of a free neighbour failed: " + e);
                    }
                }
            }, "tck-mapper");
            mapper.start();
            for (int i = 0; i < 20000 || mapper.isAlive(); i++) {
                long got = domain.iovaToPhys(0x200_0000 + 64);
                if (got != stable + 64) {
                    wrong.compareAndSet(null, "the stable page translated to 0x" + Long.toHexString(got));
                }
            }
            mapper.join();
            check(Rule.IOMMU_CONCURRENT, wrong.get() == null, String.valueOf(wrong.get()));
        }
    }

    private void dmaRoundTrip(KitHost h, DmaDirection direction) {
        try {
            dmaRoundTripOnce(h, direction);
        } catch (IommuFaultException e) {
            throw broken(Rule.DMA_ROUND_TRIP, direction + ": the device's DMA at its own DMA address faulted: "
                    + e.getMessage());
        }
    }

    private void dmaRoundTripOnce(KitHost h, DmaDirection direction) {
        Host host = h.host();
        BusDevice dev = h.device();
        long phys = host.pageAllocator().allocatePages(1, PageAllocator.NO_LIMIT);
        int len = 2 * PAGE;
        if (direction != DmaDirection.FROM_DEVICE) {
            byte[] out = pattern(len, 1);
            write(host, phys, out);
            long dma = host.dma().map(dev, phys, len, direction);
            byte[] seen = dev.dmaRead(dma, len);
            host.dma().unmap(dev, dma, len, direction);
            check(Rule.DMA_ROUND_TRIP, Arrays.equals(out, seen), direction + ": the device read other bytes than the"
                    + " CPU wrote (dma 0x" + Long.toHexString(dma) + ", phys 0x" + Long.toHexString(phys) + ")");
        }
        if (direction != DmaDirection.TO_DEVICE) {
            byte[] in = pattern(len, 2);
            long dma = host.dma().map(dev, phys, len, direction);
            dev.dmaWrite(dma, in);
            host.dma().unmap(dev, dma, len, direction);
            check(Rule.DMA_ROUND_TRIP, Arrays.equals(in, read(host, phys, len)), direction + ": after unmap the CPU"
                    + " reads other bytes than the device wrote (dma 0x" + Long.toHexString(dma) + ")");
        }
        host.pageAllocator().freePages(phys, 1);
    }

    /** The DMA API through the backend. */
    @Nested
    @DisplayName("DMA API")
    public class DmaApi {
        @Test
        @DisplayName("dma.round-trip: real bytes both ways, every direction")
        void roundTrip() {
            rule(Rule.DMA_ROUND_TRIP);
            claimed(claims().dmaApi(), "the DMA API");
            KitHost h = loadedHost();
            for (DmaDirection d : List.of(DmaDirection.TO_DEVICE, DmaDirection.FROM_DEVICE,
                    DmaDirection.BIDIRECTIONAL)) {
                dmaRoundTrip(h, d);
            }
        }

        @Test
        @DisplayName("dma.sync: sync hands the bytes over each way")
        void sync() {
            rule(Rule.DMA_SYNC);
            claimed(claims().dmaApi(), "the DMA API");
            KitHost h = loadedHost();
            Host host = h.host();
            BusDevice dev = h.device();
            long phys = host.pageAllocator().allocatePages(0, PageAllocator.NO_LIMIT);
            long dma = host.dma().map(dev, phys, PAGE, DmaDirection.BIDIRECTIONAL);
            byte[] fromDevice = pattern(PAGE, 3);
            dev.dmaWrite(dma, fromDevice);
            host.dma().syncForCpu(dev, dma, PAGE, DmaDirection.BIDIRECTIONAL);
            check(Rule.DMA_SYNC, Arrays.equals(fromDevice, read(host, phys, PAGE)), "after sync for CPU the CPU does"
                    + " not see what the device wrote");
            byte[] fromCpu = pattern(PAGE, 4);
            write(host, phys, fromCpu);
            host.dma().syncForDevice(dev, dma, PAGE, DmaDirection.BIDIRECTIONAL);
            check(Rule.DMA_SYNC, Arrays.equals(fromCpu, dev.dmaRead(dma, PAGE)), "after sync for device the device"
                    + " does not see what the CPU wrote");
            host.dma().unmap(dev, dma, PAGE, DmaDirection.BIDIRECTIONAL);
        }

        @Test
        @DisplayName("dma.coherent: a coherent buffer needs no sync")
        void coherent() {
            rule(Rule.DMA_COHERENT);
            claimed(claims().coherentAllocation(), "coherent allocation");
            KitHost h = loadedHost();
            Host host = h.host();
            BusDevice dev = h.device();
            CoherentBuffer b = host.dma().allocateCoherent(dev, 2 * PAGE);
            byte[] cpu = pattern(2 * PAGE, 5);
            write(host, b.phys(), cpu);
            check(Rule.DMA_COHERENT, Arrays.equals(cpu, dev.dmaRead(b.dmaAddress(), 2 * PAGE)), "the device does not"
                    + " see what the CPU wrote to the coherent buffer");
            byte[] device = pattern(2 * PAGE, 6);
            dev.dmaWrite(b.dmaAddress(), device);
            check(Rule.DMA_COHERENT, Arrays.equals(device, read(host, b.phys(), 2 * PAGE)), "the CPU does not see"
                    + " what the device wrote to the coherent buffer");
            host.dma().freeCoherent(dev, b);
        }

        @Test
        @DisplayName("dma.bounce: an unreachable buffer is bounced")
        void bounce() {
            rule(Rule.DMA_BOUNCE);
            claimed(claims().bounceBuffering(), "bounce buffering");
            KitHost h = loadedHost();
            Host host = h.host();
            assumeTrue(host.memory().size() > HIGH + PAGE, "the host has no memory at 6 GiB for a buffer a 32-bit"
                    + " device cannot reach: give host() more memory");
            BusDevice narrow = host.buses().require(NARROW_DEVICE);
            byte[] out = pattern(PAGE, 7);
            write(host, HIGH, out);
            long dma = host.dma().map(narrow, HIGH, PAGE, DmaDirection.TO_DEVICE);
            check(Rule.DMA_BOUNCE, dma != HIGH && Long.compareUnsigned(dma + PAGE, 1L << 32) <= 0, "a buffer at 6 GiB"
                    + " for a 32-bit device was mapped at 0x" + Long.toHexString(dma));
            check(Rule.DMA_BOUNCE, Arrays.equals(out, narrow.dmaRead(dma, PAGE)), "the device read other bytes"
                    + " through the bounce buffer");
            host.dma().unmap(narrow, dma, PAGE, DmaDirection.TO_DEVICE);
            byte[] in = pattern(PAGE, 8);
            dma = host.dma().map(narrow, HIGH, PAGE, DmaDirection.FROM_DEVICE);
            narrow.dmaWrite(dma, in);
            host.dma().unmap(narrow, dma, PAGE, DmaDirection.FROM_DEVICE);
            check(Rule.DMA_BOUNCE, Arrays.equals(in, read(host, HIGH, PAGE)), "what the device wrote did not come back"
                    + " from the bounce buffer at unmap");
        }
    }

    private static void vfioRoundTrip(KitHost h, Session s) {
        try {
            vfioRoundTripOnce(h, s);
        } catch (IommuFaultException e) {
            throw broken(Rule.VFIO_ROUND_TRIP, "the device's DMA into its own mapping faulted: " + e.getMessage());
        }
    }

    private static void vfioRoundTripOnce(KitHost h, Session s) {
        BusDevice dev = h.device();
        Mapped m = s.map(4 * PAGE);
        byte[] in = pattern(256, 9);
        dev.dmaWrite(m.mapping().iova(), in);
        s.container().syncForCpu(s.process(), m.mapping().iova(), in.length);
        check(Rule.VFIO_ROUND_TRIP, Arrays.equals(in, s.process().read(m.va(), in.length)), "the process does not"
                + " read what the device wrote at iova 0x" + Long.toHexString(m.mapping().iova()));
        byte[] out = pattern(256, 10);
        s.process().write(m.va() + 2 * PAGE, out);
        s.container().syncForDevice(s.process(), m.mapping().iova() + 2 * PAGE, out.length);
        check(Rule.VFIO_ROUND_TRIP, Arrays.equals(out, dev.dmaRead(m.mapping().iova() + 2 * PAGE, out.length)),
                "the device does not read what the process wrote");
        s.container().unmapDma(s.process(), m.mapping().iova(), 4 * PAGE);
        s.process().munmap(m.va());
    }

    /** VFIO: the offered types, a user's DMA, a stray DMA. */
    @Nested
    @DisplayName("VFIO")
    public class VfioChecks {
        @Test
        @DisplayName("vfio.types: exactly the claimed iommu types are offered")
        void types() {
            rule(Rule.VFIO_TYPES);
            KitHost h = loadedHost();
            Set<Integer> offered = new TreeSet<>();
            try {
                h.bind();
            } catch (IommuException e) {
                check(Rule.VFIO_TYPES, claims().vfioTypes().isEmpty(), "binding " + DEVICE + " to VFIO failed, but"
                        + " types " + claims().vfioTypeNames() + " are claimed: " + e.getMessage());
                return;
            }
            UserProcess p = h.host().spawn("tck-probe", 0, Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
            var container = h.host().vfio().openContainer(p);
            var group = h.host().vfio().openGroup(p, h.group().id());
            group.setContainer(p, container);
            for (int t : BackendClaims.KNOWN_VFIO_TYPES) {
                if (container.checkExtension(p, t) > 0) {
                    offered.add(t);
                }
            }
            container.close(p);
            group.close(p);
            Set<String> names = new TreeSet<>();
            offered.forEach(t -> names.add(Vfio.typeName(t)));
            checkEquals(Rule.VFIO_TYPES, claims().vfioTypeNames(), names.toString(), "VFIO types offered");
        }

        @Test
        @DisplayName("vfio.round-trip: a user process's DMA both ways")
        void roundTrip() {
            rule(Rule.VFIO_ROUND_TRIP);
            claimed(!claims().vfioTypes().isEmpty(), "a VFIO type");
            KitHost h = loadedHost();
            try (Session s = session(h)) {
                vfioRoundTrip(h, s);
            }
        }

        @Test
        @DisplayName("vfio.stray-dma: DMA outside the mappings faults and reaches no other process")
        void strayDma() {
            rule(Rule.VFIO_STRAY_DMA);
            claimed(!claims().vfioTypes().isEmpty(), "a VFIO type");
            claimed(claims().isolation(), "isolation (without it a stray DMA lands; see claims.no-isolation)");
            KitHost h = loadedHost();
            try (Session s = session(h)) {
                s.map(4 * PAGE);
                strayDmaFaults(Rule.VFIO_STRAY_DMA, h);
            }
        }
    }

    /** A device's DMA at another process's page must fault and leave the page as it was. */
    private static void strayDmaFaults(Rule rule, KitHost h) {
        UserProcess victim = h.host().spawn("victim", 0, Set.of());
        long va = victim.mmap(PAGE);
        byte[] secret = pattern(64, 11);
        victim.write(va, secret);
        long target = victim.virtToPhys(va);
        try {
            h.device().dmaWrite(target, new byte[] {'0', 'w', 'n', 'e', 'd'});
        } catch (IommuFaultException e) {
            check(rule, Arrays.equals(secret, victim.read(va, secret.length)), "the DMA faulted but the other"
                    + " process's page changed");
            return;
        }
        throw broken(rule, "a DMA by " + DEVICE + " at 0x" + Long.toHexString(target) + " (another process's page,"
                + " never mapped for it) did not fault" + (Arrays.equals(secret, victim.read(va, secret.length))
                ? "" : " and overwrote that process's memory"));
    }

    /** The claims hold. */
    @Nested
    @DisplayName("the claims hold")
    public class ClaimsHold {
        @Test
        @DisplayName("claims.isolation: isolation claimed means isolated")
        void isolation() {
            rule(Rule.CLAIMS_ISOLATION);
            KitHost h = loadedHost();
            boolean bound;
            try {
                h.bind();
                bound = true;
            } catch (IommuException e) {
                bound = false;
            }
            if (!claims().isolation()) {
                check(Rule.CLAIMS_ISOLATION, !bound || !h.group().isolated(), "the device's group is isolated but"
                        + " isolation is not claimed: claim it, so that the kit checks it");
                assumeTrue(false, "not claimed: isolation");
            }
            check(Rule.CLAIMS_ISOLATION, bound, "isolation is claimed but " + DEVICE + " cannot be bound to VFIO");
            check(Rule.CLAIMS_ISOLATION, h.group().isolated(), "isolation is claimed but the group is not isolated");
            check(Rule.CLAIMS_ISOLATION, !h.host().taint().isSet(TaintFlag.USER), "isolation is claimed but the"
                    + " kernel is tainted U: " + h.host().taint().taintedString());
            assumeTrue(!claims().vfioTypes().isEmpty(), "isolated, but no VFIO type is claimed to open it with");
            Session s;
            try {
                s = h.open(Set.of(Capability.CAP_IPC_LOCK), preferredType());
            } catch (IommuException e) {
                throw broken(Rule.CLAIMS_ISOLATION, "an unprivileged user cannot open the isolated group: " + e);
            }
            try (s) {
                s.map(4 * PAGE);
                strayDmaFaults(Rule.CLAIMS_ISOLATION, h);
            }
        }

        @Test
        @DisplayName("claims.no-isolation: opt-in, CAP_SYS_RAWIO and taint U")
        void noIsolation() {
            rule(Rule.CLAIMS_NO_ISOLATION);
            claimed(!claims().isolation(), "no isolation (isolation is claimed; see claims.isolation)");
            if (!claims().vfioTypes().isEmpty()) {
                check(Rule.CLAIMS_NO_ISOLATION, claims().unsafeOptIn() != null, "VFIO types "
                        + claims().vfioTypeNames() + " are offered without isolation, but no opt-in parameter is"
                        + " declared (BackendClaims.Builder.unsafeOptIn)");
                KitHost plain = newHost();
                Map<String, String> params = new LinkedHashMap<>(claims().parameters());
                params.remove(claims().unsafeOptIn());
                plain.load(params);
                boolean usable = false;
                try {
                    plain.bind();
                    UserProcess p = plain.host().spawn("tck-probe", 0, Set.of(Capability.CAP_SYS_RAWIO,
                            Capability.CAP_IPC_LOCK));
                    var container = plain.host().vfio().openContainer(p);
                    var group = plain.host().vfio().openGroup(p, plain.group().id());
                    group.setContainer(p, container);
                    usable = claims().vfioTypes().stream().anyMatch(t -> container.checkExtension(p, t) > 0);
                    container.close(p);
                    group.close(p);
                } catch (IommuException e) {
                    usable = false;
                }
                check(Rule.CLAIMS_NO_ISOLATION, !usable, "without " + claims().unsafeOptIn() + "=1 a container still"
                        + " offers " + claims().vfioTypeNames() + " for the unisolated device");
            }
            KitHost h = loadedHost();
            try {
                h.bind();
            } catch (IommuException e) {
                assumeTrue(false, "the device cannot be bound to VFIO: no group to check");
            }
            Group g = h.group();
            check(Rule.CLAIMS_NO_ISOLATION, !g.isolated(), "isolation is not claimed, yet the group is isolated");
            check(Rule.CLAIMS_NO_ISOLATION, h.host().taint().isSet(TaintFlag.USER), "an unisolated group is bound to"
                    + " VFIO but the kernel is not tainted U: " + h.host().taint().taintedString());
            UserProcess plainUser = h.host().spawn("tck-user", 0, Set.of(Capability.CAP_IPC_LOCK));
            expectErrno(Rule.CLAIMS_NO_ISOLATION, Errno.EPERM, "opening the unisolated group without CAP_SYS_RAWIO",
                    () -> h.host().vfio().openGroup(plainUser, g.id()));
        }

        @Test
        @DisplayName("claims.hot-plug: added devices are managed, removed ones released")
        void hotPlug() {
            rule(Rule.CLAIMS_HOT_PLUG);
            claimed(claims().hotPlug(), "hot-plug");
            KitHost h = loadedHost();
            Group present = h.device().group();
            BusDevice added = h.host().buses().addPci(PciDeviceSpec.of(HOTPLUG_DEVICE));
            check(Rule.CLAIMS_HOT_PLUG, (present == null) == (added.group() == null), "a device present at load "
                    + (present == null ? "has no group" : "has a group") + " but one added after load "
                    + (added.group() == null ? "has none" : "has one"));
            Group g = added.group();
            h.host().buses().remove(HOTPLUG_DEVICE);
            if (g != null) {
                check(Rule.CLAIMS_HOT_PLUG, g.devices().isEmpty(), "the removed device is still in group " + g.id());
            }
        }

        @Test
        @DisplayName("claims.identity: identity domains pass DMA straight through")
        void identity() {
            rule(Rule.CLAIMS_IDENTITY);
            claimed(claims().identityDomains(), "identity domains");
            KitHost h = loadedHost();
            Group g = h.device().group();
            check(Rule.CLAIMS_IDENTITY, g != null, DEVICE + " has no group");
            check(Rule.CLAIMS_IDENTITY, g.domain().map(d -> d.type() == DomainType.IDENTITY).orElse(true),
                    "the group's domain is " + g.domain().map(IommuDomain::type).orElse(null));
            long phys = h.host().pageAllocator().allocatePages(0, PageAllocator.NO_LIMIT);
            byte[] b = pattern(128, 12);
            h.device().dmaWrite(phys, b);
            check(Rule.CLAIMS_IDENTITY, Arrays.equals(b, read(h.host(), phys, 128)), "a DMA at bus address 0x"
                    + Long.toHexString(phys) + " did not land at that physical address");
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // Fault injection

    /** What the kernel's state looks like, to compare before and after a failed operation. */
    private record Snapshot(long freePages, List<String> modules, int groups, int vfioDrivers, long user,
            long liveDma) {
    }

    private static Snapshot snapshot(KitHost h, long user) {
        Host host = h.host();
        long live = 0;
        for (LoadedModule m : host.modules().modules()) {
            live += host.dma().liveMappings(m);
        }
        return new Snapshot(host.pageAllocator().freePageCount(), host.modules().modules().stream()
                .map(LoadedModule::name).toList(), host.iommu().groups().size(), host.vfioDrivers().all().size(),
                user, live);
    }

    /** One operation the fault sweep fails: set up (unfaulted), the operation, and its undo. */
    private interface Step {
        void setUp(KitHost h);

        void run(KitHost h);

        void undo(KitHost h);

        /** @return what the step's user holds (locked pages, mappings), 0 unless a step has a user */
        default long user() {
            return 0;
        }
    }

    /**
     * Fails each allocation point of {@code step} in turn: the n-th call of each fault attribute, n = 1, 2, ...
     * until the operation no longer reaches an n-th call. After each failure the state must be as before, and the
     * operation must then succeed unfaulted.
     */
    private void sweep(String what, Step step) {
        for (String attr : List.of("fail_page_alloc", "failslab", "fail_iommu")) {
            KitHost h = newHost();
            step.setUp(h);
            for (int n = 1; n <= 64; n++) {
                FaultAttr fault = h.host().faults().attr(attr);
                fault.setVerbose(0);
                Snapshot before = snapshot(h, step.user());
                long injected = fault.injected();
                fault.configure(n, 100, 0, 1);
                RuntimeException failure = null;
                try {
                    step.run(h);
                } catch (IommuException e) {
                    failure = e;
                } catch (RuntimeException e) {
                    fault.disable();
                    throw broken(Rule.FAULTS, what + " with " + attr + " failing call " + n + " threw " + e
                            + " instead of an IommuException");
                } finally {
                    fault.disable();
                }
                boolean reached = fault.injected() > injected;
                if (failure != null) {
                    Snapshot after = snapshot(h, step.user());
                    checkEquals(Rule.FAULTS, before, after, what + " failed by " + attr + " at call " + n + " ("
                            + failure.getMessage() + "): the state afterwards");
                    try {
                        step.run(h);
                    } catch (RuntimeException e) {
                        throw broken(Rule.FAULTS, what + " failed again after " + attr + " call " + n
                                + " was failed and injection stopped: " + e);
                    }
                } else if (!reached) {
                    step.undo(h);
                    break;
                }
                step.undo(h);
            }
        }
    }

    /** Fault injection at every allocation point of load, bind, open, map and DMA-API map. */
    @Nested
    @DisplayName("fault injection")
    public class FaultInjection {
        @Test
        @DisplayName("faults: load")
        void load() {
            rule(Rule.FAULTS);
            sweep("load", new Step() {
                public void setUp(KitHost h) {
                }

                public void run(KitHost h) {
                    h.load();
                }

                public void undo(KitHost h) {
                    h.unloadAll();
                }
            });
        }

        @Test
        @DisplayName("faults: bind to VFIO")
        void bind() {
            rule(Rule.FAULTS);
            claimed(!claims().vfioTypes().isEmpty(), "a VFIO type");
            sweep("bind", new Step() {
                public void setUp(KitHost h) {
                    h.load();
                }

                public void run(KitHost h) {
                    h.bind();
                }

                public void undo(KitHost h) {
                    h.host().vfio().unbind(DEVICE);
                }
            });
        }

        @Test
        @DisplayName("faults: open a VFIO session")
        void open() {
            rule(Rule.FAULTS);
            claimed(!claims().vfioTypes().isEmpty(), "a VFIO type");
            Session[] open = new Session[1];
            sweep("open", new Step() {
                public void setUp(KitHost h) {
                    h.load();
                    h.bind();
                }

                public void run(KitHost h) {
                    open[0] = h.open(h.capabilitiesFor(), preferredType());
                }

                public void undo(KitHost h) {
                    open[0].close();
                }
            });
        }

        @Test
        @DisplayName("faults: VFIO map")
        void vfioMap() {
            rule(Rule.FAULTS);
            claimed(!claims().vfioTypes().isEmpty(), "a VFIO type");
            Session[] open = new Session[1];
            Mapped[] mapped = new Mapped[1];
            sweep("VFIO map", new Step() {
                public void setUp(KitHost h) {
                    h.load();
                    h.bind();
                    open[0] = h.open(h.capabilitiesFor(), preferredType());
                }

                public void run(KitHost h) {
                    mapped[0] = open[0].map(4 * PAGE);
                }

                public void undo(KitHost h) {
                    open[0].container().unmapDma(open[0].process(), mapped[0].mapping().iova(), 4 * PAGE);
                    open[0].process().munmap(mapped[0].va());
                }

                public long user() {
                    return open[0].process().lockedPages() * 1_000_000L + open[0].container().mappings().size();
                }
            });
        }

        @Test
        @DisplayName("faults: DMA-API map")
        void dmaMap() {
            rule(Rule.FAULTS);
            claimed(claims().dmaApi(), "the DMA API");
            long[] dma = new long[2];
            sweep("DMA-API map", new Step() {
                public void setUp(KitHost h) {
                    h.load();
                    dma[1] = h.host().pageAllocator().allocatePages(1, PageAllocator.NO_LIMIT);
                }

                public void run(KitHost h) {
                    dma[0] = h.host().dma().map(h.device(), dma[1], 2 * PAGE, DmaDirection.BIDIRECTIONAL);
                }

                public void undo(KitHost h) {
                    h.host().dma().unmap(h.device(), dma[0], 2 * PAGE, DmaDirection.BIDIRECTIONAL);
                }
            });
        }
    }

    // ----------------------------------------------------------------------------------------------------------
    // The model

    private static int steps() {
        return Integer.getInteger(STEPS_PROPERTY, DEFAULT_STEPS);
    }

    private static long seed() {
        return Long.getLong(SEED_PROPERTY, 0x10_4a11L);
    }

    /** A seeded random sequence of operations against a small model. */
    @Nested
    @DisplayName("random operations against a model")
    public class Model {
        @Test
        @DisplayName("model: domain map/unmap/translate")
        void domain() {
            rule(Rule.MODEL);
            claimed(claims().translation(), "translation");
            long seed = seed();
            KitHost h = loadedHost();
            IommuOps ops = ops(h).orElseThrow();
            IommuDomain domain = ops.allocateDomain(DomainType.UNMANAGED);
            long pool = h.host().pageAllocator().allocateContiguous(64, PageAllocator.NO_LIMIT);
            TreeMap<Long, Long> model = new TreeMap<>(); // iova page -> phys
            Map<Long, Integer> lengths = new HashMap<>(); // first iova page of a mapping -> pages
            SplittableRandom r = new SplittableRandom(seed);
            int n = steps();
            for (int i = 0; i < n; i++) {
                int op = r.nextInt(3);
                long page = r.nextInt(64);
                String at = " (step " + i + " of seed " + seed + "; rerun with -D" + SEED_PROPERTY + "=" + seed + ")";
                if (op == 0) {
                    int len = 1 + r.nextInt(4);
                    long phys = pool + (long) r.nextInt(60) * PAGE;
                    boolean free = model.subMap(page, page + len).isEmpty();
                    try {
                        domain.map(page * PAGE, phys, (long) len * PAGE, IommuProt.READ | IommuProt.WRITE);
                        check(Rule.MODEL, free, "a map over mapped pages succeeded" + at);
                        for (int k = 0; k < len; k++) {
                            model.put(page + k, phys + (long) k * PAGE);
                        }
                        lengths.put(page, len);
                    } catch (IommuException e) {
                        check(Rule.MODEL, !free && e.errno() == Errno.EEXIST, "map of free pages failed: " + e + at);
                    }
                } else if (op == 1 && !lengths.isEmpty()) {
                    long first = lengths.keySet().stream().skip(r.nextInt(lengths.size())).findFirst().orElseThrow();
                    int len = lengths.remove(first);
                    long got = domain.unmap(first * PAGE, (long) len * PAGE);
                    checkEquals(Rule.MODEL, (long) len * PAGE, got, "bytes unmapped" + at);
                    for (int k = 0; k < len; k++) {
                        model.remove(first + k);
                    }
                } else {
                    long want = model.containsKey(page) ? model.get(page) + 0x10 : IommuDomain.FAULT_NOT_MAPPED;
                    checkEquals(Rule.MODEL, want, domain.iovaToPhys(page * PAGE + 0x10), "iova_to_phys(0x"
                            + Long.toHexString(page * PAGE + 0x10) + ")" + at);
                }
            }
        }

        @Test
        @DisplayName("model: DMA-API map/unmap/sync with device reads and writes")
        void dmaApi() {
            rule(Rule.MODEL);
            claimed(claims().dmaApi(), "the DMA API");
            long seed = seed();
            KitHost h = loadedHost();
            Host host = h.host();
            BusDevice dev = h.device();
            SplittableRandom r = new SplittableRandom(seed);
            record Live(long phys, long dma, int len, DmaDirection dir) {
            }
            List<Live> live = new ArrayList<>();
            int n = steps();
            for (int i = 0; i < n; i++) {
                String at = " (step " + i + " of seed " + seed + "; rerun with -D" + SEED_PROPERTY + "=" + seed + ")";
                int op = r.nextInt(4);
                if (op == 0 || live.isEmpty()) {
                    int len = (1 + r.nextInt(3)) * PAGE;
                    DmaDirection dir = List.of(DmaDirection.TO_DEVICE, DmaDirection.FROM_DEVICE,
                            DmaDirection.BIDIRECTIONAL).get(r.nextInt(3));
                    long phys = host.pageAllocator().allocatePages(2, PageAllocator.NO_LIMIT);
                    long dma = host.dma().map(dev, phys, len, dir);
                    live.add(new Live(phys, dma, len, dir));
                } else if (op == 1) {
                    Live l = live.remove(r.nextInt(live.size()));
                    host.dma().unmap(dev, l.dma(), l.len(), l.dir());
                    host.pageAllocator().freePages(l.phys(), 2);
                } else if (op == 2) {
                    Live l = live.get(r.nextInt(live.size()));
                    if (l.dir() != DmaDirection.TO_DEVICE) {
                        byte[] b = pattern(64, i);
                        int off = r.nextInt(l.len() - 64);
                        dev.dmaWrite(l.dma() + off, b);
                        host.dma().syncForCpu(dev, l.dma(), l.len(), l.dir());
                        check(Rule.MODEL, Arrays.equals(b, read(host, l.phys() + off, 64)), "the CPU does not see a"
                                + " device write after sync for CPU" + at);
                    }
                } else {
                    Live l = live.get(r.nextInt(live.size()));
                    if (l.dir() != DmaDirection.FROM_DEVICE) {
                        byte[] b = pattern(64, -i);
                        int off = r.nextInt(l.len() - 64);
                        write(host, l.phys() + off, b);
                        host.dma().syncForDevice(dev, l.dma(), l.len(), l.dir());
                        check(Rule.MODEL, Arrays.equals(b, dev.dmaRead(l.dma() + off, 64)), "the device does not see a"
                                + " CPU write after sync for device" + at);
                    }
                }
            }
            for (Live l : live) {
                host.dma().unmap(dev, l.dma(), l.len(), l.dir());
            }
        }
    }

}
