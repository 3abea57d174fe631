package org.iommu4j.kernel.sync;

/** A {@link SpinLock}'s word, between its two paddings. */
abstract class SpinLockWord extends SpinLockPadding {
    /** 1 while held; read and written through the lock's variable handle. */
    volatile int state;
}
