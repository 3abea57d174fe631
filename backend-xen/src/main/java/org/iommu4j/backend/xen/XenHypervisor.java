package org.iommu4j.backend.xen;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PhysicalMemory;

/**
 * A model of the Xen hypervisor as far as DMA is concerned: machine memory and who owns each frame (with the
 * machine-to-physical table, m2p), domains and their p2m tables, which domain each PCI device is assigned to,
 * and the hypercalls a guest makes for DMA: exchanging frames for a machine-contiguous run
 * ({@code XENMEM_exchange}, behind {@code xen_create_contiguous_region}) and validating IOMMU mappings
 * against frame ownership. Xen, not the guest, owns the IOMMU.
 *
 * <p>Ownership changes take this object's lock; the DMA path reads the tables without one.
 */
public final class XenHypervisor {
    /** Owner of a frame nobody has. */
    public static final int DOMID_INVALID = -1;

    private final long machineFrames;
    private final int[] owner;
    private final long[] m2p;
    private final List<XenDomain> domains = new ArrayList<>();
    private final Map<PciAddress, XenDomain> assignments = new HashMap<>();
    private long exchangeCursor;

    /**
     * @param machineFrames machine memory in 4 KiB frames, at most 2^28 (1 TiB)
     */
    public XenHypervisor(long machineFrames) {
        if (machineFrames < 1 || machineFrames > (1L << 28)) {
            throw new IllegalArgumentException("machine memory of " + machineFrames + " frames is invalid: expected 1"
                    + " to 2^28");
        }
        this.machineFrames = machineFrames;
        this.owner = new int[(int) machineFrames];
        this.m2p = new long[(int) machineFrames];
        java.util.Arrays.fill(owner, DOMID_INVALID);
    }

    /** @return machine memory in frames */
    public long machineFrames() {
        return machineFrames;
    }

    /** @return frames no domain owns */
    public synchronized long freeFrames() {
        long n = 0;
        for (int o : owner) {
            if (o == DOMID_INVALID) {
                n++;
            }
        }
        return n;
    }

    /** @return the domains, by id */
    public synchronized List<XenDomain> domains() {
        return List.copyOf(domains);
    }

    /**
     * Creates a domain whose memory the hypervisor keeps (dom0, another guest) and populates its p2m.
     *
     * @param name the domain's name
     * @param pages pseudo-physical pages
     * @param layout where its pages go
     * @return the domain, with the next free id
     * @throws IommuException {@link Errno#ENOMEM} when machine memory runs short
     */
    public synchronized XenDomain createDomain(String name, long pages, P2mLayout layout) {
        return populate(name, pages, layout, null);
    }

    /**
     * Creates the domain iommu4j's host runs as: its pseudo-physical memory is the host's physical memory.
     *
     * @param name the domain's name
     * @param memory the host's physical memory
     * @param layout where its pages go
     * @return the domain
     */
    public synchronized XenDomain createGuest(String name, PhysicalMemory memory, P2mLayout layout) {
        return populate(name, memory.size() >>> PhysicalMemory.PAGE_SHIFT, layout, memory);
    }

    private XenDomain populate(String name, long pages, P2mLayout layout, PhysicalMemory memory) {
        long[] free = freeList();
        if (pages > free.length || pages > Integer.MAX_VALUE) {
            throw new IommuException(Errno.ENOMEM, String.format("xen: cannot populate %s with %d pages: %d machine"
                    + " frames are free", name, pages, free.length));
        }
        long[] p2m = layout.place(free, (int) pages);
        for (long mfn : p2m) {
            if (mfn < 0 || mfn >= machineFrames || owner[(int) mfn] != DOMID_INVALID) {
                throw new IommuException(Errno.EINVAL, String.format("xen: p2m for %s uses mfn 0x%x, which is not a"
                        + " free machine frame", name, mfn));
            }
        }
        XenDomain d = new XenDomain(domains.size(), name, p2m, memory);
        for (int pfn = 0; pfn < p2m.length; pfn++) {
            owner[(int) p2m[pfn]] = d.domid();
            m2p[(int) p2m[pfn]] = pfn;
        }
        domains.add(d);
        return d;
    }

    private long[] freeList() {
        long[] free = new long[(int) machineFrames];
        int n = 0;
        for (int mfn = 0; mfn < owner.length; mfn++) {
            if (owner[mfn] == DOMID_INVALID) {
                free[n++] = mfn;
            }
        }
        return java.util.Arrays.copyOf(free, n);
    }

    /**
     * @param mfn a machine frame
     * @return the id of the domain that owns it, or {@link #DOMID_INVALID}
     */
    public int ownerOf(long mfn) {
        return mfn < 0 || mfn >= machineFrames ? DOMID_INVALID : owner[(int) mfn];
    }

    /**
     * The m2p table.
     *
     * @param mfn a machine frame some domain owns
     * @return its pfn in that domain
     */
    public long pfnOf(long mfn) {
        return m2p[(int) mfn];
    }

    /**
     * {@code XENMEM_exchange} as {@code xen_create_contiguous_region} uses it: gives the domain 2^order
     * machine-contiguous frames, aligned to their size and below {@code 2^addressBits}, for the pages from
     * {@code firstPfn}, and takes the old frames back. The pages keep their contents.
     *
     * @param domain the domain
     * @param firstPfn first page, aligned to 2^order
     * @param order log2 of the page count
     * @param addressBits the run must lie below 2^addressBits bytes
     * @return the first machine frame of the run
     * @throws IommuException {@link Errno#ENOMEM} when no such run is free
     */
    public synchronized long exchangeContiguous(XenDomain domain, long firstPfn, int order, int addressBits) {
        long count = 1L << order;
        domain.mfn(firstPfn + count - 1);
        long limit = Math.min(machineFrames, addressBits >= 64 ? machineFrames : (1L << addressBits) >>> 12);
        long from = exchangeCursor + count <= limit ? exchangeCursor / count * count : 0;
        for (long tried = 0, start = from; tried < limit; tried += count, start += count) {
            if (start + count > limit) {
                start = 0;
            }
            boolean usable = true;
            for (long m = start; m < start + count && usable; m++) {
                int o = owner[(int) m];
                usable = o == DOMID_INVALID || o == domain.domid() && m2p[(int) m] >= firstPfn
                        && m2p[(int) m] < firstPfn + count;
            }
            if (usable) {
                // contents are kept by pfn, so they survive the exchange as the guest's copy would
                for (long i = 0; i < count; i++) {
                    owner[(int) domain.mfn(firstPfn + i)] = DOMID_INVALID;
                }
                for (long i = 0; i < count; i++) {
                    long mfn = start + i;
                    owner[(int) mfn] = domain.domid();
                    m2p[(int) mfn] = firstPfn + i;
                    domain.setMfn(firstPfn + i, mfn);
                }
                exchangeCursor = start + count;
                return start;
            }
        }
        throw new IommuException(Errno.ENOMEM, String.format("xen: XENMEM_exchange for domain %d: no %d"
                + " machine-contiguous free frames below 2^%d", domain.domid(), count, addressBits));
    }

    /**
     * Assigns a PCI device to a domain (what the toolstack does with a device pciback holds).
     *
     * @param domain the domain
     * @param device the device's address
     * @throws IommuException {@link Errno#EBUSY} if another domain has it
     */
    public synchronized void assignDevice(XenDomain domain, PciAddress device) {
        XenDomain current = assignments.get(device);
        if (current != null && current != domain) {
            throw new IommuException(Errno.EBUSY, "xen: " + device + " is assigned to " + current);
        }
        assignments.put(device, domain);
    }

    /**
     * @param device a device's address; nothing happens if it is not assigned
     */
    public synchronized void deassignDevice(PciAddress device) {
        assignments.remove(device);
    }

    /**
     * @param device a device's address
     * @return the domain it is assigned to
     */
    public synchronized Optional<XenDomain> assignment(PciAddress device) {
        return Optional.ofNullable(assignments.get(device));
    }

    /**
     * The check behind every IOMMU mapping a domain asks for: the machine frame it names must be one the domain
     * owns. It is the frame that is checked, not the domain's p2m: a guest's p2m is the guest's own word (a PV
     * guest keeps it in its own memory), so a frame reached through it is checked like any other.
     *
     * @param domain the asking domain
     * @param mfn the machine frame it wants mapped
     * @return the machine frame to map
     * @throws IommuException {@link Errno#EPERM} for a frame the domain does not own
     */
    public long validateMapping(XenDomain domain, long mfn) {
        if (mfn < 0 || mfn >= machineFrames) {
            throw new IommuException(Errno.EPERM, String.format("xen: domain %d may not map mfn 0x%x: there is no"
                    + " such machine frame (machine memory has 0x%x)", domain.domid(), mfn, machineFrames));
        }
        int o = ownerOf(mfn);
        if (o != domain.domid()) {
            throw new IommuException(Errno.EPERM, String.format("xen: domain %d may not map mfn 0x%x: %s",
                    domain.domid(), mfn, o == DOMID_INVALID ? "no domain owns it" : "it belongs to domain " + o));
        }
        return mfn;
    }

    /**
     * Reads machine memory, whichever domain's it is (for tests and diagnostics, as a debugger would).
     *
     * @param maddr machine address
     * @param length bytes, within one frame
     * @return the bytes; zeros for a frame no domain owns
     */
    public byte[] readMachine(long maddr, int length) {
        byte[] out = new byte[length];
        long mfn = maddr >>> PhysicalMemory.PAGE_SHIFT;
        int o = ownerOf(mfn);
        if (o != DOMID_INVALID) {
            domains().get(o).read(pfnOf(mfn), (int) (maddr & PhysicalMemory.PAGE_OFFSET_MASK), out, 0, length);
        }
        return out;
    }

    /**
     * Writes machine memory of whichever domain owns it (to set up a test).
     *
     * @param maddr machine address
     * @param data bytes, within one frame
     */
    public void writeMachine(long maddr, byte[] data) {
        long mfn = maddr >>> PhysicalMemory.PAGE_SHIFT;
        int o = ownerOf(mfn);
        if (o == DOMID_INVALID) {
            throw new IommuException(Errno.EFAULT, String.format("xen: mfn 0x%x belongs to no domain", mfn));
        }
        domains().get(o).write(pfnOf(mfn), (int) (maddr & PhysicalMemory.PAGE_OFFSET_MASK), data, 0, data.length);
    }
}
