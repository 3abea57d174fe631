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

/**
 * The running xen module. At start it registers the guest's IOMMU driver, which puts every PCI device behind the
 * hypervisor's IOMMU: the guest's own in its DMA context, every other one blocked (each logged once as its
 * blocked group is made). Only then, so that a refused registration leaves nothing done, does it make swiotlb's
 * pool machine-contiguous segment by segment ({@code xen_swiotlb_fixup}) and install xen-swiotlb as every PCI
 * device's DMA ops. The PCI bus cannot have two IOMMU drivers: with the SWIOTLB-IOMMU enabled
 * ({@code swiotlb.enable_unsafe_swiotlb_iommu=1}) xen refuses to load with {@link Errno#EBUSY} and says to turn
 * it off.
 *
 * <p>Which devices are the guest's is pciback's business ({@link PcibackStub}): its slot list comes from
 * {@code xen-pciback.hide=} on the kernel command line and this module's own {@code hide} parameter, and the
 * stub seizes the listed devices present at load and listed devices that appear later. Its attributes are
 * pciback's {@code slots}, {@code new_slot} and {@code remove_slot}, which change the list only, and
 * {@code bind}/{@code unbind}, which stand for the PCI core's {@code bind}/{@code unbind} files of the
 * {@code pciback} driver: {@code bind} seizes one listed device, as {@code pcistub_probe} seizes only devices on
 * its slot list ({@link Errno#ENODEV} for any other: write it to {@code new_slot} first), and {@code unbind}
 * lets one go. A seized device is assigned to the guest; a device let go of is blocked again. A device the
 * hypervisor will not assign (another domain has it) is not kept: {@code bind} fails with the hypervisor's
 * refusal and the device stays blocked. {@code unbind} is refused with {@link Errno#EBUSY} while a driver is
 * bound to the device. The stub seizes a listed device on its first probe, so a hot-added one joins the
 * guest's context directly.
 *
 * <p>VFIO cannot take a device the guest was not given: its IOMMU context reports no
 * {@link org.iommu4j.api.IommuCapability#CACHE_COHERENCY}, so binding {@code vfio-pci} to it fails with
 * {@link Errno#EINVAL}, as the kernel's VFIO refuses such a device.
 */
public final class XenBackend implements Backend {
    private static final int SEGMENT_ORDER = 6; // 128 slots of 2 KiB = 64 pages
    private static final long DOM0_PAGES = (64L << 20) >>> PhysicalMemory.PAGE_SHIFT;

    private final KernelServices kernel;
    private final XenHypervisor hypervisor;
    private final XenDomain guest;
    private final PcibackStub stub;
    private final XenIommuOps iommuOps;
    private final XenSwiotlbDmaOps dma;
    private final BusListener hotplug;

    XenBackend(KernelServices kernel, XenHypervisor given, XenDomain givenGuest) {
        this.kernel = kernel;
        this.stub = new PcibackStub(kernel.commandLine().get("xen-pciback.hide").orElse(""),
                kernel.parameters().get("hide"));
        BounceBufferPool pool = bouncePool(kernel);
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
        this.iommuOps = new XenIommuOps(kernel, hypervisor, guest, stub);
        // registered before anything else is done, so that a refusal leaves nothing behind; the first probe of a
        // listed device seizes it (pciback's probe), so the guest's devices go straight into its context
        registerOps(kernel, iommuOps);
        boolean force = kernel.parameters().getBool("force") || swiotlbForce(kernel);
        this.dma = new XenSwiotlbDmaOps(kernel, hypervisor, guest, pool, iommuOps, force);
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
                    stub.release(a);
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
        kernel.log().log(LogLevel.INFO, "running as " + guest + " on a hypervisor with " + hypervisor.machineFrames()
                + " machine frames; the hypervisor owns the IOMMU");
    }

    /**
     * Registers the guest's IOMMU driver for the PCI bus. The SWIOTLB-IOMMU ({@code swiotlb} loaded with
     * {@code enable_unsafe_swiotlb_iommu=1}) may own the bus already; the core would say to unload swiotlb,
     * which xen cannot do without, so say what can be done instead.
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

    /**
     * swiotlb's pool, which xen-swiotlb cannot do without. With {@code swiotlb=noforce} swiotlb makes none and
     * exports none, and the bare "Unknown symbol" would not say why: say it.
     */
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

    /**
     * {@code is_swiotlb_force_bounce}: {@code swiotlb=force}, or {@code swiotlb=<nslabs>[,<nareas>],force}, on the
     * kernel command line (swiotlb itself refuses to load with a malformed word).
     */
    private static boolean swiotlbForce(KernelServices kernel) {
        return swiotlbWords(kernel).contains("force");
    }

    /**
     * Changes who holds a device and has the iommu core probe it again, so that it moves between the guest's
     * context and a blocked group; if that is refused (a VFIO user holds it: {@link Errno#EBUSY}), the change
     * is undone, the device is left in a group, and the refusal thrown. If the hypervisor refuses to assign a
     * device being seized, the probe has let it go (it sits in a blocked group) and the hypervisor's refusal is
     * thrown.
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

    /**
     * The PCI core's {@code bind}/{@code unbind} name one device: {@code DDDD:BB:SS.F} (or {@code BB:SS.F}), no
     * wildcards. Each refusal is {@link Errno#EINVAL} and says, for the attribute written, what to write instead.
     *
     * @param op {@code bind} or {@code unbind}
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

    /**
     * The PCI core's {@code bind} of pciback: {@code pcistub_probe} seizes only a device on the slot list, and the
     * hypervisor must agree to assign it ({@link Errno#EBUSY} if another domain has it).
     */
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
        changeOwnership(d, () -> stub.seize(a), () -> stub.release(a));
    }

    /**
     * The PCI core's {@code unbind} of pciback: lets one seized device go; it stays on the slot list. Refused with
     * {@link Errno#EBUSY} while a driver (vfio-pci, a host driver) is bound to the device: taking the device from
     * the guest would take its iommu group, and with it the driver, away without a word.
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
        changeOwnership(d, () -> stub.release(a), () -> stub.seize(a));
    }

    @Override
    public List<ModuleAttribute> attributes() {
        return List.of(
                ModuleAttribute.readOnly("slots", stub::slots),
                new ModuleAttribute("new_slot", () -> "", text -> stub.add(PciSlotPattern.parse(text.strip()))),
                new ModuleAttribute("remove_slot", () -> "",
                        text -> stub.remove(PciSlotPattern.parse(text.strip()))),
                new ModuleAttribute("bind", () -> "", this::bind),
                new ModuleAttribute("unbind", () -> "", this::unbind),
                ModuleAttribute.readOnly("machine_frames_free", () -> Long.toString(hypervisor.freeFrames())));
    }

    /** @return the guest's IOMMU driver */
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
        List<Device> devices = kernel.devices().devices(BusType.PCI);
        Map<Device, String> drivers = new LinkedHashMap<>();
        for (Device d : devices) {
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
