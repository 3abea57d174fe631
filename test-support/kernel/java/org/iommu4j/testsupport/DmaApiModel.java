package org.iommu4j.testsupport;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.dma.DmaDebug;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * A model of what a correct driver may expect of the DMA API, run step by step against a host whose backend
 * installed its DMA ops, and checked after every step. Shared by the backends' model-based tests and their
 * Jazzer op-sequence targets (the parent pom adds {@code test-support/kernel/java} to the backends' test
 * sources; it needs the kernel on the test class path).
 *
 * <p>The model keeps, per buffer, who owns it (the CPU, or the device between map / {@code sync_for_device} and
 * {@code sync_for_cpu} / unmap) and the bytes each side may see: a device reading a {@code TO_DEVICE} or
 * bidirectional mapping sees what the CPU wrote before the handover, and the CPU, once it owns the buffer
 * again, sees what the device wrote into a {@code FROM_DEVICE} or bidirectional mapping (and its own bytes
 * where the device wrote nothing). After every step it checks: the live-mapping count the DMA API keeps for the
 * backend's module equals the model's; the bounce slots in use equal the live bounced mappings' slots; a failed
 * call left both unchanged and had the errno (and message) the model predicts; and, with DMA-API debugging on,
 * the checker saw no driver bug. {@link #teardown()} ends every mapping and checks that nothing is left.
 */
public final class DmaApiModel {
    /** A bounce slot, {@code IO_TLB_SIZE}. */
    public static final int SLOT = 2048;
    /** Bytes of each buffer the model maps from. */
    public static final int BUFFER = 32 * 1024;
    private static final DmaDirection[] DIRECTIONS = {DmaDirection.TO_DEVICE, DmaDirection.FROM_DEVICE,
        DmaDirection.BIDIRECTIONAL};

    /** Where the choices come from: a seeded {@link java.util.Random}, or Jazzer's data provider. */
    @FunctionalInterface
    public interface Choices {
        /**
         * @param bound exclusive, positive
         * @return 0 to {@code bound - 1}
         */
        int pick(int bound);

        /**
         * @param n how many
         * @return that many chosen bytes
         */
        default byte[] bytes(int n) {
            byte[] b = new byte[n];
            int seed = pick(1 << 30);
            for (int i = 0; i < n; i++) {
                b[i] = (byte) (seed + i * 31 + (i >>> 8));
            }
            if (n > 0) {
                b[pick(n)] = (byte) pick(256);
            }
            return b;
        }
    }

    /** What the backend under test predicts for one map. */
    public interface Backend {
        /**
         * @param device the device
         * @param phys the buffer
         * @param size bytes
         * @return null when the map must succeed, else the errno it must fail with
         */
        Errno mapOutcome(PciDevice device, long phys, long size);

        /**
         * @param dmaAddress a live mapping's address
         * @return whether it lies in the bounce pool
         */
        boolean bounced(long dmaAddress);

        /** @return bounce slots in use now, 0 for a backend without a pool */
        long slotsInUse();
    }

    private record Mapping(PciDevice device, long dma, int offset, int size, DmaDirection direction) {
    }

    private final class Buffer {
        final long phys;
        final byte[] cpu = new byte[BUFFER];      // what the CPU wrote, and sees while it owns the buffer
        final byte[] device = new byte[BUFFER];   // what the device may see while it owns the mapping
        Mapping mapping;
        boolean deviceOwns;

        Buffer(long phys) {
            this.phys = phys;
        }
    }

    private final Host host;
    private final ModuleRef owner;
    private final Backend backend;
    private final List<PciDevice> devices;
    private final List<Buffer> buffers = new ArrayList<>();
    private final List<CoherentBuffer> coherent = new ArrayList<>();
    private final List<Long> userPages = new ArrayList<>();
    private final List<Long> lowBlocks = new ArrayList<>();
    private final long freePagesAtStart;
    private long liveMappings;
    private long bouncedSlots;
    private long steps;
    private final long[] counts = new long[Count.values().length];
    private String lastStep = "(none)";

    /**
     * Takes eight low buffers from the page allocator and eight from the top of memory (user pages come from
     * the top downwards, so eight in a row make one contiguous buffer), so that a narrow device cannot reach the
     * high ones.
     *
     * @param host the host, with the backend loaded
     * @param owner the module whose DMA ops the devices use
     * @param backend its predictions
     * @param devices the devices to map for
     */
    public DmaApiModel(Host host, ModuleRef owner, Backend backend, List<PciDevice> devices) {
        this.host = host;
        this.owner = owner;
        this.backend = backend;
        this.devices = List.copyOf(devices);
        for (int i = 0; i < 8; i++) {
            long block = host.pageAllocator().allocatePages(5, PageAllocator.NO_LIMIT);
            lowBlocks.add(block);
            buffers.add(new Buffer(block));
        }
        for (int i = 0; i < 8; i++) {
            long first = -1;
            for (int p = 0; p < BUFFER / 4096; p++) {
                long page = host.pageAllocator().allocateUserPage();
                if (first >= 0 && page != first - 4096) {
                    throw new IllegalStateException("user pages are not contiguous: 0x" + Long.toHexString(page));
                }
                first = page;
                userPages.add(page);
            }
            buffers.add(new Buffer(first));
        }
        freePagesAtStart = host.pageAllocator().freePageCount();
        check();
    }

    /** What the sequence did, so that a test can show it really exercised each path. */
    public enum Count {
        /** Mappings made. */
        MAPPED,
        /** Of them, bounced. */
        BOUNCED,
        /** Maps refused as predicted. */
        MAP_REFUSED,
        /** Device reads checked against the model. */
        DEVICE_READS,
        /** Handovers to the CPU checked against the model. */
        CPU_CHECKS,
        /** Bad calls refused with the predicted errno and message. */
        BAD_CALLS
    }

    /**
     * @param what a counter
     * @return its value
     */
    public long count(Count what) {
        return counts[what.ordinal()];
    }

    /** @return steps run so far */
    public long steps() {
        return steps;
    }

    /**
     * Runs one step the choices pick, then checks every invariant.
     *
     * @param c the choices
     */
    public void step(Choices c) {
        steps++;
        Buffer b = buffers.get(c.pick(buffers.size()));
        switch (c.pick(10)) {
            case 0, 1 -> map(c, b);
            case 2 -> unmap(b);
            case 3 -> syncForCpu(b);
            case 4 -> syncForDevice(c, b);
            case 5 -> deviceWrite(c, b);
            case 6 -> deviceRead(b);
            case 7 -> coherent(c);
            case 8 -> badCall(c, b);
            default -> cpuWrite(c, b);
        }
        check();
    }

    private void map(Choices c, Buffer b) {
        if (b.mapping != null) {
            return;
        }
        PciDevice dev = devices.get(c.pick(devices.size()));
        int offset = c.pick(4096);
        int size = 1 + c.pick(c.pick(4) != 0 ? 512 : BUFFER - offset);
        DmaDirection dir = DIRECTIONS[c.pick(3)];
        byte[] data = c.bytes(size);
        host.memory().write(b.phys + offset, data, 0, size);
        System.arraycopy(data, 0, b.cpu, offset, size);
        lastStep = String.format("map(%s, 0x%x+0x%x, %d, %s)", dev.name(), b.phys, offset, size, dir);
        Errno expected = backend.mapOutcome(dev, b.phys + offset, size);
        long dma;
        try {
            dma = host.dma().map(dev, b.phys + offset, size, dir);
        } catch (IommuException e) {
            if (expected == null) {
                throw new AssertionError(lastStep + " failed: " + e, e);
            }
            expect(e.errno() == expected, "failed with " + e.errno() + " (" + e.getMessage() + "), expected "
                    + expected);
            counts[Count.MAP_REFUSED.ordinal()]++;
            return;
        }
        expect(expected == null, "succeeded at 0x" + Long.toHexString(dma) + ", expected " + expected);
        counts[Count.MAPPED.ordinal()]++;
        b.mapping = new Mapping(dev, dma, offset, size, dir);
        b.deviceOwns = true;
        System.arraycopy(b.cpu, offset, b.device, offset, size);
        liveMappings++;
        if (backend.bounced(dma)) {
            counts[Count.BOUNCED.ordinal()]++;
            bouncedSlots += slots(size);
            // Linux v6.12 swiotlb_tbl_map_single: with no min_align_mask the bounce starts a slot
            expect(dma % SLOT == 0, "the bounce buffer 0x" + Long.toHexString(dma) + " does not start a slot");
            for (Buffer other : buffers) {
                Mapping o = other.mapping;
                if (o != null && other != b && backend.bounced(o.dma())
                        && Long.compareUnsigned(o.dma(), dma + size) < 0
                        && Long.compareUnsigned(dma, o.dma() + o.size()) < 0) {
                    throw new AssertionError(String.format("after step %d, %s: the bounce buffer 0x%x+%d overlaps"
                            + " the live one of %s", steps, lastStep, dma, size, describe(o)));
                }
            }
        }
        if (dir != DmaDirection.FROM_DEVICE) {
            deviceRead(b);
        }
    }

    private void unmap(Buffer b) {
        Mapping m = b.mapping;
        if (m == null) {
            return;
        }
        lastStep = "unmap of " + describe(m);
        boolean bounced = backend.bounced(m.dma());
        host.dma().unmap(m.device(), m.dma(), m.size(), m.direction());
        b.mapping = null;
        liveMappings--;
        if (bounced) {
            bouncedSlots -= slots(m.size());
        }
        handBack(b, m);
    }

    private void syncForCpu(Buffer b) {
        Mapping m = b.mapping;
        if (m == null || !b.deviceOwns) {
            return;
        }
        lastStep = "sync_for_cpu of " + describe(m);
        host.dma().syncForCpu(m.device(), m.dma(), m.size(), m.direction());
        b.deviceOwns = false;
        handBack(b, m);
    }

    /** The CPU owns the buffer again: it sees the device's bytes of a mapping the device may write. */
    private void handBack(Buffer b, Mapping m) {
        if (m.direction() != DmaDirection.TO_DEVICE) {
            System.arraycopy(b.device, m.offset(), b.cpu, m.offset(), m.size());
        }
        byte[] seen = new byte[m.size()];
        host.memory().read(b.phys + m.offset(), seen, 0, seen.length);
        counts[Count.CPU_CHECKS.ordinal()]++;
        compare("the CPU", seen, b.cpu, m.offset());
    }

    private void syncForDevice(Choices c, Buffer b) {
        Mapping m = b.mapping;
        if (m == null || b.deviceOwns) {
            return;
        }
        lastStep = "sync_for_device of " + describe(m);
        if (m.direction() != DmaDirection.FROM_DEVICE) {
            cpuWriteRange(c, b, m.offset(), m.size());
        }
        host.dma().syncForDevice(m.device(), m.dma(), m.size(), m.direction());
        b.deviceOwns = true;
        if (m.direction() != DmaDirection.FROM_DEVICE) {
            System.arraycopy(b.cpu, m.offset(), b.device, m.offset(), m.size());
            deviceRead(b);
        }
    }

    private void deviceWrite(Choices c, Buffer b) {
        Mapping m = b.mapping;
        if (m == null || !b.deviceOwns || m.direction() == DmaDirection.TO_DEVICE) {
            return;
        }
        int from = c.pick(m.size());
        int length = 1 + c.pick(m.size() - from);
        byte[] data = c.bytes(length);
        lastStep = String.format("device write of %d bytes at +%d into %s", length, from, describe(m));
        m.device().dmaWrite(m.dma() + from, data, 0, length);
        System.arraycopy(data, 0, b.device, m.offset() + from, length);
    }

    private void deviceRead(Buffer b) {
        Mapping m = b.mapping;
        if (m == null || !b.deviceOwns || m.direction() == DmaDirection.FROM_DEVICE) {
            return;
        }
        byte[] seen = m.device().dmaRead(m.dma(), m.size());
        counts[Count.DEVICE_READS.ordinal()]++;
        compare("the device", seen, b.device, m.offset());
    }

    private void cpuWrite(Choices c, Buffer b) {
        if (b.mapping != null && (b.deviceOwns || b.mapping.direction() != DmaDirection.TO_DEVICE)) {
            // The device owns it: a driver bug, which the CPU-touch check reports. And what the CPU writes into
            // a mapping the device may write, while it holds it between syncs, is undefined once the mapping
            // ends or goes back (a bounce buffer is copied back over it, direct memory is not), so a correct
            // driver does not rely on it.
            return;
        }
        int from = c.pick(BUFFER);
        cpuWriteRange(c, b, from, 1 + c.pick(Math.min(4096, BUFFER - from)));
    }

    private void cpuWriteRange(Choices c, Buffer b, int from, int length) {
        byte[] data = c.bytes(length);
        host.memory().write(b.phys + from, data, 0, length);
        System.arraycopy(data, 0, b.cpu, from, length);
    }

    private void coherent(Choices c) {
        if (!coherent.isEmpty() && c.pick(2) == 0) {
            CoherentBuffer buf = coherent.remove(c.pick(coherent.size()));
            lastStep = "free_coherent of " + buf;
            host.dma().freeCoherent(devices.get(0), buf);
            liveMappings--;
            return;
        }
        if (coherent.size() >= 4) {
            return;
        }
        long size = 1 + c.pick(16384);
        lastStep = "alloc_coherent of " + size;
        CoherentBuffer buf = host.dma().allocateCoherent(devices.get(0), size);
        liveMappings++;
        coherent.add(buf);
        byte[] zero = new byte[(int) size];
        byte[] seen = new byte[(int) size];
        host.memory().read(buf.phys(), seen, 0, seen.length);
        expect(Arrays.equals(seen, zero), "a coherent buffer was not zeroed");
        byte[] data = c.bytes((int) size);
        devices.get(0).dmaWrite(buf.dmaAddress(), data);
        host.memory().read(buf.phys(), seen, 0, seen.length);
        expect(Arrays.equals(seen, data), "the CPU does not see the device's write to a coherent buffer");
    }

    /** Calls the DMA API must refuse with a typed error, leaving everything as it was. */
    private void badCall(Choices c, Buffer b) {
        PciDevice dev = devices.get(c.pick(devices.size()));
        long phys = b.phys;
        // Sizes no buffer has were accepted once (issue 11 items 1 and 13: noiommu mapped all of memory at
        // 0x160000, swiotlb's reach check wrapped for 0x7fffffffffffffff bytes); the DMA API now refuses them.
        switch (c.pick(4)) {
            case 3 -> {
                // sizes no buffer has: past the end of memory, or wrapping past 2^64
                long size = switch (c.pick(3)) {
                    case 0 -> host.memory().size();
                    case 1 -> Long.MAX_VALUE;
                    default -> -phys; // phys + size is 2^64 exactly
                };
                lastStep = String.format("map of 0x%x bytes at 0x%x", size, phys);
                try {
                    long dma = host.dma().map(dev, phys, size, DmaDirection.TO_DEVICE);
                    throw new AssertionError(lastStep + " succeeded at 0x" + Long.toHexString(dma)
                            + "; expected a typed error");
                } catch (IommuException expected) {
                    counts[Count.BAD_CALLS.ordinal()]++;
                }
            }
            case 0 -> {
                // sizes are unsigned: 0 is refused, and so is one that wraps past 2^64 (AddressRange's words)
                long size = c.pick(2) == 0 ? 0 : -1 - c.pick(4096);
                lastStep = "map of size 0x" + Long.toHexString(size);
                refused(() -> host.dma().map(dev, phys, size, DmaDirection.TO_DEVICE), Errno.EINVAL, size == 0
                        ? "DMA size 0 is invalid: expected at least 1 byte"
                        : String.format("DMA buffer phys 0x%x + size 0x%x wraps past 2^64: expected a size of at most"
                                + " 0x%x", phys, size, -phys));
            }
            case 1 -> {
                lastStep = "map with direction NONE";
                refused(() -> host.dma().map(dev, phys, 64, DmaDirection.NONE), Errno.EINVAL,
                        "DMA direction NONE is invalid for a mapping: use TO_DEVICE, FROM_DEVICE or BIDIRECTIONAL");
            }
            default -> {
                lastStep = "sync with direction NONE";
                refused(() -> host.dma().syncForCpu(dev, phys, 64, DmaDirection.NONE), Errno.EINVAL,
                        "DMA direction NONE is invalid for a mapping: use TO_DEVICE, FROM_DEVICE or BIDIRECTIONAL");
            }
        }
    }

    private void refused(Runnable call, Errno errno, String message) {
        try {
            call.run();
        } catch (IommuException e) {
            expect(e.errno() == errno && e.getMessage().equals(message), "failed with " + e.errno() + " '"
                    + e.getMessage() + "', expected " + errno + " '" + message + "'");
            counts[Count.BAD_CALLS.ordinal()]++;
            return;
        }
        throw new AssertionError(lastStep + " succeeded; expected " + errno);
    }

    /** Ends every mapping and buffer, then checks that nothing is left. */
    public void teardown() {
        for (Buffer b : buffers) {
            unmap(b);
        }
        while (!coherent.isEmpty()) {
            host.dma().freeCoherent(devices.get(0), coherent.remove(0));
            liveMappings--;
        }
        lastStep = "teardown";
        check();
        expect(host.dma().liveMappings(owner) == 0, "live mappings left: " + host.dma().liveMappings(owner));
        expect(backend.slotsInUse() == 0, "bounce slots left in use: " + backend.slotsInUse());
        host.dma().debug().ifPresent(d -> expect(d.activeEntries() == 0, "DMA-API records left: "
                + d.activeEntries()));
        long free = host.pageAllocator().freePageCount();
        expect(free == freePagesAtStart, (freePagesAtStart - free) + " pages were not given back (coherent buffers,"
                + " bounce memory)");
        for (long block : lowBlocks) {
            host.pageAllocator().freePages(block, 5);
        }
        for (long page : userPages) {
            host.pageAllocator().freePages(page, 0);
        }
    }

    private void check() {
        long live = host.dma().liveMappings(owner);
        expect(live == liveMappings, "live mappings " + live + ", the model has " + liveMappings);
        long slots = backend.slotsInUse();
        expect(slots == bouncedSlots, "bounce slots in use " + slots + ", the model has " + bouncedSlots);
        DmaDebug debug = host.dma().debug().orElse(null);
        if (debug != null) {
            expect(debug.errorCount() == 0, "DMA-API debugging reported " + debug.reports());
        }
    }

    private void compare(String who, byte[] seen, byte[] model, int offset) {
        for (int i = 0; i < seen.length; i++) {
            if (seen[i] != model[offset + i]) {
                throw new AssertionError(String.format("after step %d, %s: %s sees 0x%02x at +%d, the model 0x%02x",
                        steps, lastStep, who, seen[i], i, model[offset + i]));
            }
        }
    }

    private void expect(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError("after step " + steps + ", " + lastStep + ": " + what);
        }
    }

    private static String describe(Mapping m) {
        return String.format("%s 0x%x+%d %s", m.device().name(), m.dma(), m.size(), m.direction());
    }

    private static long slots(long size) {
        return (size + SLOT - 1) / SLOT;
    }

    /**
     * After the backends were unloaded: every page is back in the allocator and no module left registrations
     * for the kernel to clean up (its {@code stop()} undid all it did).
     *
     * @param host the host
     * @param freeAtBoot the allocator's free pages before anything was loaded
     * @param expected the kernel's clean-up lines that are expected: swiotlb leaves its exported pool to the
     *     kernel, as a Linux module's exports go with it at unload
     */
    public static void requireClean(Host host, long freeAtBoot, String... expected) {
        long free = host.pageAllocator().freePageCount();
        if (free != freeAtBoot) {
            throw new AssertionError((freeAtBoot - free) + " pages were not given back after unload");
        }
        List<String> allowed = List.of(expected);
        List<String> behind = host.log().messages().stream().filter(m -> m.contains("registrations behind"))
                .filter(m -> !allowed.contains(m)).toList();
        if (!behind.isEmpty()) {
            throw new AssertionError("a module did not undo its registrations: " + behind);
        }
    }

    /**
     * Runs {@code sequences} seeded sequences ({@link Seeded#forEach}: a failure names its seed) and sums how often
     * each path was taken.
     *
     * @param name the test's name, for the seed report
     * @param sequences how many
     * @param sequence one sequence from its random source
     * @return the sums
     */
    public static java.util.Map<Count, Long> runSequences(String name, int sequences,
            java.util.function.Function<java.util.Random, DmaApiModel> sequence) {
        java.util.Map<Count, Long> counts = new java.util.EnumMap<>(Count.class);
        Seeded.forEach(name, sequences, r -> {
            DmaApiModel model = sequence.apply(r);
            for (Count k : Count.values()) {
                counts.merge(k, model.count(k), Long::sum);
            }
        });
        return counts;
    }
}
