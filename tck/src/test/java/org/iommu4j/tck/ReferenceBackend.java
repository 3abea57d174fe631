package org.iommu4j.tck;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.LockSupport;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.api.ApiVersionRange;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BusType;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaOps;
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
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;

/**
 * A small, correct backend written against the api alone (translating domains on {@link IoPageTable}, isolated
 * groups, identity default domains, a bouncing DMA API), and the same backend with one {@link Defect} each: what
 * the kit's self-tests run it on.
 */
final class ReferenceBackend implements BackendProvider {
    static final long PAGE_SIZES = PhysicalMemory.PAGE_SIZE | (2L << 20);
    private static final long LOW = 1L << 32;

    /** One way to be wrong, each against one rule. */
    enum Defect {
        LONG_NAME(Rule.METADATA_NAME),
        BAD_VERSION(Rule.METADATA_VERSION),
        BAD_LICENSE(Rule.METADATA_LICENSE),
        API_RANGE(Rule.METADATA_API_RANGE),
        FICKLE_INFO(Rule.METADATA_INFO_STABLE),
        BUSY_CONSTRUCTOR(Rule.METADATA_CONSTRUCTOR),
        NO_SERVICE_FILE(Rule.METADATA_SERVICE_FILE),
        MANIFEST_NAME(Rule.METADATA_MANIFEST),
        START_FAILS(Rule.LIFECYCLE_START),
        SLOPPY_STOP(Rule.LIFECYCLE_STOP),
        ONCE_ONLY(Rule.LIFECYCLE_LOAD_TWICE),
        SHARED_STATE(Rule.LIFECYCLE_TWO_HOSTS),
        /** The lying one: groups claim isolation, domains do not translate. */
        IDENTITY_TRANSLATE(Rule.CLAIMS_ISOLATION),
        NO_TRANSLATION(Rule.IOMMU_MAP),
        OVERWRITES(Rule.IOMMU_OVERLAP),
        ZERO_LENGTH_OK(Rule.IOMMU_ZERO_LENGTH),
        OVERFLOW_WRAPS(Rule.IOMMU_OVERFLOW),
        ROUNDS_UP(Rule.IOMMU_UNALIGNED),
        DOUBLE_UNMAP_THROWS(Rule.IOMMU_DOUBLE_UNMAP),
        WRONG_PAGE_SIZES(Rule.IOMMU_PAGE_SIZES),
        RACY_MAP(Rule.IOMMU_CONCURRENT),
        NO_COPY_BACK(Rule.DMA_ROUND_TRIP),
        NO_SYNC(Rule.DMA_SYNC),
        COHERENT_OFFSET(Rule.DMA_COHERENT),
        NO_BOUNCE(Rule.DMA_BOUNCE),
        CLAIMS_SWIOTLB(Rule.VFIO_TYPES),
        OFF_BY_A_PAGE(Rule.VFIO_ROUND_TRIP),
        STRAY_REACHES(Rule.VFIO_STRAY_DMA),
        OPEN_WITHOUT_OPT_IN(Rule.CLAIMS_NO_ISOLATION),
        HOT_PLUG_IGNORED(Rule.CLAIMS_HOT_PLUG),
        DMA_DEFAULT_DOMAIN(Rule.CLAIMS_IDENTITY),
        LEAKS_ON_FAILURE(Rule.FAULTS),
        UNMAP_KEEPS_LAST_PAGE(Rule.MODEL);

        final Rule rule;

        Defect(Rule rule) {
            this.rule = rule;
        }
    }

    private final Defect defect;
    private int starts;
    private KernelServices last;
    private IommuOps lastOps;
    private DmaOps lastDma;

    ReferenceBackend(Defect defect) {
        this.defect = defect;
        if (defect == Defect.BUSY_CONSTRUCTOR) {
            System.setProperty("iommu4j.tck.busy", Long.toString(System.nanoTime()));
        }
    }

    private boolean is(Defect d) {
        return defect == d;
    }

    static BackendClaims claims(Defect defect) {
        BackendClaims.Builder b = BackendClaims.builder().translation().isolation().dmaApi().identityDomains()
                .pageSizes(PAGE_SIZES).coherentAllocation().hotPlug().bounceBuffering()
                .vfioTypes(org.iommu4j.api.Vfio.TYPE1_IOMMU, org.iommu4j.api.Vfio.TYPE1v2_IOMMU);
        if (defect == Defect.CLAIMS_SWIOTLB) {
            b.vfioTypes(org.iommu4j.api.Vfio.SWIOTLB_IOMMU);
        }
        if (defect == Defect.OPEN_WITHOUT_OPT_IN) {
            // what such a backend would say of itself: no isolation, VFIO all the same, and no opt-in to ask for
            return BackendClaims.builder().translation().dmaApi().identityDomains().pageSizes(PAGE_SIZES)
                    .coherentAllocation().vfioTypes(org.iommu4j.api.Vfio.TYPE1v2_IOMMU).build();
        }
        return b.build();
    }

    @Override
    public ModuleInfo info() {
        ModuleInfo.Builder b = ModuleInfo.builder(is(Defect.LONG_NAME) ? "a".repeat(60) : "tck_test")
                .version(is(Defect.BAD_VERSION) ? "latest" : "1.0.0").description("the kit's own test backend")
                .author("iommu4j tck").license(is(Defect.BAD_LICENSE) ? "MIT-ish" : "GPL");
        if (is(Defect.API_RANGE)) {
            b.apiVersions(new ApiVersionRange(new ApiVersion(ApiVersion.CURRENT.major(), ApiVersion.CURRENT.minor() + 1),
                    new ApiVersion(ApiVersion.CURRENT.major() + 1, 0)));
        }
        if (is(Defect.FICKLE_INFO)) {
            b.version("1.0." + System.nanoTime());
        }
        return b.build();
    }

    @Override
    public Backend start(KernelServices kernel) {
        if (is(Defect.START_FAILS)) {
            throw new IommuException(Errno.ENODEV, "tck_test: no hardware");
        }
        if (is(Defect.ONCE_ONLY) && starts++ > 0) {
            throw new IommuException(Errno.EBUSY, "tck_test: already started once");
        }
        last = kernel;
        PageAllocator pages = kernel.pageAllocator();
        long state = pages.allocatePages(0, PageAllocator.NO_LIMIT);
        long more;
        try {
            more = pages.allocatePages(0, PageAllocator.NO_LIMIT);
        } catch (IommuException e) {
            if (!is(Defect.LEAKS_ON_FAILURE)) {
                pages.freePages(state, 0);
            }
            throw e;
        }
        Set<String> present = new HashSet<>();
        kernel.devices().devices(BusType.PCI).forEach(d -> present.add(d.name()));
        Ops ops = new Ops(present);
        BounceOps dma = new BounceOps(kernel);
        kernel.iommu().registerOps(BusType.PCI, ops);
        kernel.dma().setDefaultOps(dma);
        lastOps = ops;
        lastDma = dma;
        return new Backend() {
            @Override
            public void stop() {
                pages.freePages(state, 0);
                pages.freePages(more, 0);
                if (is(Defect.SLOPPY_STOP)) {
                    return;
                }
                if (is(Defect.SHARED_STATE)) {
                    // what the provider remembers is the last host's, not this one's
                    last.dma().clearDefaultOps(lastDma);
                    last.iommu().unregisterOps(BusType.PCI, lastOps);
                    return;
                }
                kernel.dma().clearDefaultOps(dma);
                kernel.iommu().unregisterOps(BusType.PCI, ops);
            }
        };
    }

    private final class Ops implements IommuOps {
        private final Set<String> present;

        Ops(Set<String> present) {
            this.present = present;
        }

        @Override
        public boolean probeDevice(Device device) {
            return !is(Defect.HOT_PLUG_IGNORED) || present.contains(device.name());
        }

        @Override
        public IommuGroup deviceGroup(Device device, IommuCore groups) {
            return groups.allocateGroup("tck-test", true);
        }

        @Override
        public DomainType defaultDomainType(Device device) {
            return is(Defect.DMA_DEFAULT_DOMAIN) ? DomainType.DMA : DomainType.IDENTITY;
        }

        @Override
        public IommuDomain allocateDomain(DomainType type) {
            if (type == DomainType.DMA || type == DomainType.UNMANAGED) {
                return new PagedDomain(type);
            }
            throw new IommuException(Errno.EOPNOTSUPP, "tck_test: no " + type.sysfsName() + " domains");
        }

        @Override
        public boolean capable(Device device, IommuCapability capability) {
            return capability == IommuCapability.CACHE_COHERENCY
                    || capability == IommuCapability.INTR_REMAP;
        }

        @Override
        public long pageSizeBitmap() {
            return is(Defect.WRONG_PAGE_SIZES) ? PAGE_SIZES | (1L << 30) : PAGE_SIZES;
        }
    }

    private final class PagedDomain implements IommuDomain {
        private final DomainType type;
        private volatile IoPageTable table = new IoPageTable();
        private final List<long[]> maps = new ArrayList<>();

        PagedDomain(DomainType type) {
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
        public synchronized void map(long iova, long paddr, long size, int prot) {
            if (is(Defect.NO_TRANSLATION) || is(Defect.IDENTITY_TRANSLATE)) {
                return;
            }
            if (size == 0 && is(Defect.ZERO_LENGTH_OK)) {
                return;
            }
            if (is(Defect.ROUNDS_UP)) {
                size = PhysicalMemory.pageAlignUp(size);
            }
            if (is(Defect.OVERFLOW_WRAPS) && Long.compareUnsigned(iova + size, iova) < 0) {
                table.map(iova, paddr, PhysicalMemory.PAGE_SIZE, prot);
                return;
            }
            if (is(Defect.OVERWRITES)) {
                table.unmap(iova, size);
            }
            if (is(Defect.OFF_BY_A_PAGE)) {
                paddr += PhysicalMemory.PAGE_SIZE;
            }
            if (is(Defect.RACY_MAP)) {
                // rebuilds the table and publishes an empty one meanwhile
                IoPageTable rebuilt = new IoPageTable();
                table = new IoPageTable();
                LockSupport.parkNanos(20_000);
                for (long[] m : maps) {
                    rebuilt.map(m[0], m[1], m[2], (int) m[3]);
                }
                rebuilt.map(iova, paddr, size, prot);
                maps.add(new long[] {iova, paddr, size, prot});
                table = rebuilt;
                return;
            }
            table.map(iova, paddr, size, prot);
        }

        @Override
        public synchronized long unmap(long iova, long size) {
            if (is(Defect.DOUBLE_UNMAP_THROWS) && table.lookup(iova, 0) < 0) {
                throw new IommuException(Errno.ENOENT, "tck_test: nothing mapped at 0x" + Long.toHexString(iova));
            }
            if (is(Defect.RACY_MAP)) {
                maps.removeIf(m -> m[0] == iova);
            }
            if (is(Defect.UNMAP_KEEPS_LAST_PAGE) && size > PhysicalMemory.PAGE_SIZE) {
                table.unmap(iova, size - PhysicalMemory.PAGE_SIZE);
                return size;
            }
            return table.unmap(iova, size);
        }

        @Override
        public long translate(long iova, int access) {
            if (is(Defect.NO_TRANSLATION) || is(Defect.IDENTITY_TRANSLATE)) {
                return iova;
            }
            long phys = table.lookup(iova, access);
            return phys < 0 && is(Defect.STRAY_REACHES) ? iova : phys;
        }
    }

    /** The DMA API through bounce pages below 4 GiB for everything. */
    private final class BounceOps implements DmaOps {
        private final KernelServices kernel;
        private final Map<Long, long[]> live = new ConcurrentHashMap<>();

        BounceOps(KernelServices kernel) {
            this.kernel = kernel;
        }

        private int pages(long size) {
            return (int) (PhysicalMemory.pageAlignUp(size) / PhysicalMemory.PAGE_SIZE);
        }

        @Override
        public long map(Device device, long phys, long size, DmaDirection direction) {
            if (is(Defect.NO_BOUNCE) && Long.compareUnsigned(phys + size, LOW) > 0) {
                return phys;
            }
            long bounce = kernel.pageAllocator().allocateContiguous(pages(size), LOW);
            if (direction != DmaDirection.FROM_DEVICE) {
                kernel.memory().copy(phys, bounce, size);
            }
            live.put(bounce, new long[] {phys, size});
            return bounce;
        }

        @Override
        public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
            long[] m = live.remove(dmaAddress);
            if (m == null) {
                return;
            }
            if (direction != DmaDirection.TO_DEVICE && !is(Defect.NO_COPY_BACK)) {
                kernel.memory().copy(dmaAddress, m[0], size);
            }
            kernel.pageAllocator().freeContiguous(dmaAddress, pages(m[1]));
        }

        @Override
        public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
            long[] m = live.get(dmaAddress);
            if (m != null && !is(Defect.NO_SYNC)) {
                kernel.memory().copy(dmaAddress, m[0], size);
            }
        }

        @Override
        public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
            long[] m = live.get(dmaAddress);
            if (m != null && !is(Defect.NO_SYNC)) {
                kernel.memory().copy(m[0], dmaAddress, size);
            }
        }

        @Override
        public CoherentBuffer allocateCoherent(Device device, long size) {
            CoherentBuffer b = kernel.dma().directOps().allocateCoherent(device, size);
            return is(Defect.COHERENT_OFFSET) ? new CoherentBuffer(b.phys(), b.dmaAddress() + PhysicalMemory.PAGE_SIZE,
                    b.size()) : b;
        }

        @Override
        public void freeCoherent(Device device, CoherentBuffer buffer) {
            CoherentBuffer b = is(Defect.COHERENT_OFFSET) ? new CoherentBuffer(buffer.phys(),
                    buffer.dmaAddress() - PhysicalMemory.PAGE_SIZE, buffer.size()) : buffer;
            kernel.dma().directOps().freeCoherent(device, b);
        }
    }
}
