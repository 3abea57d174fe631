package org.iommu4j.kernel.sync;

/** A cache line of padding before a {@link SpinLock}'s word: superclass fields come first in an object. */
@SuppressWarnings("unused")
abstract class SpinLockPadding {
    private long p0, p1, p2, p3, p4, p5, p6, p7;
}
