package org.iommu4j.kernel;

import org.iommu4j.api.XenHypercalls;
import org.iommu4j.kernel.bus.DmaPort;
import org.iommu4j.kernel.mem.HostMemory;

/**
 * What a hypervisor gives a kernel it runs as one of its domains: pseudo-physical memory backed by machine
 * frames, the hypervisor's IOMMU as the path of every device's DMA, and the hypercalls. A {@link Host} built
 * with {@link Host.Builder#domainOf} is such a kernel; the hypervisor model lives outside the kernel (the
 * xen-platform module).
 */
public interface HypervisorDomain {

    /** @return the domain's pseudo-physical memory; its size is the host's memory size */
    HostMemory memory();

    /** @return where the domain's devices' DMA goes: the hypervisor's IOMMU, not the kernel's */
    DmaPort dmaPort();

    /** @return the hypercalls the domain's kernel makes */
    XenHypercalls hypercalls();
}
