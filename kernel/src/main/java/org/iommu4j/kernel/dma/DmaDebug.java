package org.iommu4j.kernel.dma;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.iommu4j.api.BusListener;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.log.KernelLogBuffer;
import org.iommu4j.kernel.taint.TaintState;

/**
 * DMA-API debugging, the kernel's {@code CONFIG_DMA_API_DEBUG} ({@code kernel/dma/debug.c}, Linux v6.12): every streaming
 * mapping and coherent allocation made through the {@link DmaApi} is recorded, and each unmap, free and sync is
 * checked against the record. A driver bug is reported the kernel's way, {@code DMA-API: <driver> <device>:
 * <what> [...]}, counted in {@link #errorCount()}, and the call then goes on to the backend as in the kernel:
 * the checker reports, it does not refuse.
 *
 * <p>What is checked: an unmap or free of memory never mapped, with a different size, with the wrong function
 * (a streaming mapping freed as coherent or back), with a different direction, or a coherent buffer freed at a
 * different CPU address; a sync of memory no single mapping holds whole (never mapped, or past a mapping's
 * end), with a different direction, or of device-read-only memory for the CPU and device-write-only memory to
 * the device; a mapping
 * whose first cache line is already mapped for the device to write ("overlapping mappings"); and a driver
 * released from its device while mappings are still live. Kernel drivers' scatterlists are not modelled.
 *
 * <p>Only the first error is printed unless told otherwise, as with the kernel's debugfs {@code num_errors}
 * (default 1) and {@code all_errors} (default 0); {@link #reports()} keeps every report whatever is printed.
 * A driver filter ({@code driver_filter}) limits printing to one driver's devices. Enabled per {@link
 * org.iommu4j.kernel.Host} (the config option); {@code dma_debug=off} on the command line turns it off.
 * Its bookkeeping costs an allocation and a per-device lock per call, as the kernel's does, which is why it is
 * off unless asked for.
 */
public final class DmaDebug implements BusListener {
    /** {@code PREALLOC_DMA_DEBUG_ENTRIES}: entries the kernel preallocates unless {@code dma_debug_entries=}. */
    public static final int PREALLOC_ENTRIES = 1 << 16;
    /** {@code L1_CACHE_SHIFT} on x86: overlap tracking works on 64-byte cache lines. */
    public static final int CACHE_LINE_SHIFT = 6;
    /** The kernel's {@code DMA_MAPPING_ERROR}, an address no mapping ever has. */
    public static final long DMA_MAPPING_ERROR = -1L;
    private static final int REPORTS_KEPT = 1024;

    /** How a mapping was made, the kernel's {@code type2name}. */
    public enum Type {
        /** {@code dma_map_single} / {@code dma_map_page}. */
        SINGLE("single"),
        /** {@code dma_alloc_coherent}. */
        COHERENT("coherent");

        private final String kernelName;

        Type(String kernelName) {
            this.kernelName = kernelName;
        }

        /** @return the word the kernel prints */
        public String kernelName() {
            return kernelName;
        }
    }

    /**
     * One live mapping as the checker recorded it.
     *
     * @param device the device it was made for
     * @param type how it was made
     * @param phys the CPU side's physical address
     * @param dmaAddress the address the device was given
     * @param size bytes, as the driver asked
     * @param direction the direction it was made with
     */
    public record Entry(BusDevice device, Type type, long phys, long dmaAddress, long size,
            DmaDirection direction) {
        /**
         * One line of the kernel's debugfs {@code dump} (without its hash index and cache-line columns).
         *
         * @return {@code <driver> <device> <type> P=<phys> N=<pfn> D=<dma> L=<size> <DIRECTION>}
         */
        public String dumpLine() {
            return String.format("%s %s P=%x N=%x D=%x L=%x %s", device.logPrefix(), type.kernelName(), phys,
                    phys >>> 12, dmaAddress, size, dirName(direction));
        }
    }

    private final KernelLogBuffer log;
    private final TaintState taint;
    private final int preallocated;
    private final Map<BusDevice, NavigableMap<Long, List<Entry>>> byDevice = new ConcurrentHashMap<>();
    private final Map<Long, Integer> activeCachelines = new ConcurrentHashMap<>();
    private final AtomicLong entries = new AtomicLong();
    private final AtomicLong errors = new AtomicLong();
    private final Deque<String> reports = new ArrayDeque<>();
    private volatile boolean allErrors;
    private final AtomicInteger numErrors = new AtomicInteger(1);
    private volatile String driverFilter = "";
    private final CpuAccessCheck cpuAccess = new CpuAccessCheck(this);

    /**
     * Starts the checker and logs what the kernel logs at init.
     *
     * @param log the kernel log its reports go to
     * @param taint the host's taint: a printed report is a {@code WARN}, which sets 'W'
     * @param preallocated the {@code dma_debug_entries=} figure (only reported: entries grow on demand, as in
     *     current kernels)
     */
    public DmaDebug(KernelLogBuffer log, TaintState taint, int preallocated) {
        this.log = log;
        this.taint = taint;
        this.preallocated = preallocated;
        log.log(LogLevel.INFO, "DMA-API: preallocated " + preallocated + " debug entries");
        log.log(LogLevel.INFO, "DMA-API: debugging enabled by kernel config");
    }

    /** @return the CPU-touch check, beyond the kernel's: the host shows it every CPU access to memory */
    public CpuAccessCheck cpuAccessCheck() {
        return cpuAccess;
    }

    /** @return the {@code dma_debug_entries} figure the checker started with */
    public int preallocatedEntries() {
        return preallocated;
    }

    /** @return errors found since boot, printed or not (debugfs {@code error_count}) */
    public long errorCount() {
        return errors.get();
    }

    /** @return live mappings and allocations being tracked */
    public long activeEntries() {
        return entries.get();
    }

    /** @return the most recent reports (up to 1024), oldest first, each as the kernel words it */
    public List<String> reports() {
        synchronized (reports) {
            return List.copyOf(reports);
        }
    }

    /** @param all print every error, not only the first {@link #setNumErrors} (debugfs {@code all_errors}) */
    public void setAllErrors(boolean all) {
        this.allErrors = all;
    }

    /** @param count how many more errors to print (debugfs {@code num_errors}) */
    public void setNumErrors(int count) {
        if (count < 0) {
            throw new IllegalArgumentException("num_errors " + count + " is invalid: expected 0 or more");
        }
        numErrors.set(count);
    }

    /**
     * Prints errors only for devices bound to one driver (debugfs {@code driver_filter}); errors are still
     * counted and kept in {@link #reports()} for every device.
     *
     * @param driver a driver name; empty, or a first character that is not a letter or digit, switches the
     *     filter off
     */
    public void setDriverFilter(String driver) {
        String token = driver == null || driver.isEmpty() ? "" : driver.split("\\s", 2)[0];
        if (token.isEmpty() || !Character.isLetterOrDigit(token.charAt(0))) {
            if (!driverFilter.isEmpty()) {
                log.log(LogLevel.INFO, "DMA-API: switching off dma-debug driver filter");
            }
            driverFilter = "";
            return;
        }
        driverFilter = token;
        log.log(LogLevel.INFO, "DMA-API: enable driver filter for driver [" + token + "]");
    }

    /**
     * @param device a device, or null for every device
     * @return the live entries, ordered by device address per device
     */
    public List<Entry> dump(Device device) {
        List<Entry> out = new ArrayList<>();
        for (var e : byDevice.entrySet()) {
            if (device == null || e.getKey() == device) {
                NavigableMap<Long, List<Entry>> map = e.getValue();
                synchronized (map) {
                    map.values().forEach(out::addAll);
                }
            }
        }
        return out;
    }

    void mapped(BusDevice device, long phys, long dmaAddress, long size, DmaDirection direction) {
        add(new Entry(device, Type.SINGLE, phys, dmaAddress, size, direction));
    }

    void allocated(BusDevice device, CoherentBuffer buffer) {
        add(new Entry(device, Type.COHERENT, buffer.phys(), buffer.dmaAddress(), buffer.size(),
                DmaDirection.BIDIRECTIONAL));
    }

    /**
     * Checks an unmap before the backend sees it and takes the record out, as the kernel's {@code check_unmap}
     * does in one step under its bucket lock, so that two racing unmaps cannot both claim it. If the backend then
     * refuses the unmap, {@link #restore} puts the record back, as the mapping stays.
     *
     * @return the record taken, or null when none matched (reported)
     */
    Entry unmapping(BusDevice device, long dmaAddress, long size, DmaDirection direction) {
        return checkUnmap(device, Type.SINGLE, 0, dmaAddress, size, direction);
    }

    /** As {@link #unmapping}, for {@code dma_free_coherent}. */
    Entry freeing(BusDevice device, CoherentBuffer buffer) {
        return checkUnmap(device, Type.COHERENT, buffer.phys(), buffer.dmaAddress(), buffer.size(),
                DmaDirection.BIDIRECTIONAL);
    }

    /** Puts back a record {@link #unmapping} or {@link #freeing} took, when the backend refused the call. */
    void restore(Entry entry) {
        if (entry != null) {
            insert(entry);
        }
    }

    private void add(Entry entry) {
        if (insert(entry) > 1) {
            report(entry.device(), "cacheline tracking EEXIST, overlapping mappings aren't supported");
        }
    }

    /** Records an entry; returns how many live device-writable mappings now start in its first cache line. */
    private int insert(Entry entry) {
        NavigableMap<Long, List<Entry>> map = byDevice.computeIfAbsent(entry.device(), d -> new TreeMap<>());
        synchronized (map) {
            map.computeIfAbsent(entry.dmaAddress(), a -> new ArrayList<>(1)).add(entry);
        }
        entries.incrementAndGet();
        cpuAccess.handedToDevice(entry);
        return entry.direction() == DmaDirection.TO_DEVICE ? 0
                : activeCachelines.merge(cacheline(entry), 1, Integer::sum);
    }

    private Entry checkUnmap(BusDevice device, Type type, long phys, long dmaAddress, long size,
            DmaDirection direction) {
        Entry entry = takeBestFit(device, type, dmaAddress, size, direction);
        if (entry == null) {
            if (dmaAddress == DMA_MAPPING_ERROR) {
                report(device, "device driver tries to free an invalid DMA memory address");
            } else {
                report(device, String.format("device driver tries to free DMA memory it has not allocated"
                        + " [device address=0x%016x] [size=%d bytes]", dmaAddress, size));
            }
            return null;
        }
        if (size != entry.size()) {
            report(device, String.format("device driver frees DMA memory with different size"
                    + " [device address=0x%016x] [map size=%d bytes] [unmap size=%d bytes]", dmaAddress,
                    entry.size(), size));
        }
        if (type != entry.type()) {
            report(device, String.format("device driver frees DMA memory with wrong function"
                    + " [device address=0x%016x] [size=%d bytes] [mapped as %s] [unmapped as %s]", dmaAddress,
                    size, entry.type().kernelName(), type.kernelName()));
        } else if (type == Type.COHERENT && phys != entry.phys()) {
            report(device, String.format("device driver frees DMA memory with different CPU address"
                    + " [device address=0x%016x] [size=%d bytes] [cpu alloc address=0x%016x]"
                    + " [cpu free address=0x%016x]", dmaAddress, size, entry.phys(), phys));
        }
        if (direction != entry.direction()) {
            report(device, String.format("device driver frees DMA memory with different direction"
                    + " [device address=0x%016x] [size=%d bytes] [mapped with %s] [unmapped with %s]", dmaAddress,
                    size, dirName(entry.direction()), dirName(direction)));
        }
        uncount(entry);
        return entry;
    }

    /** Undoes {@link #insert}'s counting for an entry taken out of the map. */
    private void uncount(Entry entry) {
        entries.decrementAndGet();
        cpuAccess.forget(entry);
        if (entry.direction() != DmaDirection.TO_DEVICE) {
            activeCachelines.computeIfPresent(cacheline(entry), (k, n) -> n == 1 ? null : n - 1);
        }
    }

    /** The kernel's best fit among entries at the same device address: a perfect match, or the only one. */
    private Entry takeBestFit(BusDevice device, Type type, long dmaAddress, long size, DmaDirection direction) {
        NavigableMap<Long, List<Entry>> map = byDevice.get(device);
        if (map == null) {
            return null;
        }
        synchronized (map) {
            List<Entry> here = map.get(dmaAddress);
            if (here == null) {
                return null;
            }
            Entry best = null;
            int bestLevel = -1;
            for (Entry e : here) {
                int level = (e.size() == size ? 1 : 0) + (e.type() == type ? 1 : 0)
                        + (e.direction() == direction ? 1 : 0);
                if (level > bestLevel) {
                    bestLevel = level;
                    best = e;
                }
                if (level == 3) {
                    break;
                }
            }
            if (best == null || (here.size() > 1 && bestLevel < 3)) {
                return null;
            }
            here.remove(best);
            if (here.isEmpty()) {
                map.remove(dmaAddress);
            }
            return best;
        }
    }

    void syncing(BusDevice device, long dmaAddress, long size, DmaDirection direction, boolean forCpu) {
        Entry entry = containing(device, dmaAddress, size);
        if (entry != null) {
            cpuAccess.synced(entry, forCpu);
        }
        if (entry == null) {
            report(device, String.format("device driver tries to sync DMA memory it has not allocated"
                    + " [device address=0x%016x] [size=%d bytes]", dmaAddress, size));
            return;
        }
        if (entry.direction() == DmaDirection.BIDIRECTIONAL) {
            return;
        }
        if (direction != entry.direction()) {
            report(device, String.format("device driver syncs DMA memory with different direction"
                    + " [device address=0x%016x] [size=%d bytes] [mapped with %s] [synced with %s]", dmaAddress,
                    entry.size(), dirName(entry.direction()), dirName(direction)));
        }
        if (forCpu && entry.direction() != DmaDirection.FROM_DEVICE && direction != DmaDirection.TO_DEVICE) {
            report(device, String.format("device driver syncs device read-only DMA memory for cpu"
                    + " [device address=0x%016x] [size=%d bytes] [mapped with %s] [synced with %s]", dmaAddress,
                    entry.size(), dirName(entry.direction()), dirName(direction)));
        }
        if (!forCpu && entry.direction() != DmaDirection.TO_DEVICE && direction != DmaDirection.FROM_DEVICE) {
            report(device, String.format("device driver syncs device write-only DMA memory to device"
                    + " [device address=0x%016x] [size=%d bytes] [mapped with %s] [synced with %s]", dmaAddress,
                    entry.size(), dirName(entry.direction()), dirName(direction)));
        }
    }

    /** The kernel's {@code containing_match}: the nearest mapping at or below the address holding the whole range. */
    private Entry containing(BusDevice device, long dmaAddress, long size) {
        NavigableMap<Long, List<Entry>> map = byDevice.get(device);
        if (map == null) {
            return null;
        }
        synchronized (map) {
            for (var e : map.headMap(dmaAddress, true).descendingMap().entrySet()) {
                for (Entry entry : e.getValue()) {
                    // unsigned and without overflow: the range from the entry's start must hold the whole sync
                    long offset = dmaAddress - entry.dmaAddress();
                    if (Long.compareUnsigned(offset, entry.size()) < 0
                            && Long.compareUnsigned(size, entry.size() - offset) <= 0) {
                        return entry;
                    }
                }
            }
            return null;
        }
    }

    /** A removed device's records go with it (the kernel would keep them, dangling). */
    @Override
    public void deviceRemoved(Device device) {
        NavigableMap<Long, List<Entry>> map = byDevice.remove((BusDevice) device);
        if (map == null) {
            return;
        }
        synchronized (map) {
            map.values().forEach(here -> here.forEach(this::uncount));
        }
    }

    @Override
    public void driverUnbound(Device device, String driver) {
        List<Entry> live = dump(device);
        if (live.isEmpty()) {
            return;
        }
        Entry one = live.get(live.size() - 1);
        report((BusDevice) device, String.format("device driver has pending DMA allocations while released from"
                + " device [count=%d]\nOne of leaked entries details: [device address=0x%016x] [size=%d bytes]"
                + " [mapped with %s] [mapped as %s]", live.size(), one.dmaAddress(), one.size(),
                dirName(one.direction()), one.type().kernelName()));
    }

    /** Counts, keeps and (within num_errors and the driver filter) prints a report; also the CPU-touch check's. */
    void report(BusDevice device, String what) {
        errors.incrementAndGet();
        String line = "DMA-API: " + device.logPrefix() + ": " + what;
        synchronized (reports) {
            if (reports.size() == REPORTS_KEPT) {
                reports.removeFirst();
            }
            reports.addLast(line);
        }
        String filter = driverFilter;
        boolean all = allErrors;
        int left = all ? 1 : numErrors.getAndUpdate(n -> n > 0 ? n - 1 : 0);
        if ((filter.isEmpty() || filter.equals(device.driver())) && left > 0) {
            log.log(LogLevel.WARNING, line);
            taint.add(TaintFlag.WARN, "kernel", "WARN in kernel/dma/debug.c: " + what);
        }
    }

    private static long cacheline(Entry entry) {
        return entry.phys() >>> CACHE_LINE_SHIFT;
    }

    /** @return the kernel's {@code dir2name} for a direction */
    static String dirName(DmaDirection direction) {
        return "DMA_" + direction.name();
    }
}
