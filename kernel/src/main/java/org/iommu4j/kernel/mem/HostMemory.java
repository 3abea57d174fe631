package org.iommu4j.kernel.mem;

import org.iommu4j.api.PhysicalMemory;

/**
 * A host's physical memory as the kernel keeps it: {@link SparseMemory} on bare metal, or a domain's
 * pseudo-physical memory when the host runs under a hypervisor (backed by machine frames through its p2m).
 */
public interface HostMemory extends PhysicalMemory {

    /** @return bytes of storage actually allocated behind this memory */
    long residentBytes();
}
