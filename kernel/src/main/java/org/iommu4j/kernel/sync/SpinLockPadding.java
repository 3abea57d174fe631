package org.iommu4j.kernel.sync;

/**
 * Padding before a {@link SpinLock}'s word: superclass fields come first in an object. The int fills the 4 bytes
 * after a compressed object header, the one place where HotSpot would otherwise put a subclass's int ahead of this
 * class's longs (a layout dump found the lock word there, at offset 12, sharing its cache line with the object
 * before it); the longs then keep 128 bytes, two cache lines for the adjacent-line prefetcher, in front of it.
 */
@SuppressWarnings("unused")
abstract class SpinLockPadding {
    private int p;
    private long p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, pa, pb, pc, pd, pe, pf;
}
