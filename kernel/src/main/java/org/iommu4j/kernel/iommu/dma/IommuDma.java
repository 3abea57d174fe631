package org.iommu4j.kernel.iommu.dma;

import java.util.Optional;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.BusType;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuCapability;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.iommu.Iommu;
import org.iommu4j.kernel.log.KernelLogBuffer;
import org.iommu4j.kernel.log.Warnings;
import org.iommu4j.kernel.params.CommandLine;

/**
 * iommu-dma, the DMA API for devices whose default domain translates ({@code drivers/iommu/dma-iommu.c},
 * Linux v6.12): {@code host.dma()} gives such a device an IOVA from its domain's {@link IovaDomain}, inside the
 * domain's aperture and below the device's DMA mask, maps the buffer through the iommu core, and unmaps with an
 * IOTLB flush, at once ({@code iommu.strict=1}) or through a flush queue (the default, DMA-FQ), see
 * {@link IommuDmaCookie}. A backend that installs its own {@link DmaOps} (default or per device) keeps them;
 * iommu-dma serves the devices of DMA domains that nobody else serves.
 *
 * <ul>
 *   <li>A device with a mask above 32 bits first gets IOVAs below 4 GiB ({@code pci_32bit_workaround}); when
 *       that space is full it logs {@code Using N-bit DMA addresses} once and uses its whole mask from then on.
 *       {@code iommu.forcedac=1} turns the first pass off ({@code Forcing DAC for PCI devices}).</li>
 *   <li>An untrusted device (behind an external-facing port) has a buffer that is not page-aligned at both
 *       ends bounced into whole pages of the kernel's {@link BounceArea}, the rest of which is zeroed, so that it
 *       never sees the other bytes of the buffer's pages. When the area cannot be set up the map fails with the
 *       kernel's {@code DMA bounce buffers are inactive, unable to map unaligned transaction.}</li>
 *   <li>Coherent buffers come from the page allocator (anywhere: the IOMMU makes them reachable) and are
 *       mapped through the same allocator, below the coherent mask. Scatter-gather goes segment by segment
 *       through {@link #map}, the DMA API's default.</li>
 * </ul>
 *
 * <p>Hot paths: map and unmap of a cached size (up to 128 KiB) take the calling CPU's cache lock and, in lazy
 * mode, its flush-queue lock; nothing all CPUs share, and no allocation once the page tables exist.
 */
public final class IommuDma implements DmaOps {
    private static final long PAGE_MASK = PhysicalMemory.PAGE_OFFSET_MASK;

    private final Iommu iommu;
    private final PhysicalMemory memory;
    private final PageAllocator pages;
    private final KernelLogBuffer log;
    private final Warnings warnings;
    private final IntSupplier cpu;
    private final int cpus;
    private final LongSupplier clock;
    private final boolean strict;
    private final boolean forceDac;
    private final BounceArea bounce;
    private final java.util.Set<String> reportedInactive = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /**
     * @param iommu the iommu core every map and unmap goes through
     * @param memory the host's memory
     * @param pages the page allocator, for coherent buffers and the bounce area
     * @param log the kernel log
     * @param warnings the kernel's WARN facility
     * @param commandLine {@code iommu.strict=} and {@code iommu.forcedac=}
     * @param cpus the host's CPUs
     * @param cpu the calling thread's CPU
     * @param clock the host's clock, for the flush-queue timer
     */
    public IommuDma(Iommu iommu, PhysicalMemory memory, PageAllocator pages, KernelLogBuffer log,
            Warnings warnings, CommandLine commandLine, int cpus, IntSupplier cpu, LongSupplier clock) {
        this.iommu = iommu;
        this.memory = memory;
        this.pages = pages;
        this.log = log;
        this.warnings = warnings;
        this.cpus = cpus;
        this.cpu = cpu;
        this.clock = clock;
        this.strict = flag(commandLine, "iommu.strict");
        this.forceDac = flag(commandLine, "iommu.forcedac");
        if (forceDac) {
            log.log(LogLevel.INFO, "Forcing DAC for PCI devices");
        }
        this.bounce = new BounceArea(memory, pages);
    }

    /** The kernel's {@code kstrtobool}: 1/y/Y/on is true; anything else false. */
    /** A boolean boot parameter, false when absent (plain code: every boot runs it, a cold JVM pays per lambda). */
    private static boolean flag(CommandLine commandLine, String name) {
        Optional<String> v = commandLine.get(name);
        return v.isPresent() && kstrtobool(v.get());
    }

    private static boolean kstrtobool(String v) {
        return v.equals("1") || v.startsWith("y") || v.startsWith("Y") || v.equalsIgnoreCase("on");
    }

    /** @return whether {@code iommu.strict=1} asked for strict invalidation everywhere */
    public boolean isStrict() {
        return strict;
    }

    /**
     * Sets up iommu-dma for a new group's default domain ({@code iommu_setup_dma_ops} and
     * {@code iommu_dma_init_domain}).
     *
     * @param ops the driver
     * @param owner the driver's module
     * @param domain the group's default domain
     * @param first the group's first device
     * @return the cookie, or null when the domain is not a DMA domain
     * @throws IommuException {@link Errno#EINVAL} naming why the DMA API cannot use the domain: its smallest
     *     page is not 4 KiB, or its aperture holds no page iommu-dma may hand out
     */
    public IommuDmaCookie createCookie(IommuOps ops, String owner, IommuDomain domain, BusDevice first) {
        if (domain.type() != DomainType.DMA) {
            return null;
        }
        long bitmap = ops.pageSizeBitmap();
        if (Long.lowestOneBit(bitmap) != PhysicalMemory.PAGE_SIZE) {
            throw new IommuException(Errno.EINVAL, String.format("Failed to set up IOMMU for device %s: the"
                    + " DMA domain's smallest page size is 0x%x; iommu-dma needs 4 KiB pages (0x1000 in"
                    + " pageSizeBitmap)", first.name(), Long.lowestOneBit(bitmap)));
        }
        long start = domain.apertureStart();
        long end = domain.apertureEnd();
        long firstUsable = Math.max(start, PhysicalMemory.PAGE_SIZE); // IOVA page 0 is never handed out
        if (Long.compareUnsigned(end, firstUsable + PAGE_MASK) < 0 || Long.compareUnsigned(start, end) > 0) {
            throw new IommuException(Errno.EINVAL, String.format("Failed to set up IOMMU for device %s: the DMA"
                    + " domain's aperture [0x%x-0x%x] holds no page the DMA API can use (page 0 is never"
                    + " handed out)", first.name(), start, end));
        }
        boolean lazy = !strict && !first.isUntrusted() && ops.capable(first, IommuCapability.DEFERRED_FLUSH);
        if (first.bus() == BusType.PCI) {
            first.setPci32BitWorkaround(!forceDac);
        }
        return new IommuDmaCookie(this, ops, domain, owner, firstUsable, end, lazy, cpus, clock);
    }

    /**
     * @param device a device joining a group that has a cookie
     */
    public void deviceJoined(BusDevice device) {
        device.setPci32BitWorkaround(device.bus() == BusType.PCI && !forceDac);
    }

    /** @param cookie a cookie whose domain is being freed */
    public void releaseCookie(IommuDmaCookie cookie) {
        cookie.release();
    }

    void flushIotlbAll(IommuDmaCookie cookie) {
        iommu.flushIotlbAll(cookie.ops(), cookie.domain());
    }

    /**
     * A hot-removed device left its group, and its DMA domain and IOVA cookie were freed with it (Linux v6.12's
     * {@code iommu_release_device}; {@code iommu_put_dma_cookie} when the domain goes): its translations went
     * with them, so a later unmap or free has nothing left to undo in the IOMMU and succeeds, and the DMA API
     * stops counting the mapping against the driver's module. (In Linux the driver is unbound, and should have
     * unmapped, before the device goes.) A bounced mapping's slot cannot be found again without the domain.
     */
    private static boolean leftWithItsDomain(BusDevice d) {
        Group g = d.group();
        return !d.isPresent() && (g == null || g.dmaCookie() == null);
    }

    private static IommuDmaCookie cookie(BusDevice d) {
        Group g = d.group();
        IommuDmaCookie c = g == null ? null : g.dmaCookie();
        if (c == null) {
            throw new DmaMappingException(Errno.ENODEV, d.name() + ": not in a DMA domain: iommu-dma has no"
                    + " IOVA space for it");
        }
        return c;
    }

    private static int prot(DmaDirection direction) {
        return IommuProt.CACHE | switch (direction) {
            case TO_DEVICE -> IommuProt.READ;
            case FROM_DEVICE -> IommuProt.WRITE;
            default -> IommuProt.READ | IommuProt.WRITE;
        };
    }

    @Override
    public long map(Device device, long phys, long size, DmaDirection direction) {
        BusDevice d = (BusDevice) device;
        IommuDmaCookie c = cookie(d);
        c.runTimer();
        long mapped = phys;
        boolean bounced = false;
        if (d.isUntrusted() && ((phys | size) & PAGE_MASK) != 0) {
            mapped = bounce.map(phys, size);
            if (mapped < 0) {
                if (bounce.isUnavailable()) {
                    String message = d.name() + ": DMA bounce buffers are inactive, unable to map unaligned"
                            + " transaction.";
                    if (reportedInactive.add(d.name())) { // dev_warn_once
                        log.log(LogLevel.WARNING, d.logPrefix() + ": DMA bounce buffers are inactive, unable to"
                                + " map unaligned transaction.");
                    }
                    throw new DmaMappingException(Errno.ENOMEM, message);
                }
                throw new DmaMappingException(Errno.ENOMEM, String.format("%s: swiotlb buffer is full (sz: %d"
                        + " bytes), total %d (slots), used %d (slots)", d.name(), size, BounceArea.PAGES,
                        bounce.usedPages()));
            }
            bounced = true;
        }
        try {
            return mapPhys(d, c, mapped, size, prot(direction), d.dmaMask());
        } catch (RuntimeException e) {
            if (bounced) {
                bounce.unmap(mapped, DmaDirection.TO_DEVICE);
            }
            throw e;
        }
    }

    /** The kernel's {@code __iommu_dma_map}. */
    private long mapPhys(BusDevice d, IommuDmaCookie c, long phys, long size, int prot, long dmaMask) {
        if (Long.compareUnsigned(d.minAlignMask(), PAGE_MASK) > 0) {
            warnings.warnOnce("kernel", "drivers/iommu/dma-iommu.c __iommu_dma_map " + d.name(),
                    d.logPrefix() + ": Unsupported alignment constraint");
            throw new DmaMappingException(Errno.ENOMEM, d.name() + ": Unsupported alignment constraint: min_align_mask"
                    + String.format(" 0x%x is above the IOVA granule's 0xfff", d.minAlignMask()));
        }
        long offset = phys & PAGE_MASK;
        long length = AddressRange.alignUp("DMA size", AddressRange.addExact("DMA size", size, offset),
                PhysicalMemory.PAGE_SIZE);
        long iova = allocIova(d, c, length, dmaMask);
        if (iova == 0) {
            throw new DmaMappingException(Errno.ENOMEM, String.format("%s: no IOVA space for %d bytes below"
                    + " 0x%x", d.name(), size, limit(d, c, dmaMask)));
        }
        try {
            iommu.map(c.ops(), c.domain(), iova, phys - offset, length, prot);
        } catch (IommuException e) {
            c.iovad().freeFast(cpu.getAsInt(), iova >>> PhysicalMemory.PAGE_SHIFT,
                    length >>> PhysicalMemory.PAGE_SHIFT);
            // DMA_MAPPING_ERROR, which a driver reports as ENOMEM whatever the cause; the message keeps it
            throw new DmaMappingException(Errno.ENOMEM, d.name() + ": iommu_map failed: " + e.getMessage());
        }
        return iova + offset;
    }

    private static long limit(BusDevice d, IommuDmaCookie c, long dmaMask) {
        long limit = dmaMask;
        long bus = d.busDmaLimit();
        if (bus != 0 && Long.compareUnsigned(bus, limit) < 0) {
            limit = bus;
        }
        return Long.compareUnsigned(c.apertureEnd(), limit) < 0 ? c.apertureEnd() : limit;
    }

    /** The kernel's {@code iommu_dma_alloc_iova}. */
    private long allocIova(BusDevice d, IommuDmaCookie c, long length, long dmaMask) {
        long pageCount = length >>> PhysicalMemory.PAGE_SHIFT;
        long limit = limit(d, c, dmaMask);
        int here = cpu.getAsInt();
        if (Long.compareUnsigned(limit, 0xffff_ffffL) > 0 && d.pci32BitWorkaround()) {
            long pfn = c.iovad().allocFast(here, pageCount, 0xffff_ffffL >>> PhysicalMemory.PAGE_SHIFT, false);
            if (pfn != 0) {
                return pfn << PhysicalMemory.PAGE_SHIFT;
            }
            d.setPci32BitWorkaround(false);
            log.log(LogLevel.NOTICE, d.logPrefix() + ": Using " + (64 - Long.numberOfLeadingZeros(limit))
                    + "-bit DMA addresses");
        }
        return c.iovad().allocFast(here, pageCount, limit >>> PhysicalMemory.PAGE_SHIFT, true)
                << PhysicalMemory.PAGE_SHIFT;
    }

    @Override
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
        BusDevice d = (BusDevice) device;
        if (leftWithItsDomain(d)) {
            return;
        }
        IommuDmaCookie c = cookie(d); // no timer check: see IommuDmaCookie#runTimer
        long phys = physOf(d, c, dmaAddress);
        unmapIova(c, dmaAddress, size, phys, prot(direction));
        if (bounce.contains(phys)) {
            bounce.unmap(phys, direction);
        }
    }

    private long physOf(BusDevice d, IommuDmaCookie c, long dmaAddress) {
        long phys = iommu.iovaToPhys(c.ops(), c.domain(), dmaAddress);
        if (phys < 0) {
            throw new IommuException(Errno.EINVAL, String.format("%s: DMA address 0x%x is not mapped in its"
                    + " IOMMU domain", d.name(), dmaAddress));
        }
        return phys;
    }

    /** The kernel's {@code __iommu_dma_unmap}. */
    private void unmapIova(IommuDmaCookie c, long dmaAddress, long size, long phys, int prot) {
        long offset = dmaAddress & PAGE_MASK;
        long iova = dmaAddress - offset;
        long length = AddressRange.alignUp("DMA size", AddressRange.addExact("DMA size", size, offset),
                PhysicalMemory.PAGE_SIZE);
        long unmapped = iommu.unmap(c.ops(), c.domain(), iova, length);
        if (unmapped != length) {
            warnings.warn("kernel", "drivers/iommu/dma-iommu.c __iommu_dma_unmap", String.format(
                    "iommu-dma: unmapped 0x%x bytes at iova 0x%x, expected 0x%x", unmapped, iova, length));
        }
        if (!c.isLazy()) {
            c.flushIotlb(); // iommu_iotlb_sync
        }
        c.freeIova(cpu.getAsInt(), iova >>> PhysicalMemory.PAGE_SHIFT, length >>> PhysicalMemory.PAGE_SHIFT,
                phys - offset, prot);
    }

    @Override
    public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        sync((BusDevice) device, dmaAddress, size, direction != DmaDirection.TO_DEVICE, true);
    }

    @Override
    public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        sync((BusDevice) device, dmaAddress, size, direction != DmaDirection.FROM_DEVICE, false);
    }

    private void sync(BusDevice d, long dmaAddress, long size, boolean copies, boolean forCpu) {
        IommuDmaCookie c = cookie(d);
        long phys = physOf(d, c, dmaAddress);
        if (copies && bounce.contains(phys)) {
            bounce.sync(phys, size, forCpu);
        }
    }

    @Override
    public CoherentBuffer allocateCoherent(Device device, long size) {
        BusDevice d = (BusDevice) device;
        IommuDmaCookie c = cookie(d);
        c.runTimer();
        long length = AddressRange.alignUp("coherent size", size, PhysicalMemory.PAGE_SIZE);
        long phys = pages.allocateContiguous(length >>> PhysicalMemory.PAGE_SHIFT, PageAllocator.NO_LIMIT);
        try {
            memory.fill(phys, length, (byte) 0);
            long iova = mapPhys(d, c, phys, length, IommuProt.READ | IommuProt.WRITE | IommuProt.CACHE,
                    d.coherentDmaMask());
            return new CoherentBuffer(phys, iova, length);
        } catch (RuntimeException e) {
            pages.freeContiguous(phys, length >>> PhysicalMemory.PAGE_SHIFT);
            throw e;
        }
    }

    @Override
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        BusDevice d = (BusDevice) device;
        if (leftWithItsDomain(d)) {
            pages.freeContiguous(buffer.phys(), buffer.size() >>> PhysicalMemory.PAGE_SHIFT);
            return;
        }
        IommuDmaCookie c = cookie(d); // no timer check: see IommuDmaCookie#runTimer
        physOf(d, c, buffer.dmaAddress());
        unmapIova(c, buffer.dmaAddress(), buffer.size(), buffer.phys(),
                IommuProt.READ | IommuProt.WRITE | IommuProt.CACHE);
        pages.freeContiguous(buffer.phys(), buffer.size() >>> PhysicalMemory.PAGE_SHIFT);
    }

    @Override
    public long maxMappingSize(Device device) {
        return ((BusDevice) device).isUntrusted() ? (long) BounceArea.PAGES << PhysicalMemory.PAGE_SHIFT
                : Long.MAX_VALUE;
    }
}
