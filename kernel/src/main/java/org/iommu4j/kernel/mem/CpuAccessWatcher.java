package org.iommu4j.kernel.mem;

/**
 * Told of CPU accesses to {@link SparseMemory} (the kernel's, a test's through {@code host.memory()}, a user
 * process's), after each succeeded; device DMA is not shown. DMA-API debugging's CPU-touch check is the one
 * watcher ({@link org.iommu4j.kernel.dma.CpuAccessCheck}).
 */
public interface CpuAccessWatcher {
    /**
     * @param phys the first physical address read
     * @param length bytes
     */
    void cpuRead(long phys, long length);

    /**
     * @param phys the first physical address written
     * @param length bytes
     */
    void cpuWrite(long phys, long length);
}
