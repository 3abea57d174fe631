package org.iommu4j.xen;

import java.util.BitSet;
import java.util.Objects;
import org.iommu4j.api.Device;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.XenHypercalls;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.HypervisorDomain;
import org.iommu4j.kernel.bus.DmaPort;
import org.iommu4j.kernel.mem.HostMemory;

/**
 * A Xen domain: its id and name, its p2m (which machine frame backs each of its pseudo-physical pages), and
 * the {@link Host} its kernel runs as, whose physical memory is this domain's pseudo-physical memory. The
 * p2m is kept per 2 MiB extent (the machine extent and the page order inside it, from the layout) plus a
 * sparse table of the pages {@code XENMEM_exchange} moved, so a 64 GiB domain's p2m is 256 KiB.
 */
public final class XenDomain implements HypervisorDomain {
    private static final int EXTENT_SHIFT = SparseFrameTable.LEAF_SHIFT;
    private static final int EXTENT = 1 << EXTENT_SHIFT;

    private final int domid;
    private final String name;
    private final long pages;
    private final MachineFrames machine;
    private final XenIommu iommu;
    private final long[] extentMfn;
    private final int[] perm;
    private final int[] inverse;
    private final SparseFrameTable moved;
    private final PseudoPhysicalMemory memory;
    private final Hypercalls hypercalls = new Hypercalls();
    private final DmaPort port;
    private Host host;

    XenDomain(int domid, String name, long pages, long[] extentMfn, P2mLayout layout, MachineFrames machine,
            XenIommu iommu) {
        this.domid = domid;
        this.name = name;
        this.pages = pages;
        this.machine = machine;
        this.iommu = iommu;
        this.extentMfn = extentMfn;
        this.perm = layout.pagePermutation();
        this.inverse = new int[EXTENT];
        for (int i = 0; i < EXTENT; i++) {
            inverse[perm[i]] = i;
        }
        this.moved = new SparseFrameTable(pages);
        this.memory = new PseudoPhysicalMemory(extentMfn.length);
        this.port = iommu.portFor(this);
    }

    /** @return the first machine frame of each of the domain's extents, as populated */
    long[] extents() {
        return extentMfn;
    }

    void boot(Host host) {
        this.host = host;
    }

    /** @return the domain id; Domain-0 is 0 */
    public int domid() {
        return domid;
    }

    /** @return the domain's name */
    public String name() {
        return name;
    }

    /** @return how many pseudo-physical pages it has */
    public long pages() {
        return pages;
    }

    /** @return the kernel the domain runs */
    public Host host() {
        return host;
    }

    /**
     * The p2m.
     *
     * @param pfn a pseudo-physical frame number
     * @return the machine frame behind it
     * @throws IommuException {@link Errno#EINVAL} for a frame the domain does not have
     */
    public long mfn(long pfn) {
        if (pfn < 0 || pfn >= pages) {
            throw new IommuException(Errno.EINVAL, String.format("xen: d%d has no pfn 0x%x (it has 0x%x pages)",
                    domid, pfn, pages));
        }
        long m = moved.get(pfn);
        return m != 0 ? m - 1 : extentMfn[(int) (pfn >>> EXTENT_SHIFT)] + perm[(int) (pfn & (EXTENT - 1))];
    }

    /** The pfn of page {@code offset} of a machine extent that backs this domain's extent {@code pfnExtent}. */
    long pfnInExtent(int pfnExtent, int offset) {
        return ((long) pfnExtent << EXTENT_SHIFT) + inverse[offset];
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

    /** {@code XENMEM_exchange}, done by the platform for this domain. */
    long exchange(long firstPfn, int order, int addressBits) {
        if (order < 0 || order > EXTENT_SHIFT || (firstPfn & ((1L << order) - 1)) != 0 || firstPfn < 0
                || firstPfn + (1L << order) > pages || addressBits < 13) {
            throw new IommuException(Errno.EINVAL, String.format("xen: XENMEM_exchange for d%d of 2^%d pages at"
                    + " pfn 0x%x below 2^%d is invalid: the pages must be the domain's, aligned to their count, order"
                    + " 0 to 9", domid, order, firstPfn, addressBits));
        }
        synchronized (machine) {
            long limit = addressBits >= 64 ? Long.MAX_VALUE : (1L << addressBits) >>> PhysicalMemory.PAGE_SHIFT;
            long run = machine.findRun(order, limit);
            if (run < 0) {
                throw new IommuException(Errno.ENOMEM, String.format("xen: XENMEM_exchange for d%d: no %d"
                        + " machine-contiguous free frames below 2^%d (the domains took that memory: build the"
                        + " platform with more machineMemory, so that the hypervisor keeps memory below 4 GiB"
                        + " free)", domid, 1L << order, addressBits));
            }
            for (long i = 0; i < 1L << order; i++) {
                machine.release(mfn(firstPfn + i));
            }
            for (long i = 0; i < 1L << order; i++) {
                machine.claim(run + i, domid, firstPfn + i);
                moved.set(firstPfn + i, run + i + 1);
            }
            return run;
        }
    }

    /** @return bytes of bookkeeping this domain's p2m keeps */
    long bytes() {
        return 8L * extentMfn.length + 8L * EXTENT + moved.bytes() + memory.touched.size() / 8;
    }

    @Override
    public HostMemory memory() {
        return memory;
    }

    @Override
    public DmaPort dmaPort() {
        return port;
    }

    @Override
    public XenHypercalls hypercalls() {
        return hypercalls;
    }

    @Override
    public String toString() {
        return "d" + domid + " (" + name + ")";
    }

    /** The hypercalls this domain's kernel makes. */
    private final class Hypercalls implements XenHypercalls {
        @Override
        public int domainId() {
            return domid;
        }

        @Override
        public long pfnToMfn(long pfn) {
            return mfn(pfn);
        }

        @Override
        public long mfnToPfn(long mfn) {
            return machine.pfnOf(mfn, domid);
        }

        @Override
        public long exchange(long firstPfn, int order, int addressBits) {
            return XenDomain.this.exchange(firstPfn, order, addressBits);
        }

        @Override
        public IommuContext createIommuContext() {
            return iommu.createContext(XenDomain.this);
        }

        @Override
        public void setAssignable(Device device, boolean assignable) {
            iommu.setAssignable(XenDomain.this, device, assignable);
        }

        @Override
        public boolean owns(Device device) {
            return iommu.ownerOf(device.name()) == domid;
        }

        @Override
        public String toString() {
            return "hypercalls of " + XenDomain.this;
        }
    }

    /**
     * The domain's pseudo-physical memory: every access is split where the p2m leaves machine contiguity and
     * goes to machine memory. Allocation-free.
     */
    private final class PseudoPhysicalMemory implements HostMemory {
        /** Extents written, sized once so that the lock-free reads never see it grow. */
        private final BitSet touched;

        PseudoPhysicalMemory(int extents) {
            this.touched = new BitSet(extents);
        }

        @Override
        public long size() {
            return pages << PhysicalMemory.PAGE_SHIFT;
        }

        @Override
        public long residentBytes() {
            synchronized (touched) {
                return (long) touched.cardinality() << (EXTENT_SHIFT + PhysicalMemory.PAGE_SHIFT);
            }
        }

        private void touch(long phys, long length) {
            if (length == 0) {
                return;
            }
            int first = (int) (phys >>> (EXTENT_SHIFT + PhysicalMemory.PAGE_SHIFT));
            int last = (int) ((phys + length - 1) >>> (EXTENT_SHIFT + PhysicalMemory.PAGE_SHIFT));
            if (!touched.get(first) || !touched.get(last)) {
                synchronized (touched) {
                    touched.set(first, last + 1);
                }
            }
        }

        /** Machine address of a pseudo-physical one. */
        private long machine(long phys) {
            return (mfn(phys >>> PhysicalMemory.PAGE_SHIFT) << PhysicalMemory.PAGE_SHIFT)
                    | (phys & PhysicalMemory.PAGE_OFFSET_MASK);
        }

        /** Bytes from {@code phys}, at most {@code max}, that are machine-contiguous. */
        private int run(long phys, long max) {
            long n = Math.min(max, PhysicalMemory.PAGE_SIZE - (phys & PhysicalMemory.PAGE_OFFSET_MASK));
            long m = mfn(phys >>> PhysicalMemory.PAGE_SHIFT);
            while (n < max && mfn((phys + n) >>> PhysicalMemory.PAGE_SHIFT) == ++m) {
                n = Math.min(max, n + PhysicalMemory.PAGE_SIZE);
            }
            return (int) n;
        }

        private void checkRange(long phys, long length) {
            if (phys < 0 || length < 0 || phys + length > size() || phys + length < phys) {
                throw new IommuException(Errno.EFAULT, String.format(
                        "physical range 0x%x+0x%x is outside memory of 0x%x bytes", phys, length, size()));
            }
        }

        @Override
        public void read(long phys, byte[] dst, int offset, int length) {
            Objects.checkFromIndexSize(offset, length, dst.length);
            checkRange(phys, length);
            if (length <= PhysicalMemory.PAGE_SIZE - (phys & PhysicalMemory.PAGE_OFFSET_MASK)) {
                machine.memory().read(machine(phys), dst, offset, length);
                return;
            }
            while (length > 0) {
                int n = run(phys, length);
                machine.memory().read(machine(phys), dst, offset, n);
                phys += n;
                offset += n;
                length -= n;
            }
        }

        @Override
        public void write(long phys, byte[] src, int offset, int length) {
            Objects.checkFromIndexSize(offset, length, src.length);
            checkRange(phys, length);
            touch(phys, length);
            if (length <= PhysicalMemory.PAGE_SIZE - (phys & PhysicalMemory.PAGE_OFFSET_MASK)) {
                // within one page: one p2m lookup
                machine.memory().write(machine(phys), src, offset, length);
                return;
            }
            while (length > 0) {
                int n = run(phys, length);
                machine.memory().write(machine(phys), src, offset, n);
                phys += n;
                offset += n;
                length -= n;
            }
        }

        @Override
        public void fill(long phys, long length, byte value) {
            checkRange(phys, length);
            if (value != 0) {
                touch(phys, length);
            }
            while (length > 0) {
                int n = run(phys, length);
                machine.memory().fill(machine(phys), n, value);
                phys += n;
                length -= n;
            }
        }

        /** Copies in pieces machine-contiguous on both sides, backwards when the destination overlaps above. */
        @Override
        public void copy(long srcPhys, long dstPhys, long length) {
            checkRange(srcPhys, length);
            checkRange(dstPhys, length);
            if (length == 0 || srcPhys == dstPhys) {
                return;
            }
            touch(dstPhys, length);
            if (dstPhys > srcPhys && dstPhys < srcPhys + length) {
                for (long end = length; end > 0; ) {
                    long s = srcPhys + end;
                    long d = dstPhys + end;
                    long n = Math.min(end, Math.min(((s - 1) & PhysicalMemory.PAGE_OFFSET_MASK) + 1,
                            ((d - 1) & PhysicalMemory.PAGE_OFFSET_MASK) + 1));
                    machine.memory().copy(machine(s - n), machine(d - n), n);
                    end -= n;
                }
                return;
            }
            for (long done = 0; done < length; ) {
                long s = srcPhys + done;
                long d = dstPhys + done;
                int n = Math.min(run(s, length - done), run(d, length - done));
                machine.memory().copy(machine(s), machine(d), n);
                done += n;
            }
        }
    }
}
