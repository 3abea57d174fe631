package org.iommu4j.kernel.sync;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A spin lock, the kernel's {@code spinlock_t} in miniature, for the structures on the DMA hot path: a CPU's
 * IOVA magazines and flush queue (which Linux guards with {@code spin_lock_irqsave}) and a device's record of
 * live DMA API mappings. Taking it free is one compare-and-set and dropping it a release store, half the atomic
 * operations of a Java monitor. A waiter spins briefly, then yields its CPU. Not reentrant; what it guards is held
 * for a few hundred instructions at most, and nothing under it takes it again. A class extends it, so the lock
 * word sits in the object it guards, with 128 bytes of padding on each side (two cache lines: the adjacent-line
 * prefetcher fetches lines in pairs): every call writes the word, and a garbage collection can move any object
 * next to it.
 */
public abstract class SpinLock extends SpinLockWord {
    private static final VarHandle STATE;
    /** Spins before a waiter starts yielding its CPU. */
    private static final int SPINS = 100;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(SpinLockWord.class, "state", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Padding after the lock word: the subclass's fields and whatever object follows stay off its cache lines. */
    @SuppressWarnings("unused")
    private long q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, qa, qb, qc, qd, qe, qf;

    /** A lock nobody holds. */
    protected SpinLock() {
    }

    /** Takes the lock, waiting for it if another thread holds it. */
    public final void lock() {
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
    public final void unlock() {
        STATE.setRelease(this, 0);
    }
}
