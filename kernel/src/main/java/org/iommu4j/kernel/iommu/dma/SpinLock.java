package org.iommu4j.kernel.iommu.dma;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A spin lock, the kernel's {@code spinlock_t} in miniature, for the per-CPU structures on the DMA hot path
 * (a CPU's IOVA magazines, its flush queue), which Linux guards with {@code spin_lock_irqsave}: taking it free is
 * one compare-and-set and dropping it a release store, half the atomic operations of a Java monitor. A waiter
 * spins briefly, then yields its CPU. Not reentrant; what it guards is held for a few hundred instructions at
 * most, and nothing under it takes it again.
 */
abstract class SpinLock {
    private static final VarHandle STATE;
    /** Spins before a waiter starts yielding its CPU. */
    private static final int SPINS = 100;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(SpinLock.class, "state", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** 1 while held. */
    @SuppressWarnings("unused") // through STATE
    private volatile int state;

    /** Takes the lock, waiting for it if another thread holds it. */
    final void lock() {
        if (!STATE.compareAndSet(this, 0, 1)) {
            for (int tries = 1; (int) STATE.getOpaque(this) != 0 || !STATE.compareAndSet(this, 0, 1); tries++) {
                if (tries < SPINS) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield();
                }
            }
        }
    }

    /** Drops the lock; the release store publishes every write made under it. */
    final void unlock() {
        STATE.setRelease(this, 0);
    }
}
