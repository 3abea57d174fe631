package org.iommu4j.api;

import java.util.Optional;

/**
 * Everything a backend receives from the kernel it is loaded into, scoped to that backend's module: what it
 * registers, taints and logs is recorded against it, and what it registered is torn down with it. One host
 * hands a separate instance to every module; two hosts in one JVM never share one.
 */
public interface KernelServices {

    /** @return the name of the module these services belong to */
    String moduleName();

    /** @return the module's parameters */
    ModuleParameters parameters();

    /** @return the host's kernel command line */
    KernelCommandLine commandLine();

    /** @return the host's physical memory */
    PhysicalMemory memory();

    /** @return the host's page allocator */
    PageAllocator pageAllocator();

    /** @return the host's buses and devices */
    DeviceRegistry devices();

    /** @return the iommu core */
    IommuCore iommu();

    /** @return where DMA-API ops are installed */
    DmaOpsRegistry dma();

    /** @return where VFIO iommu drivers are registered */
    VfioDriverRegistry vfio();

    /** @return the host's taint */
    Taint taint();

    /** @return the kernel log */
    KernelLog log();

    /** @return services exported between modules */
    SymbolTable symbols();

    /**
     * The host's monotonic clock, the one its log and taint records are stamped with (a test can drive it), for
     * what the kernel times with jiffies: rate limits, timeouts.
     *
     * @return nanoseconds since the host booted (since API 1.1; by default the JVM's monotonic clock, for
     *     implementations without a host clock; the kernel's returns the host's)
     */
    default long uptimeNanos() {
        return System.nanoTime();
    }

    /** @return how many CPUs the host has, at least 1 */
    int cpuCount();

    /**
     * The CPU the calling thread runs on, the kernel's {@code raw_smp_processor_id}: each thread is given one,
     * round robin, the first time it asks, and keeps it.
     *
     * @return 0 to {@link #cpuCount()} - 1
     */
    int currentCpu();

    /**
     * The hypercalls of the Xen hypervisor this kernel runs under, for a Xen guest's drivers; empty on bare
     * metal, where {@code xen_domain()} is false.
     *
     * @return the hypercall interface, or empty when the host is not a Xen domain
     * @since 1.2 (by default empty, for implementations without a hypervisor)
     */
    default Optional<XenHypercalls> xen() {
        return Optional.empty();
    }
}
