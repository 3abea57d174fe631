package org.iommu4j.kernel.dma;

import java.util.concurrent.atomic.LongAdder;
import org.iommu4j.api.DmaOps;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * DMA ops with the module that installed them and the number of live mappings made through them, which keep
 * that module loaded. Counting uses a {@link LongAdder} so that map and unmap on many CPUs do not contend.
 *
 * @param ops the ops
 * @param owner the module that installed them
 * @param live mappings and coherent buffers not yet released
 */
public record DmaOpsBinding(DmaOps ops, ModuleRef owner, LongAdder live) {

    /**
     * @param ops the ops
     * @param owner the module that installed them
     */
    public DmaOpsBinding(DmaOps ops, ModuleRef owner) {
        this(ops, owner, new LongAdder());
    }
}
