package org.iommu4j.testsupport;

import java.util.Map;
import java.util.TreeMap;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;

/**
 * A model of a VFIO container as a user program sees it, run step by step against a backend's VFIO driver:
 * {@code VFIO_IOMMU_MAP_DMA} and {@code UNMAP_DMA} of a 64-page buffer, device DMA through the mappings with the
 * syncs a bouncing driver needs, and refused calls. After every step it checks: every page's pin count equals
 * the number of live mappings that hold it; the container lists the model's mappings; bounce slots in use
 * equal the live bounce windows'; a refused call had the predicted errno and message and changed nothing; the
 * bytes the device and the process see are the model's. {@link #teardown()} ends everything and checks that
 * no page stays pinned and no slot used. The container's unmap rules are type 1 v2's (no splitting a mapping).
 */
public final class VfioModel {
    /** Pages of the process buffer the mappings come from. */
    public static final int PAGES = 64;
    private static final int PAGE = 4096;
    private static final int[] PROTS = {IommuProt.READ, IommuProt.WRITE, IommuProt.READ | IommuProt.WRITE};

    /** What the backend under test decides. */
    public interface Backend {
        /**
         * @param process the caller
         * @param vaddr the first page to map
         * @param size bytes
         * @param c the choices, for a backend that lets the caller choose
         * @return the iova to ask for, or {@link Vfio#ANY_IOVA}
         */
        long iova(UserProcess process, long vaddr, long size, DmaApiModel.Choices c);

        /**
         * @return whether mappings are bounce windows, copies of the process's pages: then two mappings of one
         *     page hold two copies, and which one reaches the process last is up to the program, so the model
         *     maps each page once
         */
        default boolean bounces() {
            return false;
        }

        /**
         * @param iova a live mapping's device address
         * @return whether it is a bounce window
         */
        boolean bounced(long iova);

        /** @return bounce slots in use now */
        long slotsInUse();
    }

    private record Mapping(long iova, long vaddr, long size, int prot) {
        long end() {
            return iova + size;
        }
    }

    private final UserProcess process;
    private final VfioContainer container;
    private final PciDevice device;
    private final Backend backend;
    private final long base;
    private final byte[] user = new byte[PAGES * PAGE];
    private final int[] pins = new int[PAGES];
    private final TreeMap<Long, Mapping> mappings = new TreeMap<>();
    private long bouncedSlots;
    private long steps;
    private String lastStep = "(none)";
    private long checkedBytes;
    private final long[] counts = new long[Count.values().length];

    /** What the sequence did, so that a test can show it really exercised each path. */
    public enum Count {
        /** Mappings made. */
        MAPPED,
        /** Of them, bounce windows. */
        BOUNCED,
        /** Maps refused for an iova that overlaps a mapping (EEXIST). */
        CLASHES,
        /** Unmaps refused for splitting a mapping, and other refused calls. */
        REFUSED
    }

    /**
     * @param what a counter
     * @return its value
     */
    public long count(Count what) {
        return counts[what.ordinal()];
    }

    /**
     * @param process the user program, with an open container
     * @param container its container, with the iommu type set and the device's group in it
     * @param device the device it drives
     * @param base the process buffer of {@link #PAGES} pages
     * @param backend the backend's decisions
     */
    public VfioModel(UserProcess process, VfioContainer container, PciDevice device, long base, Backend backend) {
        this.process = process;
        this.container = container;
        this.device = device;
        this.base = base;
        this.backend = backend;
        process.read(base, user, 0, user.length);
        check();
    }

    /** @return bytes the device or the process read and the model checked */
    public long checkedBytes() {
        return checkedBytes;
    }

    /**
     * Runs one step the choices pick, then checks every invariant.
     *
     * @param c the choices
     */
    public void step(DmaApiModel.Choices c) {
        steps++;
        switch (c.pick(9)) {
            case 0, 1 -> map(c);
            case 2 -> unmap(c);
            case 3 -> splittingUnmap(c);
            case 4 -> emptyUnmap();
            case 5 -> deviceWrite(c);
            case 6 -> deviceRead(c);
            case 7 -> badMap(c);
            default -> processWrite(c);
        }
        check();
    }

    private void map(DmaApiModel.Choices c) {
        int first = c.pick(PAGES);
        int pages = 1 + c.pick(Math.min(16, PAGES - first));
        int prot = PROTS[c.pick(PROTS.length)];
        long vaddr = base + (long) first * PAGE;
        long size = (long) pages * PAGE;
        if (backend.bounces()) {
            for (int p = first; p < first + pages; p++) {
                if (pins[p] != 0) {
                    return;
                }
            }
        }
        long iova = backend.iova(process, vaddr, size, c);
        lastStep = String.format("map_dma(vaddr 0x%x, size 0x%x, iova %s, %s)", vaddr, size,
                iova == Vfio.ANY_IOVA ? "ANY" : "0x" + Long.toHexString(iova), IommuProt.toString(prot));
        Mapping clash = iova == Vfio.ANY_IOVA ? null : overlapping(iova, size);
        VfioDmaMapping m;
        try {
            m = container.mapDma(process, vaddr, size, iova, prot);
        } catch (IommuException e) {
            if (clash == null) {
                throw new AssertionError("after step " + steps + ", " + lastStep + " failed: " + e, e);
            }
            expect(e.errno() == Errno.EEXIST && e.getMessage().equals(String.format("VFIO_IOMMU_MAP_DMA: iova"
                    + " 0x%x+0x%x overlaps the mapping at 0x%x+0x%x", iova, size, clash.iova(), clash.size())),
                    "refused with " + e.errno() + " '" + e.getMessage() + "', expected EEXIST naming " + clash);
            counts[Count.CLASHES.ordinal()]++;
            return;
        }
        expect(clash == null, "succeeded at 0x" + Long.toHexString(m.iova()) + " over " + clash);
        expect(iova == Vfio.ANY_IOVA || m.iova() == iova, "mapped at 0x" + Long.toHexString(m.iova()));
        expect(m.size() == size, "mapped 0x" + Long.toHexString(m.size()) + " bytes");
        expect(overlapping(m.iova(), size) == null, "the driver chose 0x" + Long.toHexString(m.iova())
                + ", inside a live mapping");
        mappings.put(m.iova(), new Mapping(m.iova(), vaddr, size, prot));
        counts[Count.MAPPED.ordinal()]++;
        for (int p = first; p < first + pages; p++) {
            pins[p]++;
        }
        if (backend.bounced(m.iova())) {
            counts[Count.BOUNCED.ordinal()]++;
            bouncedSlots += size / DmaApiModel.SLOT;
        }
    }

    /** The one live mapping {@code [iova, iova+size)} overlaps, the one the container names: the last below. */
    private Mapping overlapping(long iova, long size) {
        Map.Entry<Long, Mapping> below = mappings.lowerEntry(iova + size);
        return below != null && below.getValue().end() > iova ? below.getValue() : null;
    }

    private Mapping pick(DmaApiModel.Choices c) {
        if (mappings.isEmpty()) {
            return null;
        }
        int i = c.pick(mappings.size());
        for (Mapping m : mappings.values()) {
            if (i-- == 0) {
                return m;
            }
        }
        throw new IllegalStateException();
    }

    private void unmap(DmaApiModel.Choices c) {
        Mapping m = pick(c);
        if (m == null) {
            return;
        }
        lastStep = String.format("unmap_dma(0x%x, 0x%x)", m.iova(), m.size());
        if ((m.prot() & IommuProt.WRITE) != 0 && c.pick(2) == 0) {
            // what the device wrote reaches the process at unmap at the latest
            int off = c.pick((int) m.size());
            byte[] data = c.bytes(1 + c.pick((int) m.size() - off));
            device.dmaWrite(m.iova() + off, data);
            System.arraycopy(data, 0, user, (int) (m.vaddr() - base) + off, data.length);
        }
        boolean bounced = backend.bounced(m.iova());
        long unmapped = container.unmapDma(process, m.iova(), m.size());
        expect(unmapped == m.size(), "unmapped 0x" + Long.toHexString(unmapped));
        mappings.remove(m.iova());
        int first = (int) ((m.vaddr() - base) / PAGE);
        for (int p = first; p < first + m.size() / PAGE; p++) {
            pins[p]--;
        }
        if (bounced) {
            bouncedSlots -= m.size() / DmaApiModel.SLOT;
        }
        byte[] seen = process.read(m.vaddr(), (int) m.size());
        compare("the process after unmap", seen, (int) (m.vaddr() - base));
    }

    private void splittingUnmap(DmaApiModel.Choices c) {
        Mapping m = pick(c);
        if (m == null || m.size() < 2 * PAGE) {
            return;
        }
        long at = m.iova() + (1 + c.pick((int) (m.size() / PAGE) - 1)) * (long) PAGE;
        long size = PAGE;
        lastStep = String.format("unmap_dma(0x%x, 0x%x) inside the mapping at 0x%x", at, size, m.iova());
        refused(() -> container.unmapDma(process, at, size), Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA:"
                + " iova 0x%x+0x%x would split the mapping at 0x%x+0x%x; unmap whole mappings", at, size,
                m.iova(), m.size()));
    }

    private void emptyUnmap() {
        long at = 1L << 45;
        lastStep = "unmap_dma of a range nothing is mapped in";
        expect(container.unmapDma(process, at, 16 * PAGE) == 0, "unmapped something");
    }

    private void deviceWrite(DmaApiModel.Choices c) {
        Mapping m = pick(c);
        if (m == null || (m.prot() & IommuProt.WRITE) == 0) {
            return;
        }
        int off = c.pick((int) m.size());
        byte[] data = c.bytes(1 + c.pick(Math.min(8192, (int) m.size() - off)));
        lastStep = String.format("device write of %d bytes at 0x%x, then sync for the CPU", data.length,
                m.iova() + off);
        device.dmaWrite(m.iova() + off, data);
        container.syncForCpu(process, m.iova() + off, data.length);
        System.arraycopy(data, 0, user, (int) (m.vaddr() - base) + off, data.length);
        byte[] seen = process.read(m.vaddr() + off, data.length);
        compare("the process", seen, (int) (m.vaddr() - base) + off);
    }

    private void deviceRead(DmaApiModel.Choices c) {
        Mapping m = pick(c);
        if (m == null || (m.prot() & IommuProt.READ) == 0) {
            return;
        }
        int off = c.pick((int) m.size());
        int length = 1 + c.pick(Math.min(8192, (int) m.size() - off));
        if (c.pick(2) == 0) {
            byte[] data = c.bytes(length);
            process.write(m.vaddr() + off, data);
            System.arraycopy(data, 0, user, (int) (m.vaddr() - base) + off, length);
        }
        lastStep = String.format("sync for the device, then device read of %d bytes at 0x%x", length,
                m.iova() + off);
        container.syncForDevice(process, m.iova() + off, length);
        byte[] seen = device.dmaRead(m.iova() + off, length);
        compare("the device", seen, (int) (m.vaddr() - base) + off);
    }

    private void processWrite(DmaApiModel.Choices c) {
        int page = c.pick(PAGES);
        if (pins[page] != 0) {
            return; // the process writes what it gives the device in deviceRead, with the sync it needs
        }
        byte[] data = c.bytes(1 + c.pick(PAGE));
        long at = base + (long) page * PAGE;
        lastStep = "process write at 0x" + Long.toHexString(at);
        process.write(at, data);
        System.arraycopy(data, 0, user, page * PAGE, data.length);
    }

    private void badMap(DmaApiModel.Choices c) {
        long vaddr = base + (long) c.pick(PAGES) * PAGE;
        switch (c.pick(3)) {
            case 0 -> {
                long size = c.pick(2) == 0 ? 0 : PAGE + 1 + c.pick(PAGE - 1);
                lastStep = "map_dma of size 0x" + Long.toHexString(size);
                refused(() -> container.mapDma(process, vaddr, size, Vfio.ANY_IOVA, IommuProt.READ), Errno.EINVAL,
                        String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x iova ANY size 0x%x: vaddr, iova and size must"
                                + " be multiples of the IOMMU's smallest page 0x1000 and size not 0", vaddr, size));
            }
            case 1 -> {
                long iova = (1L << 40) + 1 + c.pick(PAGE - 1);
                lastStep = "map_dma at an unaligned iova";
                refused(() -> container.mapDma(process, vaddr, PAGE, iova, IommuProt.READ), Errno.EINVAL,
                        String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x iova 0x%x size 0x1000: vaddr, iova and size"
                                + " must be multiples of the IOMMU's smallest page 0x1000 and size not 0", vaddr,
                                iova));
            }
            default -> {
                lastStep = "map_dma with no access";
                refused(() -> container.mapDma(process, vaddr, PAGE, Vfio.ANY_IOVA, 0), Errno.EINVAL,
                        "VFIO_IOMMU_MAP_DMA: flags " + IommuProt.toString(0)
                                + " are invalid: expected READ, WRITE or both");
            }
        }
    }

    private void refused(Runnable call, Errno errno, String message) {
        try {
            call.run();
        } catch (IommuException e) {
            expect(e.errno() == errno && e.getMessage().equals(message), "failed with " + e.errno() + " '"
                    + e.getMessage() + "', expected " + errno + " '" + message + "'");
            counts[Count.REFUSED.ordinal()]++;
            return;
        }
        throw new AssertionError("after step " + steps + ", " + lastStep + " succeeded; expected " + errno);
    }

    /** Unmaps everything, then checks that no page is pinned and no slot used. */
    public void teardown() {
        while (!mappings.isEmpty()) {
            Mapping m = mappings.firstEntry().getValue();
            lastStep = "teardown unmap of 0x" + Long.toHexString(m.iova());
            container.unmapDma(process, m.iova(), m.size());
            mappings.remove(m.iova());
            if (backend.bounced(m.iova())) {
                bouncedSlots -= m.size() / DmaApiModel.SLOT;
            }
            int first = (int) ((m.vaddr() - base) / PAGE);
            for (int p = first; p < first + m.size() / PAGE; p++) {
                pins[p]--;
            }
        }
        check();
        expect(backend.slotsInUse() == 0, "bounce slots left in use: " + backend.slotsInUse());
        byte[] seen = process.read(base, user.length);
        compare("the process at the end", seen, 0);
    }

    private void check() {
        for (int p = 0; p < PAGES; p++) {
            int pinned = process.pinCount(base + (long) p * PAGE);
            if (pinned != pins[p]) {
                throw new AssertionError(String.format("after step %d, %s: page %d (vaddr 0x%x) is pinned %d times,"
                        + " the model has %d", steps, lastStep, p, base + (long) p * PAGE, pinned, pins[p]));
            }
        }
        expect(container.mappings().size() == mappings.size(), "the container lists " + container.mappings().size()
                + " mappings, the model " + mappings.size());
        expect(backend.slotsInUse() == bouncedSlots, "bounce slots in use " + backend.slotsInUse()
                + ", the model has " + bouncedSlots);
    }

    private void compare(String who, byte[] seen, int offset) {
        checkedBytes += seen.length;
        for (int i = 0; i < seen.length; i++) {
            if (seen[i] != user[offset + i]) {
                throw new AssertionError(String.format("after step %d, %s: %s sees 0x%02x at buffer offset 0x%x,"
                        + " the model 0x%02x", steps, lastStep, who, seen[i], offset + i, user[offset + i]));
            }
        }
    }

    private void expect(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError("after step " + steps + ", " + lastStep + ": " + what);
        }
    }

    /**
     * What a run of seeded sequences did, summed over the sequences.
     *
     * @param counts how often each path was taken
     * @param checkedBytes bytes the device and the process read and checked against the model
     */
    public record Totals(Map<Count, Long> counts, long checkedBytes) {
    }

    /**
     * Runs {@code sequences} seeded sequences ({@link Seeded#forEach}: a failure names its seed) and sums them.
     *
     * @param name the test's name, for the seed report
     * @param sequences how many
     * @param sequence one sequence from its random source
     * @return the sums
     */
    public static Totals runSequences(String name, int sequences,
            java.util.function.Function<java.util.Random, VfioModel> sequence) {
        Map<Count, Long> counts = new java.util.EnumMap<>(Count.class);
        long[] checked = new long[1];
        Seeded.forEach(name, sequences, r -> {
            VfioModel model = sequence.apply(r);
            checked[0] += model.checkedBytes();
            for (Count k : Count.values()) {
                counts.merge(k, model.count(k), Long::sum);
            }
        });
        return new Totals(counts, checked[0]);
    }
}
