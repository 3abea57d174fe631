package org.iommu4j.kernel.iommu.dma;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.sync.SpinLock;

/**
 * What iommu-dma keeps for one DMA domain, the kernel's {@code struct iommu_dma_cookie}
 * ({@code drivers/iommu/dma-iommu.c}, Linux v6.12): the domain's IOVA space and, for a lazy (DMA-FQ) domain,
 * one flush queue per CPU.
 *
 * <h2>Strict and lazy invalidation</h2>
 * A strict domain ({@code iommu.strict=1}, an untrusted device, or an IOMMU without
 * {@link org.iommu4j.api.IommuCapability#DEFERRED_FLUSH}) flushes the IOTLB on every unmap before the IOVA is
 * freed. A lazy domain (the default otherwise, sysfs type {@code DMA-FQ}) clears the page table on unmap but
 * queues the IOVA on the calling CPU's flush queue ({@value #FQ_SIZE} entries); the queue is flushed when it
 * fills, and {@value #FQ_TIMEOUT_MS} ms of host time after the first entry was queued (the kernel's
 * {@code fq_timer}; here it fires at the next call on the domain that allocates an IOVA after the deadline, or
 * when {@link #flushQueues} is called). An IOVA goes back to the allocator only after a flush that began after it
 * was queued ({@code fq_flush_start_cnt}, {@code fq_flush_finish_cnt}), so it is never reused while an IOTLB
 * may still hold its old translation.
 *
 * <p>The model makes the window observable: until the flush, a device's DMA to a lazily unmapped IOVA still
 * reaches the old page, as a stale IOTLB entry would let it (the model assumes the worst, that the IOTLB cached
 * every queued translation). Under strict invalidation that never happens.
 */
public final class IommuDmaCookie {
    /** Entries per flush queue, {@code IOVA_DEFAULT_FQ_SIZE}. */
    public static final int FQ_SIZE = 256;
    /** The flush timer, {@code IOVA_DEFAULT_FQ_TIMEOUT}. */
    public static final long FQ_TIMEOUT_MS = 10;

    private final IommuDma dma;
    private final IommuOps ops;
    private final IommuDomain domain;
    private final String owner;
    private final IovaDomain iovad;
    private final boolean lazy;
    private final long apertureEnd;
    private final FlushQueue[] queues;
    private final AtomicLong flushStart = new AtomicLong();
    private final AtomicLong flushFinish = new AtomicLong();
    private final AtomicBoolean timerOn = new AtomicBoolean();
    private final LongSupplier clock;
    private volatile long timerDeadline;

    IommuDmaCookie(IommuDma dma, IommuOps ops, IommuDomain domain, String owner, long apertureStart,
            long apertureEnd, boolean lazy, int cpus, LongSupplier clock) {
        this.dma = dma;
        this.ops = ops;
        this.domain = domain;
        this.owner = owner;
        this.lazy = lazy;
        this.apertureEnd = apertureEnd;
        this.clock = clock;
        this.iovad = new IovaDomain(apertureStart >>> PhysicalMemory.PAGE_SHIFT, cpus);
        this.queues = new FlushQueue[lazy ? cpus : 0];
        for (int i = 0; i < queues.length; i++) {
            queues[i] = new FlushQueue(i);
        }
    }

    /** @return the domain */
    public IommuDomain domain() {
        return domain;
    }

    /** @return the driver that allocated the domain */
    public IommuOps ops() {
        return ops;
    }

    /** @return the module that registered the driver */
    public String owner() {
        return owner;
    }

    /** @return the domain's IOVA allocator */
    public IovaDomain iovad() {
        return iovad;
    }

    /** @return whether unmaps are flushed lazily, through flush queues (DMA-FQ) */
    public boolean isLazy() {
        return lazy;
    }

    /** @return the highest IOVA the domain translates */
    public long apertureEnd() {
        return apertureEnd;
    }

    /** @return IOTLB flushes done for this domain */
    public long flushCount() {
        return flushFinish.get();
    }

    /** @return IOVA ranges waiting in flush queues for their flush */
    public int queuedRanges() {
        int n = 0;
        for (FlushQueue q : queues) {
            q.lock();
            try {
                n += (q.tail - q.head) & (FQ_SIZE - 1);
            } finally {
                q.unlock();
            }
        }
        return n;
    }

    /** One CPU's flush queue, the kernel's {@code struct iova_fq}: a ring guarded by its own spin lock. */
    private static final class FlushQueue extends SpinLock {
        final int cpu;
        final long[] pfn = new long[FQ_SIZE];
        final long[] pages = new long[FQ_SIZE];
        final long[] phys = new long[FQ_SIZE];
        final int[] prot = new int[FQ_SIZE];
        final long[] counter = new long[FQ_SIZE];
        int head;
        int tail;

        FlushQueue(int cpu) {
            this.cpu = cpu;
        }

        boolean full() {
            return ((tail + 1) & (FQ_SIZE - 1)) == head;
        }
    }

    /** The kernel's {@code fq_flush_iotlb}. */
    void flushIotlb() {
        flushStart.incrementAndGet();
        dma.flushIotlbAll(this);
        flushFinish.incrementAndGet();
    }

    /**
     * Frees an IOVA range now (strict) or queues it for the next flush (lazy), the kernel's
     * {@code iommu_dma_free_iova}. A strict caller has flushed already.
     */
    void freeIova(int cpu, long pfn, long pages, long phys, int prot) {
        if (!lazy) {
            iovad.freeFast(cpu, pfn, pages);
            return;
        }
        FlushQueue fq = queues[cpu];
        fq.lock();
        try {
            ringFree(fq);
            if (fq.full()) {
                flushIotlb();
                ringFree(fq);
            }
            int idx = fq.tail;
            fq.tail = (idx + 1) & (FQ_SIZE - 1);
            fq.pfn[idx] = pfn;
            fq.pages[idx] = pages;
            fq.phys[idx] = phys;
            fq.prot[idx] = prot;
            fq.counter[idx] = flushStart.get();
        } finally {
            fq.unlock();
        }
        if (!timerOn.get() && !timerOn.getAndSet(true)) {
            timerDeadline = clock.getAsLong() + FQ_TIMEOUT_MS * 1_000_000L;
        }
    }

    /** The kernel's {@code fq_ring_free_locked}: frees what a finished flush covered. */
    private void ringFree(FlushQueue fq) {
        long finished = flushFinish.get();
        while (fq.head != fq.tail && fq.counter[fq.head] < finished) {
            iovad.freeFast(fq.cpu, fq.pfn[fq.head], fq.pages[fq.head]);
            fq.head = (fq.head + 1) & (FQ_SIZE - 1);
        }
    }

    /**
     * Runs the flush timer if its deadline has passed; called by every DMA API call on the domain that allocates
     * an IOVA (a map, a coherent allocation), before it allocates. An unmap or a free does not ask: reading the
     * host's clock costs about 30 ns, as much as the rest of an unmap, and the kernel's timer is late by up to a
     * tick anyway (it fires from the timer softirq at or after its deadline), so an unmap that queues its IOVA
     * after the deadline and before the timer has run is one of the kernel's own orders. What the timer decides,
     * which IOVAs the next allocation can reuse, is the same.
     */
    void runTimer() {
        if (timerOn.get() && clock.getAsLong() - timerDeadline >= 0) {
            flushQueues();
        }
    }

    /**
     * The flush timer's work ({@code fq_flush_timeout}): one IOTLB flush, then every CPU's queue frees what it
     * covered. Tests call it to stand for the 10 ms timer.
     */
    public void flushQueues() {
        if (!lazy) {
            return;
        }
        timerOn.set(false);
        flushIotlb();
        for (FlushQueue fq : queues) {
            fq.lock();
            try {
                ringFree(fq);
            } finally {
                fq.unlock();
            }
        }
    }

    /**
     * What a stale IOTLB entry would still give a device for an IOVA the page table no longer maps: the old
     * translation of a range queued and not yet flushed. Called on the fault path only.
     *
     * @param iova the bus address
     * @param access the access
     * @return the old physical address, or {@link IommuDomain#FAULT_NOT_MAPPED}
     */
    public long staleTranslation(long iova, int access) {
        long pfnOf = iova >>> PhysicalMemory.PAGE_SHIFT;
        long finished = flushFinish.get();
        for (FlushQueue fq : queues) {
            fq.lock();
            try {
                for (int i = fq.head; i != fq.tail; i = (i + 1) & (FQ_SIZE - 1)) {
                    if (fq.counter[i] >= finished && pfnOf - fq.pfn[i] >= 0 && pfnOf - fq.pfn[i] < fq.pages[i]) {
                        int need = access & (IommuProt.READ | IommuProt.WRITE);
                        if ((need & ~fq.prot[i]) != 0) {
                            return IommuDomain.FAULT_PERMISSION;
                        }
                        return fq.phys[i] + (iova - (fq.pfn[i] << PhysicalMemory.PAGE_SHIFT));
                    }
                }
            } finally {
                fq.unlock();
            }
        }
        return IommuDomain.FAULT_NOT_MAPPED;
    }

    /** Drops every queued range; the domain is going away ({@code iommu_put_dma_cookie}). */
    void release() {
        for (FlushQueue fq : queues) {
            fq.lock();
            try {
                fq.head = fq.tail;
            } finally {
                fq.unlock();
            }
        }
    }
}
