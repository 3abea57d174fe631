package org.iommu4j.backend.xen;

import java.util.HashMap;
import java.util.Map;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PhysicalMemory;

/**
 * A Xen domain: its id, its pseudo-physical pages and the p2m table that places each on a machine frame.
 * The guest that iommu4j's host runs as keeps its bytes in the host's physical memory (indexed by pfn);
 * any other domain keeps them in a small store of its own, so that a test can look at them.
 */
public final class XenDomain {
    private final int domid;
    private final String name;
    private final long[] p2m;
    private final PhysicalMemory memory;
    private final Map<Long, byte[]> frames;

    XenDomain(int domid, String name, long[] p2m, PhysicalMemory memory) {
        this.domid = domid;
        this.name = name;
        this.p2m = p2m;
        this.memory = memory;
        this.frames = memory == null ? new HashMap<>() : null;
    }

    /** @return the domain id; dom0 is 0 */
    public int domid() {
        return domid;
    }

    /** @return the domain's name */
    public String name() {
        return name;
    }

    /** @return how many pseudo-physical pages it has */
    public long pages() {
        return p2m.length;
    }

    /**
     * @param pfn a pseudo-physical frame number
     * @return the machine frame behind it
     * @throws IommuException {@link Errno#EPERM} for a frame the domain does not have
     */
    public long mfn(long pfn) {
        if (pfn < 0 || pfn >= p2m.length) {
            throw new IommuException(Errno.EPERM, String.format("xen: domain %d has no pfn 0x%x (it has 0x%x pages)",
                    domid, pfn, p2m.length));
        }
        return p2m[(int) pfn];
    }

    void setMfn(long pfn, long mfn) {
        p2m[(int) pfn] = mfn;
    }

    /**
     * @param firstPfn first page
     * @param count pages
     * @return whether the pages sit on consecutive machine frames
     */
    public boolean machineContiguous(long firstPfn, long count) {
        for (long i = 1; i < count; i++) {
            if (mfn(firstPfn + i) != mfn(firstPfn + i - 1) + 1) {
                return false;
            }
        }
        return true;
    }

    /** @return whether this domain's bytes live in the host's physical memory */
    boolean isHostGuest() {
        return memory != null;
    }

    synchronized void read(long pfn, int offset, byte[] dst, int dstOffset, int length) {
        if (memory != null) {
            memory.read((pfn << PhysicalMemory.PAGE_SHIFT) + offset, dst, dstOffset, length);
            return;
        }
        byte[] frame = frames.get(pfn);
        if (frame == null) {
            java.util.Arrays.fill(dst, dstOffset, dstOffset + length, (byte) 0);
        } else {
            System.arraycopy(frame, offset, dst, dstOffset, length);
        }
    }

    synchronized void write(long pfn, int offset, byte[] src, int srcOffset, int length) {
        if (memory != null) {
            memory.write((pfn << PhysicalMemory.PAGE_SHIFT) + offset, src, srcOffset, length);
            return;
        }
        System.arraycopy(src, srcOffset, frames.computeIfAbsent(pfn, k -> new byte[PhysicalMemory.PAGE_SIZE]), offset,
                length);
    }

    @Override
    public String toString() {
        return "domain " + domid + " (" + name + ")";
    }
}
