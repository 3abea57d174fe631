package org.iommu4j.backend.xen;

import java.util.List;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.BusListener;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.api.PciSlotList;
import org.iommu4j.api.PciSlotPattern;
import org.iommu4j.api.PhysicalMemory;

/**
 * The running xen module. At start it makes swiotlb's pool machine-contiguous segment by segment
 * ({@code xen_swiotlb_fixup}), installs xen-swiotlb as every PCI device's DMA ops and registers the guest's
 * IOMMU driver. Its attributes are pciback's: {@code slots}, {@code new_slot}, {@code remove_slot}, and
 * {@code bind}/{@code unbind} for one exact device.
 */
public final class XenBackend implements Backend {
    private static final int SEGMENT_ORDER = 6; // 128 slots of 2 KiB = 64 pages
    private static final long DOM0_PAGES = (64L << 20) >>> PhysicalMemory.PAGE_SHIFT;

    private final KernelServices kernel;
    private final XenHypervisor hypervisor;
    private final XenDomain guest;
    private final PciSlotList slots;
    private final XenIommuOps iommuOps;
    private final XenSwiotlbDmaOps dma;
    private final BusListener hotplug;

    XenBackend(KernelServices kernel, XenHypervisor given, XenDomain givenGuest) {
        this.kernel = kernel;
        this.slots = new PciSlotList(kernel.parameters().get("hide"));
        if (given == null) {
            String layout = kernel.parameters().get("p2m");
            P2mLayout p2m = switch (layout) {
                case "scattered" -> P2mLayout.scattered(kernel.parameters().getLong("p2m_seed"));
                case "contiguous" -> P2mLayout.contiguous();
                default -> throw new IommuException(Errno.EINVAL, "xen.p2m=" + layout + " is invalid: expected"
                        + " scattered or contiguous");
            };
            long guestPages = kernel.memory().size() >>> PhysicalMemory.PAGE_SHIFT;
            long machineMb = kernel.parameters().getLong("machine_mb");
            long frames = machineMb != 0 ? machineMb << 8 : 2 * guestPages + DOM0_PAGES;
            this.hypervisor = new XenHypervisor(frames);
            hypervisor.createDomain("Domain-0", DOM0_PAGES, P2mLayout.contiguous());
            this.guest = hypervisor.createGuest("guest", kernel.memory(), p2m);
        } else {
            this.hypervisor = given;
            this.guest = givenGuest;
        }
        BounceBufferPool pool = kernel.symbols().lookup(BounceBufferPool.class);
        fixupPool(pool);
        this.iommuOps = new XenIommuOps(hypervisor, guest, slots);
        this.dma = new XenSwiotlbDmaOps(kernel, hypervisor, guest, pool, slots,
                kernel.parameters().getBool("force"));
        this.hotplug = new BusListener() {
            @Override
            public void deviceAdded(Device device) {
                if (device.bus() == BusType.PCI) {
                    kernel.dma().setDeviceOps(device, dma);
                }
            }
        };
        kernel.iommu().registerOps(BusType.PCI, iommuOps);
        for (Device d : kernel.devices().devices(BusType.PCI)) {
            kernel.dma().setDeviceOps(d, dma);
        }
        kernel.devices().addListener(hotplug);
        kernel.log().log(LogLevel.INFO, "running as " + guest + " on a hypervisor with " + hypervisor.machineFrames()
                + " machine frames; the hypervisor owns the IOMMU");
    }

    /** {@code xen_swiotlb_fixup}: each pool segment becomes one machine-contiguous run below 4 GiB. */
    private void fixupPool(BounceBufferPool pool) {
        long segment = PhysicalMemory.PAGE_SIZE << SEGMENT_ORDER;
        if ((pool.start() & (segment - 1)) != 0) {
            throw new IommuException(Errno.EINVAL, String.format("xen: the swiotlb pool at 0x%x is not aligned to"
                    + " its %d-byte segments", pool.start(), segment));
        }
        int n = 0;
        for (long at = pool.start(); at < pool.end(); at += segment, n++) {
            hypervisor.exchangeContiguous(guest, at >>> PhysicalMemory.PAGE_SHIFT, SEGMENT_ORDER, 32);
        }
        kernel.log().log(LogLevel.INFO, "swiotlb pool made machine-contiguous below 4 GiB: " + n + " segments");
    }

    /** @return the hypervisor */
    public XenHypervisor hypervisor() {
        return hypervisor;
    }

    /** @return the domain the host runs as */
    public XenDomain guest() {
        return guest;
    }

    private static PciSlotPattern exact(String text) {
        PciSlotPattern p = PciSlotPattern.parse(text.strip());
        if (p.slot() == PciSlotPattern.ANY || p.function() == PciSlotPattern.ANY) {
            throw new IommuException(Errno.EINVAL, "bind takes one device, DDDD:BB:SS.F without wildcards; use"
                    + " new_slot for " + p);
        }
        return p;
    }

    @Override
    public List<ModuleAttribute> attributes() {
        return List.of(
                ModuleAttribute.readOnly("slots", slots::toString),
                new ModuleAttribute("new_slot", () -> "", text -> {
                    PciSlotPattern p = PciSlotPattern.parse(text.strip());
                    slots.update(kernel, p, list -> list.add(p), true);
                }),
                new ModuleAttribute("remove_slot", () -> "", text -> {
                    PciSlotPattern p = PciSlotPattern.parse(text.strip());
                    slots.update(kernel, p, list -> list.remove(p), true);
                }),
                new ModuleAttribute("bind", () -> "", text -> {
                    PciSlotPattern p = exact(text);
                    slots.update(kernel, p, list -> list.add(p), true);
                }),
                new ModuleAttribute("unbind", () -> "", text -> {
                    PciSlotPattern p = exact(text);
                    slots.update(kernel, p, list -> list.remove(p), true);
                }),
                ModuleAttribute.readOnly("machine_frames_free", () -> Long.toString(hypervisor.freeFrames())));
    }

    @Override
    public void stop() {
        kernel.devices().removeListener(hotplug);
        for (Device d : kernel.devices().devices(BusType.PCI)) {
            kernel.dma().clearDeviceOps(d);
        }
        kernel.iommu().unregisterOps(BusType.PCI, iommuOps);
    }
}
