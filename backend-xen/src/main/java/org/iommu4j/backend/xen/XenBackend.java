package org.iommu4j.backend.xen;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciSlotPattern;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.XenHypercalls;

/**
 * The running xen module, a Xen domain's DMA driver. It loads only under Xen: on bare metal it fails with
 * {@link Errno#ENODEV}, as {@code pci_xen_swiotlb_init} does nothing and {@code xen_pcibk_init} returns
 * {@code -ENODEV} when the kernel is not a Xen domain (Linux v6.12 {@code arch/x86/kernel/pci-dma.c},
 * {@code drivers/xen/xen-pciback/pci_stub.c}). At start it registers the IOMMU driver ({@link XenIommuOps});
 * only then, so that a refused registration leaves nothing done, does it make swiotlb's pool
 * machine-contiguous segment by segment ({@code xen_swiotlb_fixup}) and install xen-swiotlb as every PCI
 * device's DMA ops. The PCI bus cannot have two IOMMU drivers: with the SWIOTLB-IOMMU enabled xen refuses to
 * load with {@link Errno#EBUSY} and says to turn it off.
 *
 * <p>In Domain-0 it is also xen-pciback's stub ({@link PcibackStub}): its slot list comes from
 * {@code xen-pciback.hide=} and this module's {@code hide}; the stub seizes the listed devices present at load
 * and listed devices that appear later, and the hypervisor quarantines each seized device until the toolstack
 * gives it to a guest. Its attributes are pciback's {@code slots}, {@code new_slot} and {@code remove_slot},
 * which change the list only, and {@code bind}/{@code unbind}, which stand for the PCI core's
 * {@code bind}/{@code unbind} files of the {@code pciback} driver: {@code bind} seizes one listed device, as
 * {@code pcistub_probe} seizes only devices on its slot list ({@link Errno#ENODEV} for any other), and
 * {@code unbind} lets one go ({@link Errno#EBUSY} while a driver of Domain-0 is bound to it). Letting go of a
 * device a guest still has warns as {@code pcistub_remove} does, and the guest keeps it.
 */
public final class XenBackend implements Backend {
    private static final int SEGMENT_ORDER = 6; // 128 slots of 2 KiB = 64 pages

    private final KernelServices kernel;
    private final XenHypercalls xen;
    private final PcibackStub stub;
    private final XenIommuOps iommuOps;
    private final XenSwiotlbDmaOps dma;
    private final BusListener hotplug;

    XenBackend(KernelServices kernel) {
        this.kernel = kernel;
        this.xen = kernel.xen().orElseThrow(() -> {
            String message = "xen: not running on Xen (xen_domain() is false): xen-swiotlb and the Xen IOMMU driver"
                    + " drive a Xen domain's devices only; boot this kernel as a domain of a Xen platform";
            kernel.log().log(LogLevel.ERR, message);
            return new IommuException(Errno.ENODEV, message);
        });
        String hide = kernel.commandLine().get("xen-pciback.hide").orElse("") + kernel.parameters().get("hide");
        if (xen.isInitialDomain()) {
            this.stub = new PcibackStub(kernel.commandLine().get("xen-pciback.hide").orElse(""),
                    kernel.parameters().get("hide"));
        } else {
            this.stub = null;
            if (!hide.isBlank()) {
                kernel.log().log(LogLevel.WARNING, "xen: d" + xen.domainId() + " is not the initial domain:"
                        + " xen-pciback.hide is ignored (pciback runs in Domain-0, which gives devices to guests)");
            }
        }
        BounceBufferPool pool = bouncePool(kernel);
        this.iommuOps = new XenIommuOps(kernel, xen, stub);
        registerOps(kernel, iommuOps);
        boolean force = kernel.parameters().getBool("force") || swiotlbWords(kernel).contains("force");
        this.dma = new XenSwiotlbDmaOps(kernel, xen, pool, iommuOps, force);
        this.hotplug = new BusListener() {
            @Override
            public void deviceAdded(Device device) {
                if (device.bus() == BusType.PCI) {
                    kernel.dma().setDeviceOps(device, dma);
                }
            }

            @Override
            public void deviceRemoved(Device device) {
                device.pciAddress().ifPresent(a -> {
                    if (stub != null) {
                        stub.release(a);
                    }
                    iommuOps.forget(a);
                });
            }
        };
        try {
            fixupPool(pool);
        } catch (RuntimeException e) {
            kernel.iommu().unregisterOps(BusType.PCI, iommuOps);
            throw e;
        }
        for (Device d : kernel.devices().devices(BusType.PCI)) {
            kernel.dma().setDeviceOps(d, dma);
        }
        kernel.devices().addListener(hotplug);
        kernel.log().log(LogLevel.INFO, "running as d" + xen.domainId() + (xen.isInitialDomain() ? " (Domain-0,"
                + " with pciback)" : "") + "; the hypervisor owns the IOMMU");
    }

    /**
     * Registers the IOMMU driver for the PCI bus. The SWIOTLB-IOMMU ({@code swiotlb} loaded with
     * {@code enable_unsafe_swiotlb_iommu=1}) may own the bus already: say what can be done instead.
     */
    private static void registerOps(KernelServices kernel, XenIommuOps ops) {
        try {
            kernel.iommu().registerOps(BusType.PCI, ops);
        } catch (IommuException e) {
            if (e.errno() != Errno.EBUSY || !kernel.iommu().opsOwner(BusType.PCI).filter("swiotlb"::equals)
                    .isPresent()) {
                throw e;
            }
            String message = "xen: the pci bus's IOMMU ops are the SWIOTLB-IOMMU's (swiotlb was loaded with"
                    + " enable_unsafe_swiotlb_iommu=1): set swiotlb.enable_unsafe_swiotlb_iommu=0 (xen and the"
                    + " SWIOTLB-IOMMU cannot both drive the PCI bus)";
            kernel.log().log(LogLevel.ERR, message);
            throw new IommuException(Errno.EBUSY, message, e);
        }
    }

    /** swiotlb's pool, which xen-swiotlb cannot do without; with {@code swiotlb=noforce} there is none: say so. */
    private static BounceBufferPool bouncePool(KernelServices kernel) {
        try {
            return kernel.symbols().lookup(BounceBufferPool.class);
        } catch (IommuException e) {
            if (e.errno() != Errno.ENOENT || !swiotlbWords(kernel).contains("noforce")) {
                throw e;
            }
            String message = "xen: xen-swiotlb needs the swiotlb bounce pool, but swiotlb=noforce on the kernel"
                    + " command line left swiotlb without one: remove swiotlb=noforce";
            kernel.log().log(LogLevel.ERR, message);
            throw new IommuException(Errno.ENOENT, message);
        }
    }

    /** The comma-separated words of {@code swiotlb=} on the kernel command line. */
    private static List<String> swiotlbWords(KernelServices kernel) {
        return kernel.commandLine().get("swiotlb").map(v -> List.of(v.split(",", -1))).orElse(List.of());
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
            xen.exchange(at >>> PhysicalMemory.PAGE_SHIFT, SEGMENT_ORDER, 32);
        }
        kernel.log().log(LogLevel.INFO, "swiotlb pool made machine-contiguous below 4 GiB: " + n + " segments");
    }

    /**
     * Seizes or lets go of a device in pciback and has the iommu core probe it again, so that it moves between
     * Domain-0's DMA domain and a blocked group; a refusal (a VFIO user holds it, or the hypervisor will not
     * quarantine it) undoes the change and is thrown.
     */
    private void changeOwnership(Device device, Runnable change, Runnable undo) {
        PciAddress a = device.pciAddress().orElseThrow();
        iommuOps.takeRefusal(a);
        change.run();
        try {
            kernel.iommu().reprobe(device);
        } catch (RuntimeException e) {
            undo.run();
            if (kernel.iommu().groupOf(device).isEmpty()) {
                try {
                    kernel.iommu().reprobe(device);
                } catch (RuntimeException again) {
                    e.addSuppressed(again);
                }
            }
            throw e;
        }
        IommuException refused = iommuOps.takeRefusal(a).orElse(null);
        if (refused != null) {
            undo.run();
            throw new IommuException(refused.errno(), refused.getMessage(), refused);
        }
    }

    /**
     * The PCI core's {@code bind}/{@code unbind} name one device: {@code DDDD:BB:SS.F} (or {@code BB:SS.F}), no
     * wildcards. Each refusal is {@link Errno#EINVAL} and says what to write instead.
     */
    private static PciAddress exact(String op, String text) {
        PciSlotPattern p;
        try {
            p = PciSlotPattern.parse(text.strip());
        } catch (IommuException e) {
            throw new IommuException(Errno.EINVAL, op + " takes one device, DDDD:BB:SS.F or BB:SS.F in hex without"
                    + " wildcards; '" + text.strip() + "' is not one");
        }
        if (p.slot() == PciSlotPattern.ANY || p.function() == PciSlotPattern.ANY) {
            throw new IommuException(Errno.EINVAL, op + " takes one device, DDDD:BB:SS.F without wildcards; "
                    + (op.equals("bind") ? "use new_slot for " + p : "unbind the devices " + p
                            + " covers one at a time"));
        }
        return new PciAddress(p.domain(), p.bus(), p.slot(), p.function());
    }

    private Device present(PciAddress a) {
        return kernel.devices().find(a).orElseThrow(() -> new IommuException(Errno.ENODEV, "pciback: no PCI device"
                + " at " + a));
    }

    private void bind(String text) {
        PciAddress a = exact("bind", text);
        Device d = present(a);
        if (!stub.listed(a)) {
            throw new IommuException(Errno.ENODEV, "pciback: " + a + " is not on the slot list: write it to new_slot"
                    + " first");
        }
        if (stub.isSeized(a)) {
            throw new IommuException(Errno.EBUSY, "pciback: " + a + " is already bound to pciback");
        }
        String driver = kernel.devices().driverOf(d).orElse(null);
        if (driver != null) {
            throw new IommuException(Errno.EBUSY, "pciback: " + a + " is bound to " + driver + ": unbind " + driver
                    + " first");
        }
        changeOwnership(d, () -> stub.seize(a), () -> stub.release(a));
    }

    /**
     * Lets a seized device go; it stays on the slot list and is Domain-0's again. A device a guest still has
     * stays the guest's: {@code pcistub_remove} warns that the guest may still use it.
     */
    private void unbind(String text) {
        PciAddress a = exact("unbind", text);
        Device d = present(a);
        if (!stub.isSeized(a)) {
            throw new IommuException(Errno.ENODEV, "pciback: " + a + " is not bound to pciback");
        }
        String driver = kernel.devices().driverOf(d).orElse(null);
        if (driver != null) {
            throw new IommuException(Errno.EBUSY, "pciback: " + a + " is bound to " + driver + ": unbind " + driver
                    + " first");
        }
        try {
            xen.setAssignable(d, false);
        } catch (IommuException e) {
            if (e.errno() != Errno.EBUSY) {
                throw e;
            }
            for (String line : List.of("****** removing device " + a + " while still in-use by a guest! ******",
                    "****** driver domain may still access this device's i/o resources!",
                    "****** shutdown driver domain before binding device", "****** to other drivers or domains")) {
                kernel.log().log(LogLevel.WARNING, line);
            }
        }
        changeOwnership(d, () -> stub.release(a), () -> stub.seize(a));
    }

    @Override
    public List<ModuleAttribute> attributes() {
        if (stub == null) {
            return List.of();
        }
        return List.of(
                ModuleAttribute.readOnly("slots", stub::slots),
                new ModuleAttribute("new_slot", () -> "", text -> stub.add(PciSlotPattern.parse(text.strip()))),
                new ModuleAttribute("remove_slot", () -> "",
                        text -> stub.remove(PciSlotPattern.parse(text.strip()))),
                new ModuleAttribute("bind", () -> "", this::bind),
                new ModuleAttribute("unbind", () -> "", this::unbind));
    }

    /** @return the domain's IOMMU driver */
    XenIommuOps iommuOps() {
        return iommuOps;
    }

    /**
     * Unloads: the devices leave their groups. The module's reference count keeps xen loaded while a VFIO user
     * holds a group, but not while vfio-pci is merely bound: such a device loses its driver with its group, and
     * each one is logged.
     */
    @Override
    public void stop() {
        kernel.devices().removeListener(hotplug);
        Map<Device, String> drivers = new LinkedHashMap<>();
        for (Device d : kernel.devices().devices(BusType.PCI)) {
            kernel.dma().clearDeviceOps(d);
            kernel.devices().driverOf(d).ifPresent(driver -> drivers.put(d, driver));
        }
        kernel.iommu().unregisterOps(BusType.PCI, iommuOps);
        drivers.forEach((d, driver) -> {
            if (kernel.devices().driverOf(d).isEmpty()) {
                kernel.log().log(LogLevel.WARNING, "xen: unloading took " + d.name() + " from " + driver + ": its"
                        + " iommu group went away with xen's IOMMU driver");
            }
        });
    }
}
