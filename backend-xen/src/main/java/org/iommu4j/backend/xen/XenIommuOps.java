package org.iommu4j.backend.xen;

import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.BlockingDomain;
import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuCapability;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.XenHypercalls;

/**
 * The domain's IOMMU driver. Xen owns the IOMMU; this driver asks it. Every PCI device the domain sees gets a
 * group of its own: a device the hypervisor has assigned to this domain gets a DMA domain backed by a
 * hypervisor IOMMU context, which the xen-swiotlb DMA ops fill with the buffers they map and nothing else;
 * VFIO gets an unmanaged domain whose every mapping is a hypercall naming the machine frames behind the
 * guest's pages, which the hypervisor checks against their owner. A device the hypervisor has not assigned
 * to this domain (in Domain-0: one pciback holds for guests) is blocked.
 *
 * <p>In Domain-0 the first probe of a device (at load, or as it is hot-added) is also pciback's
 * {@code pcistub_probe}: a device on the slot list is seized there and made assignable, so it is quarantined
 * straight away. A device the hypervisor will not quarantine (a guest has it) is let go again; the refusal is
 * kept for {@link #takeRefusal} so that a {@code bind} can report it.
 */
final class XenIommuOps implements IommuOps {
    private final KernelServices kernel;
    private final XenHypercalls xen;
    private final PcibackStub stub;
    private final Set<PciAddress> probed = ConcurrentHashMap.newKeySet();
    private final Map<PciAddress, IommuException> refused = new ConcurrentHashMap<>();
    private final Map<Device, HypervisorContext> dmaContexts = new ConcurrentHashMap<>();

    /**
     * @param stub pciback's stub in Domain-0, null in a guest
     */
    XenIommuOps(KernelServices kernel, XenHypercalls xen, PcibackStub stub) {
        this.kernel = kernel;
        this.xen = xen;
        this.stub = stub;
    }

    @Override
    public boolean probeDevice(Device device) {
        PciAddress a = device.pciAddress().orElse(null);
        if (a == null) {
            return false;
        }
        if (stub != null && probed.add(a) && stub.listed(a)) {
            stub.seize(a);
        }
        if (stub != null && stub.isSeized(a)) {
            try {
                xen.setAssignable(device, true);
                refused.remove(a);
            } catch (IommuException e) {
                stub.release(a);
                refused.put(a, e);
                kernel.log().log(LogLevel.WARNING, e.getMessage() + "; pciback lets " + device.name() + " go");
            }
        }
        if (!xen.owns(device)) {
            kernel.log().log(LogLevel.INFO, "xen: " + device.name() + " is not assigned to d" + xen.domainId()
                    + (stub != null && stub.isSeized(a) ? " (pciback holds it for guests)" : "")
                    + ": the hypervisor blocks its DMA");
        }
        return true;
    }

    /**
     * @param address a device's address
     * @return the hypervisor's refusal of the last attempt to make the device assignable, now forgotten
     */
    Optional<IommuException> takeRefusal(PciAddress address) {
        return Optional.ofNullable(refused.remove(address));
    }

    /** A device leaves the bus: when one appears at its address again, its first probe seizes it if listed. */
    void forget(PciAddress address) {
        probed.remove(address);
        refused.remove(address);
    }

    @Override
    public void releaseDevice(Device device) {
        dmaContexts.remove(device);
    }

    /** @return DMA for a device the hypervisor assigned to this domain, blocked for any other */
    @Override
    public DomainType defaultDomainType(Device device) {
        return xen.owns(device) ? DomainType.DMA : DomainType.BLOCKED;
    }

    @Override
    public IommuDomain allocateDomain(DomainType type) {
        switch (type) {
            case DMA:
            case UNMANAGED:
                return new HypervisorContext(type);
            case BLOCKED:
                return new BlockingDomain();
            default:
                throw new IommuException(Errno.EOPNOTSUPP, "xen: no " + type.sysfsName() + " domains: the hypervisor"
                        + " decides what a device reaches");
        }
    }

    /** Cache coherency and interrupt remapping, which VFIO requires, only for a device the hypervisor assigned to this domain. */
    @Override
    public boolean capable(Device device, IommuCapability capability) {
        // the hypervisor remaps (and so isolates) the interrupts of every device it gave this domain
        return (capability == IommuCapability.CACHE_COHERENCY || capability == IommuCapability.INTR_REMAP)
                && xen.owns(device);
    }

    @Override
    public Optional<String> missingCapabilityReason(Device device, IommuCapability capability) {
        if (capability != IommuCapability.CACHE_COHERENCY || xen.owns(device)) {
            return Optional.empty();
        }
        return Optional.of("xen: " + device.name() + " is not assigned to d" + xen.domainId() + ", so the hypervisor"
                + " blocks its DMA" + (stub != null ? ": pciback holds it for guests; unbind it from pciback to have"
                        + " it back in Domain-0" : ""));
    }

    /**
     * @param device a device
     * @return the context of its DMA domain, where its DMA-API mappings go, or null when it is in none
     */
    XenHypercalls.IommuContext dmaContext(Device device) {
        HypervisorContext c = dmaContexts.get(device);
        return c == null ? null : c.context;
    }

    /** An iommu domain backed by a context of the hypervisor's IOMMU. */
    final class HypervisorContext implements IommuDomain {
        private final DomainType type;
        private final XenHypercalls.IommuContext context = xen.createIommuContext();

        HypervisorContext(DomainType type) {
            this.type = type;
        }

        @Override
        public DomainType type() {
            return type;
        }

        @Override
        public void attachDevice(Device device) {
            context.attach(device);
            if (type == DomainType.DMA) {
                dmaContexts.put(device, this);
            }
        }

        @Override
        public void detachDevice(Device device) {
            context.detach(device);
            dmaContexts.remove(device, this);
        }

        /**
         * Maps guest pages: each is looked up in the p2m, and the machine frame found is what the hypercall
         * names, so the hypervisor checks the frame actually mapped. All or nothing. Checked as the core's
         * page tables check a map: page-aligned addresses, a non-zero page-multiple size, no wrap past 2^64,
         * and {@link Errno#EEXIST} for a page already mapped, even to the same frame (the hypervisor would
         * take that as another reference, which only the DMA API's mappings of a shared page want).
         */
        @Override
        public synchronized void map(long iova, long paddr, long size, int prot) {
            if (type == DomainType.DMA) {
                throw new IommuException(Errno.EOPNOTSUPP, "xen: a DMA domain is filled by the DMA API's mappings");
            }
            requireAligned("iova", iova);
            requireAligned("phys", paddr);
            requireSize(size);
            AddressRange.requireNoWrap("iova", iova, size);
            AddressRange.requireNoWrap("phys", paddr, size);
            long pages = size >>> PhysicalMemory.PAGE_SHIFT;
            long bfn = iova >>> PhysicalMemory.PAGE_SHIFT;
            long pfn = paddr >>> PhysicalMemory.PAGE_SHIFT;
            for (long i = 0; i < pages; i++) {
                xen.pfnToMfn(pfn + i);
            }
            for (long i = 0; i < pages; i++) {
                long at = (bfn + i) << PhysicalMemory.PAGE_SHIFT;
                if (context.translate(at, 0) != FAULT_NOT_MAPPED) {
                    throw new IommuException(Errno.EEXIST, String.format("xen: iova 0x%x is already mapped", at));
                }
            }
            for (long i = 0; i < pages; i++) {
                try {
                    context.map(bfn + i, xen.pfnToMfn(pfn + i), 1, prot);
                } catch (IommuException e) {
                    context.unmap(bfn, i);
                    throw e;
                }
            }
        }

        /** Checked as {@link #map} is, except that a zero-length unmap unmaps nothing, as the core's does. */
        @Override
        public synchronized long unmap(long iova, long size) {
            requireAligned("iova", iova);
            if (size == 0) {
                return 0;
            }
            requireSize(size);
            AddressRange.requireNoWrap("iova", iova, size);
            return context.unmap(iova >>> PhysicalMemory.PAGE_SHIFT, size >>> PhysicalMemory.PAGE_SHIFT)
                    << PhysicalMemory.PAGE_SHIFT;
        }

        /** The hypervisor's translation, back to this domain's pseudo-physical address through the m2p. */
        @Override
        public long translate(long iova, int access) {
            long maddr = context.translate(iova, access);
            if (maddr < 0) {
                return maddr;
            }
            long pfn = xen.mfnToPfn(maddr >>> PhysicalMemory.PAGE_SHIFT);
            return pfn < 0 ? FAULT_NOT_MAPPED : (pfn << PhysicalMemory.PAGE_SHIFT)
                    | (maddr & PhysicalMemory.PAGE_OFFSET_MASK);
        }

        @Override
        public void free() {
            context.destroy();
        }
    }

    private static void requireAligned(String what, long address) {
        if (!AddressRange.isAligned(address, PhysicalMemory.PAGE_SIZE)) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "xen: %s 0x%x is not page-aligned: expected a multiple of 0x%x",
                    what, address, PhysicalMemory.PAGE_SIZE));
        }
    }

    private static void requireSize(long size) {
        if (size == 0 || !AddressRange.isAligned(size, PhysicalMemory.PAGE_SIZE)) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "xen: size 0x%x is invalid: expected a non-zero multiple of 0x%x", size, PhysicalMemory.PAGE_SIZE));
        }
    }
}
