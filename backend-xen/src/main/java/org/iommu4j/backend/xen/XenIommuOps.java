package org.iommu4j.backend.xen;

import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.IoPageTable;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciSlotList;
import org.iommu4j.api.PhysicalMemory;

/**
 * The guest's IOMMU driver. There is an IOMMU, but Xen owns it: a device assigned to the guest (on pciback's
 * slot list) gets a group of its own, isolated, whose default domain is the hypervisor's context for the
 * guest — the device reaches exactly the guest's machine frames, wherever they are. A VFIO container gets
 * an unmanaged domain whose every mapping is a hypercall Xen validates against frame ownership.
 */
final class XenIommuOps implements IommuOps {
    private final XenHypervisor hypervisor;
    private final XenDomain guest;
    private final PciSlotList slots;

    XenIommuOps(XenHypervisor hypervisor, XenDomain guest, PciSlotList slots) {
        this.hypervisor = hypervisor;
        this.guest = guest;
        this.slots = slots;
    }

    @Override
    public boolean probeDevice(Device device) {
        if (!slots.covers(device)) {
            return false;
        }
        hypervisor.assignDevice(guest, device.pciAddress().orElseThrow());
        return true;
    }

    @Override
    public void releaseDevice(Device device) {
        device.pciAddress().ifPresent(hypervisor::deassignDevice);
    }

    @Override
    public IommuDomain allocateDomain(DomainType type) {
        switch (type) {
            case DMA:
                return new GuestContext();
            case UNMANAGED:
                return new HypercallDomain();
            default:
                throw new IommuException(Errno.EOPNOTSUPP, "xen: no " + type.sysfsName() + " domains: the hypervisor"
                        + " decides what a device reaches");
        }
    }

    /** Machine address to the guest's physical address, if the guest owns the frame. */
    private long guestPhys(long mfn, long offset) {
        if (hypervisor.ownerOf(mfn) != guest.domid()) {
            return IommuDomain.FAULT_NOT_MAPPED;
        }
        return (hypervisor.pfnOf(mfn) << PhysicalMemory.PAGE_SHIFT) + offset;
    }

    private void requireAssigned(Device device) {
        PciAddress a = device.pciAddress().orElse(null);
        if (a == null || hypervisor.assignment(a).filter(d -> d == guest).isEmpty()) {
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

    /** A VFIO container's domain: iova to machine frame, each mapping validated by the hypervisor. */
    private final class HypercallDomain implements IommuDomain {
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

        /** Validates every page with the hypervisor first, so that a refusal maps nothing. */
        @Override
        public synchronized void map(long iova, long paddr, long size, int prot) {
            long pages = size >>> PhysicalMemory.PAGE_SHIFT;
            long firstGfn = paddr >>> PhysicalMemory.PAGE_SHIFT;
            for (long i = 0; i < pages; i++) {
                hypervisor.validateMapping(guest, firstGfn + i);
            }
            for (long i = 0; i < pages; i++) {
                long at = iova + (i << PhysicalMemory.PAGE_SHIFT);
                try {
                    table.map(at, guest.mfn(firstGfn + i) << PhysicalMemory.PAGE_SHIFT, PhysicalMemory.PAGE_SIZE,
                            prot);
                } catch (IommuException e) {
                    if (i > 0) {
                        table.unmap(iova, i << PhysicalMemory.PAGE_SHIFT);
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
