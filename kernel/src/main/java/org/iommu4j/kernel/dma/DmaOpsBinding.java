package org.iommu4j.kernel.dma;

import org.iommu4j.api.DmaOps;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * DMA ops with the module that installed them. The DMA API records every live mapping against the binding that
 * made it (see {@link LiveMappings}), so the binding's owner stays loaded exactly as long as one of its mappings
 * is live, and an unmap goes to the ops that made the mapping even if the device's ops changed since.
 *
 * <p>A binding is {@link State#LIVE} until its owner starts to unload: then it is {@link State#RETIRING} while
 * the module table checks, with new DMA-API calls through it held back, and either {@link State#LIVE} again (the
 * unload was refused) or {@link State#GONE} (the owner is gone; calls go to whatever ops replaced it).
 */
public final class DmaOpsBinding {
    /** Where a binding is in its owner's life. */
    public enum State {
        /** In use: calls go to its ops. */
        LIVE,
        /** Its owner is being unloaded: new calls wait until the unload is decided. */
        RETIRING,
        /** Its owner unloaded: the binding is no longer installed anywhere. */
        GONE
    }

    private final DmaOps ops;
    private final ModuleRef owner;
    private volatile State state = State.LIVE;

    /**
     * @param ops the ops
     * @param owner the module that installed them
     */
    public DmaOpsBinding(DmaOps ops, ModuleRef owner) {
        this.ops = ops;
        this.owner = owner;
    }

    /** @return the ops */
    public DmaOps ops() {
        return ops;
    }

    /** @return the module that installed them */
    public ModuleRef owner() {
        return owner;
    }

    /** @return where the binding is in its owner's life */
    public State state() {
        return state;
    }

    void setState(State state) {
        this.state = state;
    }

    @Override
    public String toString() {
        return ops.getClass().getSimpleName() + " of " + owner.name() + " (" + state + ")";
    }
}
