package org.iommu4j.kernel.testing;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;
import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.IoPageTable;
import org.iommu4j.api.PhysicalMemory;

/**
 * A test-only translating IOMMU: one page table per domain (iova page to physical page and prot), 4 KiB
 * pages, every device of the chosen buses in a group of its own. It is what the kernel's tests use to prove
 * that DMA goes through a domain; it is not shipped.
 */
public final class PageTableIommu implements IommuOps {
    private final Predicate<Device> manages;
    private final List<PageTableDomain> domains = new ArrayList<>();
    private final java.util.Map<String, org.iommu4j.api.IommuGroup> slotGroups = new java.util.HashMap<>();
    private boolean groupBySlot;
    private boolean passThrough;
    private boolean interruptRemapping = true;
    private boolean deferredFlush;
    private boolean pciGrouping;
    private long pageSizes = org.iommu4j.api.PhysicalMemory.PAGE_SIZE;
    private volatile RuntimeException translateThrows;
    private volatile RuntimeException mapThrows;
    private long apertureStart;
    private long apertureEnd = -1L;

    /** Manages every device it is asked about. */
    public PageTableIommu() {
        this(d -> true);
    }

    /** @param manages which devices to manage */
    public PageTableIommu(Predicate<Device> manages) {
        this.manages = manages;
    }

    /**
     * Puts every function of a PCI slot in one group, as an IOMMU that cannot tell them apart would.
     *
     * @return this
     */
    public PageTableIommu groupingFunctionsOfASlot() {
        groupBySlot = true;
        return this;
    }

    /**
     * Starts groups in an identity (pass-through) default domain, as {@code iommu.passthrough=1} does.
     *
     * @return this
     */
    public PageTableIommu passThrough() {
        passThrough = true;
        return this;
    }

    /**
     * Reports no interrupt remapping, as an IOMMU without an IR unit (or with it off) would.
     *
     * @return this
     */
    public PageTableIommu withoutInterruptRemapping() {
        interruptRemapping = false;
        return this;
    }

    /**
     * Reports {@link org.iommu4j.api.IommuCapability#DEFERRED_FLUSH}, so that DMA domains are lazy (DMA-FQ).
     *
     * @return this
     */
    public PageTableIommu deferredFlush() {
        deferredFlush = true;
        return this;
    }

    /**
     * Groups PCI devices with the core's {@code pci_device_group}.
     *
     * @return this
     */
    public PageTableIommu pciGrouping() {
        pciGrouping = true;
        return this;
    }

    /**
     * @param bitmap the page sizes to advertise and map with
     * @return this
     */
    public PageTableIommu pageSizes(long bitmap) {
        pageSizes = bitmap;
        return this;
    }

    /**
     * @param start the first IOVA domains translate
     * @param end the last, inclusive
     * @return this
     */
    public PageTableIommu aperture(long start, long end) {
        apertureStart = start;
        apertureEnd = end;
        return this;
    }

    /** @param e what every domain's mapPages throws from now on, or null */
    public void throwFromMap(RuntimeException e) {
        mapThrows = e;
    }

    /** @param e what every domain's translate throws from now on, or null */
    public void throwFromTranslate(RuntimeException e) {
        translateThrows = e;
    }

    @Override
    public long pageSizeBitmap() {
        return pageSizes;
    }

    @Override
    public boolean capable(Device device, org.iommu4j.api.IommuCapability capability) {
        return capability == org.iommu4j.api.IommuCapability.CACHE_COHERENCY
                || capability == org.iommu4j.api.IommuCapability.INTR_REMAP && interruptRemapping
                || deferredFlush && capability == org.iommu4j.api.IommuCapability.DEFERRED_FLUSH;
    }

    @Override
    public DomainType defaultDomainType(Device device) {
        return passThrough ? DomainType.IDENTITY : DomainType.DMA;
    }

    @Override
    public boolean probeDevice(Device device) {
        return manages.test(device);
    }

    @Override
    public synchronized org.iommu4j.api.IommuGroup deviceGroup(Device device, org.iommu4j.api.IommuCore groups) {
        if (pciGrouping) {
            return groups.pciDeviceGroup(device);
        }
        if (!groupBySlot) {
            return groups.allocateGroup(null, true);
        }
        String slot = device.name().substring(0, device.name().lastIndexOf('.'));
        org.iommu4j.api.IommuGroup g = slotGroups.get(slot);
        if (g == null || g.devices().isEmpty()) {
            g = groups.allocateGroup(null, true);
            slotGroups.put(slot, g);
        }
        return g;
    }

    @Override
    public synchronized IommuDomain allocateDomain(DomainType type) {
        if (!type.isPaging() && type != DomainType.BLOCKED) {
            throw new IommuException(Errno.EOPNOTSUPP, "PageTableIommu has no " + type + " domains");
        }
        PageTableDomain d = new PageTableDomain(type, this);
        domains.add(d);
        return d;
    }

    /** @return every domain allocated so far */
    public synchronized List<PageTableDomain> domains() {
        return List.copyOf(domains);
    }

    /** A page-table domain. */
    public static final class PageTableDomain implements IommuDomain {
        private final DomainType type;
        private final PageTableIommu owner;
        private final IoPageTable table = new IoPageTable();
        private final java.util.concurrent.atomic.AtomicInteger flushes =
                new java.util.concurrent.atomic.AtomicInteger();
        private final Set<Device> attached = ConcurrentHashMap.newKeySet();
        private volatile boolean freed;

        PageTableDomain(DomainType type, PageTableIommu owner) {
            this.type = type;
            this.owner = owner;
        }

        @Override
        public void mapPages(long iova, long paddr, long pageSize, long count, int prot) {
            RuntimeException e = owner.mapThrows;
            if (e != null) {
                throw e;
            }
            if ((pageSize & IoPageTable.SUPPORTED_PAGE_SIZES) == 0 && pageSize > PhysicalMemory.PAGE_SIZE) {
                // a size the radix table has no leaf for (64 KiB): kept as 4 KiB leaves, which translate alike
                table.mapPages(iova, paddr, PhysicalMemory.PAGE_SIZE, count * (pageSize >>> PhysicalMemory.PAGE_SHIFT),
                        prot);
                return;
            }
            table.mapPages(iova, paddr, pageSize, count, prot);
        }

        @Override
        public long apertureStart() {
            return owner.apertureStart;
        }

        @Override
        public long apertureEnd() {
            return owner.apertureEnd;
        }

        @Override
        public void flushIotlbAll() {
            flushes.incrementAndGet();
        }

        /** @return IOTLB flushes the core asked for */
        public int flushes() {
            return flushes.get();
        }

        /** @return the page table */
        public IoPageTable table() {
            return table;
        }

        @Override
        public DomainType type() {
            return type;
        }

        @Override
        public void attachDevice(Device device) {
            attached.add(device);
        }

        @Override
        public void detachDevice(Device device) {
            attached.remove(device);
        }

        /** @return devices attached now */
        public Set<Device> attached() {
            return Set.copyOf(attached);
        }

        /** @return whether {@link #free()} was called */
        public boolean isFreed() {
            return freed;
        }

        @Override
        public void map(long iova, long paddr, long size, int prot) {
            if (type == DomainType.BLOCKED) {
                throw new IommuException(Errno.EOPNOTSUPP, "blocked domains map nothing");
            }
            table.map(iova, paddr, size, prot);
        }

        @Override
        public long unmap(long iova, long size) {
            return table.unmap(iova, size);
        }

        @Override
        public long translate(long iova, int access) {
            RuntimeException e = owner.translateThrows;
            if (e != null) {
                throw e;
            }
            return table.lookup(iova, access);
        }

        /** @return mapped pages */
        public int mappedPages() {
            return table.mappedPages();
        }

        @Override
        public void free() {
            freed = true;
        }
    }
}
