package org.iommu4j.backend.swiotlb;

import java.util.concurrent.atomic.AtomicLongArray;
import org.iommu4j.api.KernelServices;

/**
 * The calling thread's CPU ({@link KernelServices#currentCpu}) without asking the kernel on every map: the api
 * promises that a thread keeps the CPU it was given, and a thread's id is never reused, so a remembered pair of
 * (thread id, CPU) stays true. A small direct-mapped table of such pairs, each packed in one long (the id in the
 * high bits, the CPU in the low 16); a thread whose entry another took asks the kernel again. Racing threads can
 * only overwrite each other's entries, never make one wrong.
 */
final class CpuCache {
    private static final int ENTRIES = 64;
    private static final int CPU_BITS = 16;
    private final KernelServices kernel;
    private final AtomicLongArray entries = new AtomicLongArray(ENTRIES);

    CpuCache(KernelServices kernel) {
        this.kernel = kernel;
    }

    /** @return the calling thread's CPU, as {@link KernelServices#currentCpu} returns it */
    int currentCpu() {
        @SuppressWarnings("deprecation") // Thread.threadId() is Java 19
        long tid = Thread.currentThread().getId();
        int i = (int) (tid ^ (tid >>> 6)) & (ENTRIES - 1);
        long e = entries.get(i);
        if (e >>> CPU_BITS == tid) {
            return (int) (e & ((1 << CPU_BITS) - 1));
        }
        int cpu = kernel.currentCpu();
        if (cpu >= 0 && cpu < (1 << CPU_BITS) && tid > 0 && tid < (1L << (64 - CPU_BITS))) {
            entries.lazySet(i, tid << CPU_BITS | cpu);
        }
        return cpu;
    }
}
