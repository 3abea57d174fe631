package org.iommu4j.backend.swiotlb;

import java.util.List;
import java.util.Optional;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BounceAreaStats;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.KernelLog;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PciSlotList;
import org.iommu4j.api.PciSlotPattern;
import org.iommu4j.api.PhysicalMemory;

/**
 * The running swiotlb module: the pool (exported as {@link BounceBufferPool}), dma-direct+swiotlb as every
 * device's DMA API, and the SWIOTLB-IOMMU (iommu ops for assigned devices, and its VFIO driver). Its
 * attributes are debugfs's counters and pciback's slot files.
 */
final class SwiotlbBackend implements Backend {
    /** The most slots one pool may have here: 32 GiB, as Java arrays of per-slot state must stay small. */
    private static final long MAX_NSLABS = 1L << 24;

    private final KernelServices kernel;
    private final SwiotlbConfig config;
    /** The allocator, or null with swiotlb=noforce or when no memory could be had for the default pool. */
    private final SwiotlbMem mem;
    private final SwiotlbPool pool;
    private final long poolPages;
    private final SwiotlbDmaOps dma;
    private final PciSlotList slots;
    private final SwiotlbIommuOps iommuOps;
    private final SwiotlbVfioDriver vfio;
    private volatile boolean iommuEnabled;

    SwiotlbBackend(KernelServices kernel) {
        this.kernel = kernel;
        this.config = SwiotlbConfig.from(kernel);
        this.slots = new PciSlotList(kernel.parameters().get("hide"));
        KernelLog tlbLog = kernel.log().withPrefix(SwiotlbConfig.PR_FMT);
        long limit = config.limit() == 0 ? PageAllocator.NO_LIMIT : config.limit();
        if (config.disabled()) {
            mem = null;
            poolPages = 0;
            kernel.log().log(LogLevel.INFO, "swiotlb=noforce: no bounce pool; unreachable buffers are refused");
        } else {
            // swiotlb_init_remap: halve the pool until memory for it is found, down to IO_TLB_MIN_SLABS
            long nslabs = config.nslabs();
            int nareas = config.nareas();
            long start = -1;
            while (true) {
                long bytes = PhysicalMemory.pageAlignUp(nslabs << SwiotlbPool.IO_TLB_SHIFT);
                start = nslabs == 0 || Long.compareUnsigned(nslabs, MAX_NSLABS) > 0 ? -1
                        : tryAllocate(bytes >>> PhysicalMemory.PAGE_SHIFT, limit);
                if (start != -1) {
                    break;
                }
                tlbLog.log(LogLevel.WARNING, String.format("swiotlb_memblock_alloc: Failed to allocate %s bytes tlb"
                        + " structure", Long.toUnsignedString(bytes)));
                if (Long.compareUnsigned(nslabs, SwiotlbPool.IO_TLB_MIN_SLABS) <= 0) {
                    break;
                }
                nslabs = SwiotlbConfig.alignSegment(nslabs >>> 1);
                nareas = SwiotlbConfig.limitNareas(nareas, nslabs);
            }
            if (start == -1) {
                mem = null;
                poolPages = 0;
            } else {
                if (nslabs != config.nslabs()) {
                    tlbLog.log(LogLevel.INFO, String.format("SWIOTLB bounce buffer size adjusted %s -> %d slabs",
                            Long.toUnsignedString(config.nslabs()), nslabs));
                }
                poolPages = PhysicalMemory.pageAlignUp(nslabs << SwiotlbPool.IO_TLB_SHIFT) >>> PhysicalMemory.PAGE_SHIFT;
                try {
                    mem = new SwiotlbMem(kernel, start, (int) nslabs, Math.max(1, nareas), config.dynamic(), limit);
                } catch (RuntimeException e) {
                    kernel.pageAllocator().freeContiguous(start, poolPages);
                    throw e;
                }
                // swiotlb_print_info: mem->end is the address just past the pool
                tlbLog.log(LogLevel.INFO, String.format("mapped [mem 0x%016x-0x%016x] (%dMB)", start,
                        mem.defaultPool().end(), (nslabs << SwiotlbPool.IO_TLB_SHIFT) >> 20));
            }
        }
        this.pool = mem == null ? null : mem.defaultPool();
        this.dma = new SwiotlbDmaOps(kernel, mem, config.force());
        this.iommuOps = new SwiotlbIommuOps(slots, this::iommuEnabled);
        this.vfio = new SwiotlbVfioDriver(kernel, pool, this::iommuEnabled, config.force(), slots);
        try {
            kernel.dma().setDefaultOps(dma);
            if (pool != null) {
                kernel.symbols().export(BounceBufferPool.class, pool);
            }
            kernel.vfio().register(vfio);
            if (kernel.parameters().getBool(SwiotlbProvider.ENABLE_IOMMU)) {
                enableIommu();
            }
        } catch (RuntimeException e) {
            freePool();
            throw e;
        }
        kernel.parameters().addListener((name, old, now) -> {
            if (name.equals(SwiotlbProvider.ENABLE_IOMMU) && !old.equals(now)) {
                if (now.equals("Y")) {
                    enableIommu();
                } else {
                    disableIommu();
                }
            }
        });
    }

    private long tryAllocate(long pages, long limit) {
        try {
            return kernel.pageAllocator().allocateContiguous(pages, limit);
        } catch (IommuException e) {
            if (e.errno() != Errno.ENOMEM) {
                throw e;
            }
            return -1;
        }
    }

    private boolean iommuEnabled() {
        return iommuEnabled;
    }

    /**
     * The SWIOTLB-IOMMU takes the PCI bus's iommu ops only while enabled, so that another IOMMU driver (Xen's,
     * which loads swiotlb for its pool) can own them otherwise.
     */
    private void enableIommu() {
        iommuEnabled = true;
        try {
            kernel.iommu().registerOps(BusType.PCI, iommuOps);
        } catch (RuntimeException e) {
            iommuEnabled = false;
            throw e;
        }
        warnUnsafe();
    }

    /**
     * Takes assigned devices out of their groups; refused, with nothing changed, while VFIO holds one: every
     * assigned device's group is checked before any device moves, so a device bound to vfio-pci but not opened
     * keeps its binding and its group node when another one refuses.
     */
    private void disableIommu() {
        for (Device d : kernel.devices().devices(BusType.PCI)) {
            if (slots.covers(d)) {
                Optional<IommuGroup> g = kernel.iommu().groupOf(d);
                if (g.isPresent() && g.get().dmaOwned()) {
                    throw new IommuException(Errno.EBUSY, String.format("cannot turn %s off: %s is in iommu group"
                            + " %d, which a VFIO user holds: close it first; nothing was changed",
                            SwiotlbProvider.ENABLE_IOMMU, d.name(), g.get().id()));
                }
            }
        }
        iommuEnabled = false;
        try {
            reprobeAssigned();
        } catch (RuntimeException e) {
            iommuEnabled = true;
            reprobeAssigned();
            throw e;
        }
        kernel.iommu().unregisterOps(BusType.PCI, iommuOps);
    }

    private void warnUnsafe() {
        kernel.log().log(LogLevel.WARNING, "UNSAFE SWIOTLB-IOMMU enabled: assigned devices get VFIO groups with no"
                + " isolation, and the kernel will be tainted");
    }

    private void reprobeAssigned() {
        for (Device d : kernel.devices().devices(BusType.PCI)) {
            if (slots.covers(d)) {
                kernel.iommu().reprobe(d);
            }
        }
    }

    /** @return the default pool, or null with swiotlb=noforce */
    SwiotlbPool pool() {
        return pool;
    }

    /** @return the allocator, or null with swiotlb=noforce */
    SwiotlbMem mem() {
        return mem;
    }

    @Override
    public List<ModuleAttribute> attributes() {
        return List.of(
                ModuleAttribute.readOnly("io_tlb_nslabs", () -> Long.toString(mem == null ? 0 : mem.nslabs())),
                ModuleAttribute.readOnly("io_tlb_used", () -> Long.toString(mem == null ? 0 : mem.used())),
                new ModuleAttribute("io_tlb_used_hiwater", () -> Long.toString(mem == null ? 0 : mem.highWater()),
                        this::writeHighWater),
                ModuleAttribute.readOnly("io_tlb_transient_nslabs",
                        () -> Long.toString(mem == null ? 0 : mem.transientSlabs())),
                ModuleAttribute.readOnly("io_tlb_nareas", () -> Long.toString(pool == null ? 0 : pool.nareas())),
                ModuleAttribute.readOnly("io_tlb_area_used", this::areaUsage),
                ModuleAttribute.readOnly("io_tlb_pools", this::poolList),
                ModuleAttribute.readOnly("bounced_bytes_to_device",
                        () -> Long.toString(mem == null ? 0 : mem.bytesToDevice())),
                ModuleAttribute.readOnly("bounced_bytes_from_device",
                        () -> Long.toString(mem == null ? 0 : mem.bytesFromDevice())),
                ModuleAttribute.readOnly("slots", slots::toString),
                new ModuleAttribute("new_slot", () -> "", text -> {
                    PciSlotPattern slot = PciSlotPattern.parse(text.strip());
                    slots.update(kernel, slot, list -> list.add(slot), iommuEnabled);
                }),
                new ModuleAttribute("remove_slot", () -> "", text -> {
                    PciSlotPattern slot = PciSlotPattern.parse(text.strip());
                    slots.update(kernel, slot, list -> list.remove(slot), iommuEnabled);
                }));
    }

    /** debugfs {@code io_tlb_used_hiwater} is writable with 0 only ({@code io_tlb_hiwater_set}: EINVAL else). */
    private void writeHighWater(String text) {
        String value = text.strip();
        long parsed;
        try {
            parsed = Long.parseUnsignedLong(value);
        } catch (NumberFormatException e) {
            throw new IommuException(Errno.EINVAL, "io_tlb_used_hiwater: " + value + " is not a number: only 0"
                    + " may be written, to reset the mark");
        }
        if (parsed != 0) {
            throw new IommuException(Errno.EINVAL, "io_tlb_used_hiwater: only 0 may be written (to reset the"
                    + " mark), not " + value);
        }
        if (mem != null) {
            mem.resetHighWater();
        }
    }

    /** One line per area of the default pool: {@code <area> <used>/<slots> hiwater <n>}. */
    private String areaUsage() {
        StringBuilder out = new StringBuilder();
        if (pool != null) {
            for (BounceAreaStats a : pool.areaStats()) {
                out.append(a.index()).append(' ').append(a.usedSlots()).append('/').append(a.totalSlots())
                        .append(" hiwater ").append(a.highWaterSlots()).append('\n');
            }
        }
        return out.toString();
    }

    /** One line per pool, newest first: range, slots, areas, used, and default, dynamic or transient. */
    private String poolList() {
        StringBuilder out = new StringBuilder();
        if (mem != null) {
            for (SwiotlbPool p : mem.transientPools()) {
                out.append(describe(p, "transient"));
            }
            for (SwiotlbPool p : mem.pools()) {
                out.append(describe(p, p == pool ? "default" : "dynamic"));
            }
        }
        return out.toString();
    }

    private static String describe(SwiotlbPool p, String kind) {
        return String.format("[mem 0x%016x-0x%016x] %d slots %d areas %d used %s%n", p.start(), p.end(), p.nslabs(),
                p.nareas(), p.usedSlots(), kind);
    }

    /**
     * Unload: refused with EBUSY, changing nothing, while a bounce slot is held, a map is under way, or a
     * mapping made through these ops is live; else the ops go, then the exported {@link BounceBufferPool}, then
     * the VFIO driver and iommu ops, then the pools' memory.
     */
    @Override
    public void stop() {
        if (mem != null) {
            mem.close();
        }
        try {
            kernel.dma().clearDefaultOps(dma);
        } catch (RuntimeException e) {
            if (mem != null) {
                mem.reopen();
            }
            throw e;
        }
        if (pool != null) {
            kernel.symbols().unexport(BounceBufferPool.class);
        }
        kernel.vfio().unregister(vfio);
        if (iommuEnabled) {
            kernel.iommu().unregisterOps(BusType.PCI, iommuOps);
        }
        freePool();
    }

    private void freePool() {
        if (mem != null) {
            if (!mem.isClosed()) {
                mem.close();
            }
            mem.freeAll(() -> kernel.pageAllocator().freeContiguous(pool.start(), poolPages));
        }
    }
}
