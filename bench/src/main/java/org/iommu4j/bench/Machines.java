package org.iommu4j.bench;

import java.util.Map;
import java.util.function.UnaryOperator;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.mem.SparseMemory;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.loader.LoaderConfig;
import org.iommu4j.xen.P2mLayout;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;

/** The simulated machines the benchmarks run on: each built fresh, with the in-tree backends from the class path. */
public final class Machines {
    /** Page order of one storage chunk. */
    private static final int CHUNK_ORDER =
            Integer.numberOfTrailingZeros(SparseMemory.CHUNK_SIZE / PhysicalMemory.PAGE_SIZE);
    /** The first NIC; the second is {@link #NIC2}. */
    public static final String NIC = "0000:06:0d.0";
    /** A second NIC, so that two benchmark threads drive two devices. */
    public static final String NIC2 = "0000:06:0e.0";

    private Machines() {
    }

    /**
     * @param memory bytes of memory
     * @param commandLine the kernel command line
     * @return a 2-CPU host with two NICs that reach all of memory
     */
    public static Host host(long memory, String commandLine) {
        return Host.builder().memory(memory).cpus(2).commandLine(commandLine)
                .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(64)))
                .pciDevice(PciDeviceSpec.of(NIC2).withDmaMask(DmaMasks.bits(64)))
                .build();
    }

    /**
     * Loads a backend as {@code modprobe} would.
     *
     * @param host the host
     * @param backend its name
     * @param params its module parameters
     */
    public static void load(Host host, String backend, Map<String, String> params) {
        new BackendLoader(LoaderConfig.classPathOnly()).load(host, backend, params);
    }

    /**
     * A Xen guest whose pages are machine-contiguous, on a platform whose Domain-0 runs xen with pciback holding
     * both NICs, which are then given to the guest.
     *
     * @param memory the guest's memory
     * @param commandLine its kernel command line
     * @return the guest's kernel
     */
    public static Host xenGuest(long memory, String commandLine) {
        XenPlatform platform = XenPlatform.builder().machineMemory(8L << 30).dom0Memory(256L << 20).cpus(2)
                .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(64)))
                .pciDevice(PciDeviceSpec.of(NIC2).withDmaMask(DmaMasks.bits(64))).build();
        load(platform.dom0().host(), "xen", Map.of("hide", "(" + NIC + ")(" + NIC2 + ")"));
        XenDomain guest = platform.createGuest("guest", memory, commandLine, P2mLayout.contiguous(),
                UnaryOperator.identity());
        if (guest.host().modules().modules().stream().noneMatch(m -> m.name().equals("xen"))) {
            load(guest.host(), "xen", Map.of());
        }
        platform.attach(NIC, guest);
        platform.attach(NIC2, guest);
        return guest.host();
    }

    /**
     * A buffer in storage of its own: at least one 64 KiB storage chunk ({@link SparseMemory#CHUNK_SIZE}), so that
     * two benchmark threads' buffers are never neighbours in the JVM's heap. A model page is not a hardware page,
     * and the hardware prefetchers, which stop at a real 4 KiB page, can run on from one model page into the next
     * when both lie in one chunk: a thread copying out of its buffer then fetches lines the other thread keeps
     * writing (swiotlb at 2 threads from neighbouring pages, 64 bytes apart in storage: 225 and 290 ns; 1 KiB
     * apart, or a chunk apart: 220 to 250 ns each, as on two separate hosts). In the kernel two CPUs' pages
     * share nothing.
     *
     * @param host the host
     * @param bytes at least this many bytes
     * @return the physical address of a physically contiguous buffer from the page allocator, every byte written
     *     (non-zero), so that its memory is backed: a copy from memory never written only produces zeros
     */
    public static long buffer(Host host, long bytes) {
        long pages = (bytes + PhysicalMemory.PAGE_SIZE - 1) / PhysicalMemory.PAGE_SIZE;
        int order = Math.max(CHUNK_ORDER, 64 - Long.numberOfLeadingZeros(Math.max(1, pages) - 1));
        long phys = host.pageAllocator().allocatePages(order, PageAllocator.NO_LIMIT);
        host.memory().fill(phys, bytes, (byte) 0x5a);
        return phys;
    }
}
