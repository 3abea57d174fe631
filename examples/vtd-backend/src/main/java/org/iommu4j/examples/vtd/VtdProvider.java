package org.iommu4j.examples.vtd;

import java.util.concurrent.atomic.LongAdder;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BlockingDomain;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IoPageTable;
import org.iommu4j.api.IommuCapability;
import org.iommu4j.api.IommuCore;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;

/**
 * {@code vtd}, an out-of-tree translating IOMMU driver shaped like Intel VT-d ({@code drivers/iommu/intel} of
 * Linux v6.12): it manages every PCI device, groups them by topology with the core's {@code pci_device_group},
 * gives them DMA domains (iommu-dma hands out the IOVAs), identity domains with {@code iommu.passthrough=1},
 * blocked and unmanaged (VFIO) domains, maps 4 KiB, 2 MiB and 1 GiB pages through a 48-bit page table (a
 * 4-level AGAW), snoops CPU caches and remaps interrupts. Its IOTLB flushes are counted, not modelled.
 */
public final class VtdProvider implements BackendProvider {
    /** The page sizes of second-level tables with super pages: 4 KiB, 2 MiB, 1 GiB. */
    static final long PAGE_SIZES = IoPageTable.SUPPORTED_PAGE_SIZES;
    /** A 4-level table translates 48 bits. */
    static final long APERTURE_END = (1L << 48) - 1;

    private static final ModuleInfo INFO = ModuleInfo.builder("vtd")
            .version("0.1.0")
            .description("VT-d-like IOMMU: topology groups, DMA/identity/blocked domains, 4K/2M/1G pages")
            .author("an out-of-tree vendor")
            .license("GPL v2")
            .inTree(false)
            .build();

    @Override
    public ModuleInfo info() {
        return INFO;
    }

    @Override
    public Backend start(KernelServices kernel) {
        boolean passThrough = kernel.commandLine().get("iommu.passthrough").filter("1"::equals).isPresent();
        IommuOps ops = new IommuOps() {
            @Override
            public boolean probeDevice(Device device) {
                return device.bus() == BusType.PCI;
            }

            @Override
            public IommuGroup deviceGroup(Device device, IommuCore core) {
                return core.pciDeviceGroup(device);
            }

            @Override
            public DomainType defaultDomainType(Device device) {
                return passThrough ? DomainType.IDENTITY : DomainType.DMA;
            }

            @Override
            public IommuDomain allocateDomain(DomainType type) {
                return switch (type) {
                    case BLOCKED -> new BlockingDomain();
                    case IDENTITY -> new Identity();
                    case DMA, UNMANAGED -> new SecondLevel(type);
                };
            }

            @Override
            public boolean capable(Device device, IommuCapability capability) {
                return capability != IommuCapability.NOEXEC;
            }

            @Override
            public long pageSizeBitmap() {
                return PAGE_SIZES;
            }
        };
        kernel.iommu().registerOps(BusType.PCI, ops);
        return new Backend() {
            @Override
            public void stop() {
                kernel.iommu().unregisterOps(BusType.PCI, ops);
            }
        };
    }

    /** A second-level page table: what a DMA or VFIO domain is on VT-d. */
    static final class SecondLevel implements IommuDomain {
        private final DomainType type;
        private final IoPageTable table = new IoPageTable();
        private final LongAdder iotlbFlushes = new LongAdder();

        SecondLevel(DomainType type) {
            this.type = type;
        }

        @Override
        public DomainType type() {
            return type;
        }

        @Override
        public void attachDevice(Device device) {
        }

        @Override
        public void detachDevice(Device device) {
        }

        @Override
        public void map(long iova, long paddr, long size, int prot) {
            table.map(iova, paddr, size, prot);
        }

        @Override
        public void mapPages(long iova, long paddr, long pageSize, long count, int prot) {
            table.mapPages(iova, paddr, pageSize, count, prot);
        }

        @Override
        public long unmap(long iova, long size) {
            return table.unmap(iova, size);
        }

        @Override
        public long translate(long iova, int access) {
            return table.lookup(iova, access);
        }

        @Override
        public long apertureEnd() {
            return APERTURE_END;
        }

        @Override
        public void flushIotlbAll() {
            iotlbFlushes.increment();
        }

        long iotlbFlushes() {
            return iotlbFlushes.sum();
        }

        IoPageTable table() {
            return table;
        }
    }

    /** Pass-through: every bus address is the physical address ({@code si_domain}). */
    static final class Identity implements IommuDomain {
        @Override
        public DomainType type() {
            return DomainType.IDENTITY;
        }

        @Override
        public void attachDevice(Device device) {
        }

        @Override
        public void detachDevice(Device device) {
        }

        @Override
        public void map(long iova, long paddr, long size, int prot) {
            throw new IommuException(Errno.EOPNOTSUPP, "vtd: an identity domain maps everything already");
        }

        @Override
        public long unmap(long iova, long size) {
            return 0;
        }

        @Override
        public long translate(long iova, int access) {
            return iova;
        }
    }
}
