package org.iommu4j.bench;

import java.util.Map;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.loader.BackendLoader;
import org.iommu4j.loader.LoaderConfig;

/** The simulated machines the benchmarks run on: each built fresh, with the in-tree backends from the class path. */
public final class Machines {
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
     * @param host the host
     * @param bytes at least this many bytes
     * @return the physical address of a zeroed, physically contiguous buffer from the page allocator
     */
    public static long buffer(Host host, long bytes) {
        long pages = (bytes + PhysicalMemory.PAGE_SIZE - 1) / PhysicalMemory.PAGE_SIZE;
        int order = 64 - Long.numberOfLeadingZeros(Math.max(1, pages) - 1);
        long phys = host.pageAllocator().allocatePages(order, PageAllocator.NO_LIMIT);
        host.memory().fill(phys, bytes, (byte) 0);
        return phys;
    }
}
