package org.iommu4j.kernel.mem;

import org.iommu4j.api.PhysicalMemory;

/**
 * A host's physical memory as the kernel keeps it: {@link SparseMemory} on bare metal, or a domain's
 * pseudo-physical memory when the host runs under a hypervisor (backed by machine frames through its p2m).
 */
public interface HostMemory extends PhysicalMemory {

    /** @return bytes of storage actually allocated behind this memory */
    long residentBytes();

    /**
     * The same memory as devices reach it: their DMA is not a CPU access, so a {@link #watchCpuAccess watcher}
     * does not see it.
     *
     * @return a view for the host's device DMA engine; this memory itself when nothing watches it
     */
    default PhysicalMemory deviceView() {
        return this;
    }

    /**
     * Shows every CPU access to a watcher, as DMA-API debugging's CPU-touch check asks; a memory that cannot
     * (a hypervisor domain's, today) ignores it.
     *
     * @param watcher the watcher, or null for none
     */
    default void watchCpuAccess(CpuAccessWatcher watcher) {
    }
}
