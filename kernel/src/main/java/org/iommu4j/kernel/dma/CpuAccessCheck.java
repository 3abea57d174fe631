package org.iommu4j.kernel.dma;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.kernel.mem.CpuAccessWatcher;

/**
 * DMA-API debugging beyond the kernel's: the CPU touching a streaming buffer the device owns. The kernel's
 * checker ({@code kernel/dma/debug.c}, Linux v6.12) sees only DMA API calls; on the simulated host every CPU
 * access to memory goes through {@link org.iommu4j.kernel.mem.SparseMemory}, so this check sees the other half.
 * A streaming mapping belongs to the device from its map (or {@code sync_for_device}) until its
 * {@code sync_for_cpu} (or unmap); in between, the check reports, in the checker's style
 * ({@code DMA-API: <driver> <device>: ...}, counted in {@link DmaDebug#errorCount()}):
 * <ul>
 *   <li>a CPU read of a {@link DmaDirection#FROM_DEVICE} buffer: the device may still be writing it, and with a
 *       bounce buffer the CPU reads stale bytes;</li>
 *   <li>a CPU write of a {@link DmaDirection#TO_DEVICE} or bidirectional buffer: it was handed over, and the
 *       device may have read it already (or reads a bounce copy without the write).</li>
 * </ul>
 * A CPU read of a bidirectional buffer the device owns is not reported: swiotlb's own bounce for
 * {@code sync_for_device} reads it, inside the call that hands it over. A sync of part of a mapping hands the
 * whole mapping over. Device DMA is not a CPU access and is not shown to the check. It exists only when the
 * host runs with DMA-API debugging; without it memory accesses read one null field and nothing else.
 */
public final class CpuAccessCheck implements CpuAccessWatcher {
    private final DmaDebug debug;
    /** Streaming mappings by CPU-side physical address; several may start at one address. */
    private final TreeMap<Long, List<Tracked>> byPhys = new TreeMap<>();
    private long largest;
    private volatile int tracked;

    private static final class Tracked {
        final DmaDebug.Entry entry;
        volatile boolean deviceOwns = true;

        Tracked(DmaDebug.Entry entry) {
            this.entry = entry;
        }
    }

    CpuAccessCheck(DmaDebug debug) {
        this.debug = debug;
    }

    /** A streaming mapping was recorded (made, or put back after a refused unmap): the device owns it. */
    synchronized void handedToDevice(DmaDebug.Entry entry) {
        if (entry.type() != DmaDebug.Type.SINGLE) {
            return;
        }
        Tracked t = find(entry);
        if (t == null) {
            byPhys.computeIfAbsent(entry.phys(), k -> new ArrayList<>(1)).add(new Tracked(entry));
            largest = Math.max(largest, entry.size());
            tracked++;
        } else {
            t.deviceOwns = true;
        }
    }

    /** A record left the checker: the mapping ended, or its device went. */
    synchronized void forget(DmaDebug.Entry entry) {
        List<Tracked> here = byPhys.get(entry.phys());
        if (here != null && here.removeIf(t -> t.entry == entry)) {
            tracked--;
            if (here.isEmpty()) {
                byPhys.remove(entry.phys());
            }
        }
    }

    /** A sync of the mapping: for the CPU hands it to the CPU, for the device back to the device. */
    synchronized void synced(DmaDebug.Entry entry, boolean forCpu) {
        Tracked t = find(entry);
        if (t != null) {
            t.deviceOwns = !forCpu;
        }
    }

    private Tracked find(DmaDebug.Entry entry) {
        List<Tracked> here = byPhys.get(entry.phys());
        if (here != null) {
            for (Tracked t : here) {
                if (t.entry == entry) {
                    return t;
                }
            }
        }
        return null;
    }

    /** @return streaming mappings being watched */
    public int watchedMappings() {
        return tracked;
    }

    @Override
    public void cpuRead(long phys, long length) {
        if (tracked != 0 && length > 0) {
            check(phys, length, false);
        }
    }

    @Override
    public void cpuWrite(long phys, long length) {
        if (tracked != 0 && length > 0) {
            check(phys, length, true);
        }
    }

    private void check(long phys, long length, boolean write) {
        List<DmaDebug.Entry> touched = new ArrayList<>(1);
        synchronized (this) {
            long from = phys - Math.min(phys, largest);
            for (Map.Entry<Long, List<Tracked>> e : byPhys.subMap(from, true, phys + length, false).entrySet()) {
                for (Tracked t : e.getValue()) {
                    DmaDebug.Entry m = t.entry;
                    if (!t.deviceOwns || Long.compareUnsigned(m.phys() + m.size(), phys) <= 0) {
                        continue;
                    }
                    boolean bad = write ? m.direction() != DmaDirection.FROM_DEVICE
                            : m.direction() == DmaDirection.FROM_DEVICE;
                    if (bad) {
                        touched.add(m);
                    }
                }
            }
        }
        for (DmaDebug.Entry m : touched) {
            debug.report(m.device(), String.format(write
                    ? "cpu writes DMA memory it handed to the device [cpu address=0x%x] [size=%d bytes]"
                        + " [device address=0x%016x] [map size=%d bytes] [mapped with %s]: sync it for the cpu or"
                        + " unmap it first"
                    : "cpu reads DMA memory the device may still write [cpu address=0x%x] [size=%d bytes]"
                        + " [device address=0x%016x] [map size=%d bytes] [mapped with %s]: sync it for the cpu or"
                        + " unmap it first",
                    phys, length, m.dmaAddress(), m.size(), DmaDebug.dirName(m.direction())));
        }
    }
}
