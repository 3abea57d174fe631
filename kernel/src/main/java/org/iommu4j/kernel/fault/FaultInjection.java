package org.iommu4j.kernel.fault;

import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.iommu4j.api.LogLevel;
import org.iommu4j.kernel.log.KernelLogBuffer;
import org.iommu4j.kernel.params.CommandLine;

/**
 * A host's fault-injection capabilities ({@code CONFIG_FAULT_INJECTION}), one {@link FaultAttr} per kind of
 * allocation, so that a test can make any allocation point fail and then check the state it left:
 * <ul>
 * <li>{@code fail_page_alloc}: the page allocator, that is user memory, pinned-buffer and coherent DMA memory,
 *     backends' pools and IOMMU page-table pages (every {@code iommu_map});</li>
 * <li>{@code failslab}: kernel objects: a VFIO container and each VFIO DMA mapping's record
 *     ({@code struct vfio_dma});</li>
 * <li>{@code fail_iommu}: DMA API mappings and coherent allocations, only for devices that opted in with
 *     {@link org.iommu4j.kernel.bus.BusDevice#setFailIommu} (the powerpc per-device {@code fail_iommu} file).</li>
 * </ul>
 * All are off at boot unless the command line sets them with the kernel's
 * {@code <name>=<interval>,<probability>,<space>,<times>} words; a word that does not parse is reported and
 * ignored, as the kernel does.
 *
 * <p>Not modelled: the kernel's per-capability filters. Its {@code fail_page_alloc} skips order-0 and
 * reclaiming ({@code GFP_KERNEL}) allocations by default ({@code min-order=1}, {@code ignore-gfp-wait=Y}) and
 * {@code failslab} skips reclaiming ones; the simulated allocation points carry no GFP flags, so here an armed
 * capability may fail every allocation point wired to it, which is what a test arming it wants.
 */
public final class FaultInjection {
    /** The page allocator's attribute name. */
    public static final String FAIL_PAGE_ALLOC = "fail_page_alloc";
    /** The kernel object allocator's attribute name. */
    public static final String FAILSLAB = "failslab";
    /** The DMA-mapping attribute name. */
    public static final String FAIL_IOMMU = "fail_iommu";
    /** The syntax of a setup string, compiled on first use (a host is built without compiling a pattern). */
    private static final class Syntax {
        static final Pattern SETUP = Pattern.compile("(\\d{1,18}),(\\d{1,3}),(\\d{1,18}),(-?\\d{1,9})");
    }

    private final FaultAttr pageAlloc;
    private final FaultAttr slab;
    private final FaultAttr iommu;

    private final KernelLogBuffer log;

    /**
     * Every attribute disabled.
     *
     * @param log the kernel log
     * @param seed the seed of the attributes' random sources
     */
    public FaultInjection(KernelLogBuffer log, long seed) {
        this.log = log;
        this.pageAlloc = new FaultAttr(FAIL_PAGE_ALLOC, log, seed);
        this.slab = new FaultAttr(FAILSLAB, log, seed);
        this.iommu = new FaultAttr(FAIL_IOMMU, log, seed);
    }

    /**
     * Applies the boot-time words, once the kernel has what it needs to boot.
     *
     * @param commandLine the kernel command line
     */
    public void applyCommandLine(CommandLine commandLine) {
        for (FaultAttr a : all()) {
            // a plain test, not a lambda: this runs in every host's boot, which a cold JVM pays for per lambda
            Optional<String> value = commandLine.get(a.name());
            if (value.isPresent()) {
                setup(a, value.get(), log);
            }
        }
    }

    private static void setup(FaultAttr attr, String value, KernelLogBuffer log) {
        Matcher m = Syntax.SETUP.matcher(value);
        try {
            if (!m.matches()) {
                throw new IllegalArgumentException("expected <interval>,<probability>,<space>,<times>");
            }
            attr.configure(Long.parseLong(m.group(1)), Integer.parseInt(m.group(2)), Long.parseLong(m.group(3)),
                    Integer.parseInt(m.group(4)));
        } catch (IllegalArgumentException e) {
            log.log(LogLevel.WARNING, "FAULT_INJECTION: failed to parse arguments: " + attr.name() + "=" + value
                    + " (" + e.getMessage() + ")");
        }
    }

    /** @return {@code fail_page_alloc} */
    public FaultAttr pageAlloc() {
        return pageAlloc;
    }

    /** @return {@code failslab} */
    public FaultAttr slab() {
        return slab;
    }

    /** @return {@code fail_iommu} */
    public FaultAttr iommu() {
        return iommu;
    }

    /** @return every attribute */
    public List<FaultAttr> all() {
        return List.of(pageAlloc, slab, iommu);
    }

    /**
     * @param name an attribute's name
     * @return it
     * @throws IllegalArgumentException naming the valid names
     */
    public FaultAttr attr(String name) {
        for (FaultAttr a : all()) {
            if (a.name().equals(name)) {
                return a;
            }
        }
        throw new IllegalArgumentException("no fault-injection capability '" + name + "': expected one of "
                + FAIL_PAGE_ALLOC + ", " + FAILSLAB + ", " + FAIL_IOMMU);
    }
}
