package org.iommu4j.backend.swiotlb;

import java.util.List;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
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
    private final KernelServices kernel;
    private final SwiotlbConfig config;
    private final SwiotlbPool pool;
    private final SwiotlbDmaOps dma;
    private final PciSlotList slots;
    private final SwiotlbIommuOps iommuOps;
    private final SwiotlbVfioDriver vfio;
    private volatile boolean iommuEnabled;

    SwiotlbBackend(KernelServices kernel) {
        this.kernel = kernel;
        this.config = SwiotlbConfig.from(kernel);
        this.slots = new PciSlotList(kernel.parameters().get("hide"));
        if (config.disabled()) {
            pool = null;
            kernel.log().log(LogLevel.INFO, "swiotlb=noforce: no bounce pool; unreachable buffers are refused");
        } else {
            long pages = config.bytes() >>> PhysicalMemory.PAGE_SHIFT;
            long limit = config.limit() == 0 ? PageAllocator.NO_LIMIT : config.limit();
            long start = kernel.pageAllocator().allocateContiguous(pages, limit);
            pool = new SwiotlbPool(kernel, start, config.nslabs(), config.nareas());
            kernel.log().withPrefix("software IO TLB").log(LogLevel.INFO, String.format(
                    "mapped [mem 0x%016x-0x%016x] (%dMB)", pool.start(),
                    pool.end() - 1, config.bytes() >> 20));
        }
        this.dma = new SwiotlbDmaOps(kernel, pool, config.force());
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

    /** Takes assigned devices out of their groups; refused, with nothing changed, while VFIO holds one. */
    private void disableIommu() {
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

    /** @return the pool, or null with swiotlb=noforce */
    SwiotlbPool pool() {
        return pool;
    }

    @Override
    public List<ModuleAttribute> attributes() {
        return List.of(
                ModuleAttribute.readOnly("io_tlb_nslabs", () -> Long.toString(pool == null ? 0 : pool.nslabs())),
                ModuleAttribute.readOnly("io_tlb_used", () -> Long.toString(pool == null ? 0 : pool.stats().usedSlots())),
                ModuleAttribute.readOnly("io_tlb_used_hiwater",
                        () -> Long.toString(pool == null ? 0 : pool.stats().highWaterSlots())),
                ModuleAttribute.readOnly("io_tlb_nareas", () -> Long.toString(pool == null ? 0 : pool.nareas())),
                ModuleAttribute.readOnly("bounced_bytes_to_device",
                        () -> Long.toString(pool == null ? 0 : pool.stats().bytesToDevice())),
                ModuleAttribute.readOnly("bounced_bytes_from_device",
                        () -> Long.toString(pool == null ? 0 : pool.stats().bytesFromDevice())),
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

    @Override
    public void stop() {
        kernel.vfio().unregister(vfio);
        if (iommuEnabled) {
            kernel.iommu().unregisterOps(BusType.PCI, iommuOps);
        }
        kernel.dma().clearDefaultOps(dma);
        freePool();
    }

    private void freePool() {
        if (pool != null) {
            kernel.pageAllocator().freeContiguous(pool.start(), config.bytes() >>> PhysicalMemory.PAGE_SHIFT);
        }
    }
}
