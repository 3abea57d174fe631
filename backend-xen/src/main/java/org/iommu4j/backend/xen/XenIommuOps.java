package org.iommu4j.backend.xen;

import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.iommu4j.api.BlockingDomain;
import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuCapability;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.IoPageTable;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PhysicalMemory;

/**
 * The guest's IOMMU driver. There is an IOMMU, but Xen owns it, and it stands in front of every PCI device, so
 * this driver manages every PCI device, not only the guest's:
 * <ul>
 * <li>a device assigned to the guest (seized by pciback) gets a group of its own, isolated, whose default
 * domain is the hypervisor's context for the guest: the device reaches exactly the guest's machine frames,
 * wherever they are;</li>
 * <li>any other device gets a group of its own whose default domain is {@code blocked}: Xen gives it no access
 * to this guest's memory, so its every DMA is an IOMMU fault. The backend also refuses to let VFIO bind such a
 * device ({@link XenBackend}).</li>
 * </ul>
 * A VFIO container gets an unmanaged domain whose every mapping is a hypercall Xen validates against the
 * ownership of the machine frame mapped.
 *
 * <p>The first probe of a device (at load, or as it is hot-added) is also pciback's {@code pcistub_probe}: a
 * device on the slot list is seized there, so that it goes straight into the guest's context. A seized device the
 * hypervisor refuses to assign is let go again and stays blocked; the refusal is kept for
 * {@link #takeRefusal} so that a {@code bind} can report it.
 */
final class XenIommuOps implements IommuOps {
    private final KernelServices kernel;
    private final XenHypervisor hypervisor;
    private final XenDomain guest;
    private final PcibackStub stub;
    /** Devices probed since they arrived, whose first probe (pciback's) is done. */
    private final Set<PciAddress> probed = ConcurrentHashMap.newKeySet();
    private final Map<PciAddress, IommuException> refused = new ConcurrentHashMap<>();

    XenIommuOps(KernelServices kernel, XenHypervisor hypervisor, XenDomain guest, PcibackStub stub) {
        this.kernel = kernel;
        this.hypervisor = hypervisor;
        this.guest = guest;
        this.stub = stub;
    }

    /**
     * Every PCI device: the hypervisor's IOMMU translates for all of them; pciback decides which are ours. A device
     * seen for the first time since it arrived is seized if it is on the slot list.
     */
    @Override
    public boolean probeDevice(Device device) {
        PciAddress a = device.pciAddress().orElse(null);
        if (a == null) {
            return false;
        }
        if (probed.add(a) && stub.listed(a)) {
            stub.seize(a);
        }
        if (stub.isSeized(a)) {
            try {
                hypervisor.assignDevice(guest, a);
                refused.remove(a);
            } catch (IommuException e) {
                stub.release(a);
                refused.put(a, e);
                kernel.log().log(LogLevel.WARNING, e.getMessage() + "; pciback lets " + device.name() + " go and it"
                        + " stays blocked");
            }
        }
        if (!isAssigned(device)) {
            kernel.log().log(LogLevel.INFO, "xen: " + device.name() + " is not assigned to " + guest + ": the"
                    + " hypervisor blocks its DMA");
        }
        return true;
    }

    /**
     * The hypervisor's refusal of the last attempt to assign a seized device, which pciback then let go.
     *
     * @param address a device's address
     * @return the refusal, now forgotten, if the last probe of the device had one
     */
    Optional<IommuException> takeRefusal(PciAddress address) {
        return Optional.ofNullable(refused.remove(address));
    }

    /**
     * A device is leaving the bus: when one appears at its address again, its first probe seizes it if listed.
     *
     * @param address the device's address
     */
    void forget(PciAddress address) {
        probed.remove(address);
        refused.remove(address);
    }

    @Override
    public void releaseDevice(Device device) {
        device.pciAddress().filter(a -> hypervisor.assignment(a).filter(d -> d == guest).isPresent())
                .ifPresent(hypervisor::deassignDevice);
    }

    /** @return DMA (the guest's context) for a device assigned to the guest, blocked for any other */
    @Override
    public DomainType defaultDomainType(Device device) {
        return isAssigned(device) ? DomainType.DMA : DomainType.BLOCKED;
    }

    @Override
    public IommuDomain allocateDomain(DomainType type) {
        switch (type) {
            case DMA:
                return new GuestContext();
            case UNMANAGED:
                return new HypercallDomain();
            case BLOCKED:
                return new BlockingDomain(); // what Xen gives a device this guest was not assigned
            default:
                throw new IommuException(Errno.EOPNOTSUPP, "xen: no " + type.sysfsName() + " domains: the hypervisor"
                        + " decides what a device reaches");
        }
    }

    /**
     * Cache coherency, which VFIO requires, only for a device the hypervisor assigned to this guest: any other
     * sits in a blocked context, and VFIO must not take it.
     */
    @Override
    public boolean capable(Device device, IommuCapability capability) {
        // the hypervisor remaps (and so isolates) every guest's interrupts
        return (capability == IommuCapability.CACHE_COHERENCY || capability == IommuCapability.INTR_REMAP)
                && isAssigned(device);
    }

    @Override
    public Optional<String> missingCapabilityReason(Device device, IommuCapability capability) {
        if (capability != IommuCapability.CACHE_COHERENCY || isAssigned(device)) {
            return Optional.empty();
        }
        return Optional.of("xen: " + device.name() + " is not assigned to " + guest + ", so the hypervisor blocks"
                + " its DMA: give it to the guest with xen-pciback.hide=(" + device.name() + "), or write it to"
                + " xen's new_slot and bind it to pciback");
    }

    /**
     * @param device a device
     * @return whether the hypervisor has it assigned to this guest
     */
    boolean isAssigned(Device device) {
        PciAddress a = device.pciAddress().orElse(null);
        return a != null && hypervisor.assignment(a).filter(d -> d == guest).isPresent();
    }

    /** Machine address to the guest's physical address, if the guest owns the frame. */
    private long guestPhys(long mfn, long offset) {
        if (hypervisor.ownerOf(mfn) != guest.domid()) {
            return IommuDomain.FAULT_NOT_MAPPED;
        }
        return (hypervisor.pfnOf(mfn) << PhysicalMemory.PAGE_SHIFT) + offset;
    }

    private void requireAssigned(Device device) {
        if (!isAssigned(device)) {
            throw new IommuException(Errno.EPERM, "xen: " + device.name() + " is not assigned to " + guest);
        }
    }

    /** The hypervisor's context for the guest's devices: every frame the guest owns, nothing else. */
    private final class GuestContext implements IommuDomain {
        @Override
        public DomainType type() {
            return DomainType.DMA;
        }

        @Override
        public void attachDevice(Device device) {
            requireAssigned(device);
        }

        @Override
        public void detachDevice(Device device) {
        }

        @Override
        public void map(long iova, long paddr, long size, int prot) {
            throw new IommuException(Errno.EOPNOTSUPP, "xen: the guest's DMA context maps all of the guest's memory;"
                    + " it takes no mappings");
        }

        @Override
        public long unmap(long iova, long size) {
            return 0;
        }

        @Override
        public long translate(long iova, int access) {
            return guestPhys(iova >>> PhysicalMemory.PAGE_SHIFT, iova & PhysicalMemory.PAGE_OFFSET_MASK);
        }
    }

    /**
     * A VFIO container's domain: iova to machine frame. Every mapping is a hypercall naming machine frames,
     * which the hypervisor validates frame by frame against ownership before anything is mapped.
     */
    final class HypercallDomain implements IommuDomain {
        private final IoPageTable table = new IoPageTable();

        @Override
        public DomainType type() {
            return DomainType.UNMANAGED;
        }

        @Override
        public void attachDevice(Device device) {
            requireAssigned(device);
        }

        @Override
        public void detachDevice(Device device) {
        }

        /**
         * Maps guest physical pages: each is looked up in the guest's p2m, and the machine frame found is what
         * the hypercall names, so the hypervisor checks the frame actually mapped.
         */
        @Override
        public void map(long iova, long paddr, long size, int prot) {
            long pages = size >>> PhysicalMemory.PAGE_SHIFT;
            long firstGfn = paddr >>> PhysicalMemory.PAGE_SHIFT;
            long[] mfns = new long[(int) pages];
            for (int i = 0; i < pages; i++) {
                mfns[i] = guest.mfn(firstGfn + i);
            }
            mapFrames(iova, mfns, prot);
        }

        /**
         * The hypercall as a PV guest makes it: maps {@code [iova, iova+size)} to the machine frames from
         * {@code maddr}.
         *
         * @param iova first bus address, page-aligned
         * @param maddr first machine address, page-aligned
         * @param size bytes, a positive multiple of the page size
         * @param prot {@link org.iommu4j.api.IommuProt} bits
         * @throws IommuException {@link Errno#EPERM} from the hypervisor for a frame the guest does not own,
         *     with nothing mapped; {@link Errno#EEXIST} if an iova is mapped already
         */
        void mapMachine(long iova, long maddr, long size, int prot) {
            long pages = size >>> PhysicalMemory.PAGE_SHIFT;
            long first = maddr >>> PhysicalMemory.PAGE_SHIFT;
            long[] mfns = new long[(int) pages];
            for (int i = 0; i < pages; i++) {
                mfns[i] = first + i;
            }
            mapFrames(iova, mfns, prot);
        }

        /** Validates every frame with the hypervisor first, so that a refusal maps nothing. */
        private synchronized void mapFrames(long iova, long[] mfns, int prot) {
            for (long mfn : mfns) {
                hypervisor.validateMapping(guest, mfn);
            }
            for (int i = 0; i < mfns.length; i++) {
                long at = iova + ((long) i << PhysicalMemory.PAGE_SHIFT);
                try {
                    table.map(at, mfns[i] << PhysicalMemory.PAGE_SHIFT, PhysicalMemory.PAGE_SIZE, prot);
                } catch (IommuException e) {
                    if (i > 0) {
                        table.unmap(iova, (long) i << PhysicalMemory.PAGE_SHIFT);
                    }
                    throw e;
                }
            }
        }

        @Override
        public long unmap(long iova, long size) {
            return table.unmap(iova, size);
        }

        @Override
        public long translate(long iova, int access) {
            long maddr = table.lookup(iova, access);
            return maddr < 0 ? maddr
                    : guestPhys(maddr >>> PhysicalMemory.PAGE_SHIFT, maddr & PhysicalMemory.PAGE_OFFSET_MASK);
        }
    }
}
