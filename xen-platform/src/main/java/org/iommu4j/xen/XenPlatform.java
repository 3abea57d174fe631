package org.iommu4j.xen;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.UnaryOperator;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.log.KernelLogBuffer;

/**
 * A machine running the Xen hypervisor: machine memory, the physical PCI devices, the hypervisor's IOMMU, and
 * domains, each running a kernel of its own ({@link XenDomain#host()}). Domain-0, the initial domain, is made
 * with the platform and sees every physical device; a guest sees only the devices the toolstack gave it
 * ({@link #attach}). A domain's physical memory is pseudo-physical, backed by machine frames through its p2m.
 *
 * <p>Devices reach memory only through the hypervisor's IOMMU, and there only what their domain mapped for
 * them by hypercall: a device of one guest cannot touch another's frames, nor Domain-0's, and a device whose
 * kernel attached no context (no driver uses it, or its VFIO group was never opened) reaches nothing. Every
 * IOMMU fault is in the hypervisor's {@link #log()}, with the device and the domain, as {@code xl dmesg} shows
 * them.
 *
 * <p>The model's bookkeeping is sparse ({@link #bookkeepingBytes()}): per 2 MiB extent of machine memory, not
 * per frame, so a 64 GiB guest costs a few hundred KiB until it is written.
 */
public final class XenPlatform {
    /** Default machine memory: 256 GiB (sparse: it costs nothing until written). */
    public static final long DEFAULT_MACHINE_MEMORY = 256L << 30;
    /** Default memory of Domain-0: 512 MiB. */
    public static final long DEFAULT_DOM0_MEMORY = 512L << 20;
    private static final long EXTENT_BYTES = (long) P2mLayout.EXTENT << PhysicalMemory.PAGE_SHIFT;

    private final List<XenDomain> domains = new CopyOnWriteArrayList<>();
    private final MachineFrames machine;
    private final KernelLogBuffer log;
    private final XenIommu iommu;
    private final List<PciDeviceSpec> specs;
    private final P2mLayout defaultLayout;
    private final int cpus;

    private XenPlatform(Builder b) {
        this.log = new KernelLogBuffer(b.logCapacity, System::nanoTime);
        this.machine = new MachineFrames(b.machineMemory, domains);
        this.iommu = new XenIommu(machine, log, domains);
        this.specs = List.copyOf(b.devices);
        this.defaultLayout = b.layout;
        this.cpus = b.cpus;
        log.log(LogLevel.INFO, String.format("(XEN) Xen version 4.19 (iommu4j): %d MiB of machine memory, %d PCI"
                + " devices, I/O virtualisation enabled", b.machineMemory >> 20, specs.size()));
        specs.forEach(iommu::addDevice);
        XenDomain dom0 = createDomain("Domain-0", b.dom0Memory, b.layout);
        Host.Builder hb = Host.builder().domainOf(dom0).cpus(cpus).commandLine(b.dom0CommandLine);
        specs.forEach(hb::pciDevice);
        dom0.boot(hb.build());
    }

    /** @return a builder: 256 GiB of machine memory, Domain-0 of 512 MiB, no devices, scattered p2m */
    public static Builder builder() {
        return new Builder();
    }

    /** @return Domain-0 */
    public XenDomain dom0() {
        return domains.get(0);
    }

    /** @return the domains, by id */
    public List<XenDomain> domains() {
        return List.copyOf(domains);
    }

    /** @return the hypervisor's log: its IOMMU faults, with device and domain, and assignments */
    public KernelLogBuffer log() {
        return log;
    }

    private XenDomain createDomain(String name, long bytes, P2mLayout layout) {
        if (bytes < (16L << 20) || bytes % EXTENT_BYTES != 0) {
            throw new IommuException(Errno.EINVAL, "xen: memory of " + name + " (" + bytes + " bytes) is invalid:"
                    + " expected a multiple of 2 MiB, at least 16 MiB");
        }
        synchronized (machine) {
            int id = domains.size();
            int extents = (int) (bytes / EXTENT_BYTES);
            long[] extentMfns = machine.populate(id, name, extents);
            layout.orderExtents(extentMfns);
            XenDomain d = new XenDomain(id, name, bytes >>> PhysicalMemory.PAGE_SHIFT, extentMfns, layout, machine,
                    iommu);
            domains.add(d);
            for (int i = 0; i < extents; i++) {
                machine.bind(id, extentMfns[i], i);
            }
            log.log(LogLevel.INFO, String.format("(XEN) d%d (%s): %d MiB populated, p2m %s", id, name, bytes >> 20,
                    layout));
            return d;
        }
    }

    /**
     * Creates a guest and boots its kernel, with no devices: give it some with {@link #attach}.
     *
     * @param name the guest's name
     * @param memoryBytes its memory, a multiple of 2 MiB, at least 16 MiB
     * @param commandLine its kernel command line
     * @return the guest
     * @throws IommuException {@link Errno#ENOMEM} when machine memory is short, {@link Errno#EINVAL} for a bad size;
     *     {@link org.iommu4j.api.InvalidParameterException} for a malformed command line. A guest that does not
     *     boot is destroyed: the machine is left as it was
     */
    public XenDomain createGuest(String name, long memoryBytes, String commandLine) {
        return createGuest(name, memoryBytes, commandLine, defaultLayout, UnaryOperator.identity());
    }

    /**
     * @param name the guest's name
     * @param memoryBytes its memory, a multiple of 2 MiB, at least 16 MiB
     * @param commandLine its kernel command line
     * @param layout how its pages lie in machine memory
     * @param host more settings for its kernel (log capacity, DMA-API debug, clock)
     * @return the guest
     * @see #createGuest(String, long, String)
     */
    public XenDomain createGuest(String name, long memoryBytes, String commandLine, P2mLayout layout,
            UnaryOperator<Host.Builder> host) {
        synchronized (machine) {
            XenDomain d = createDomain(name, memoryBytes, layout);
            try {
                d.boot(host.apply(Host.builder().domainOf(d).cpus(cpus).commandLine(commandLine)).build());
            } catch (RuntimeException e) {
                // a kernel that does not boot leaves the machine as it was
                domains.remove(d);
                machine.unpopulate(d.extents());
                log.log(LogLevel.INFO, "(XEN) " + d + ": destroyed, its kernel did not boot: " + e.getMessage());
                throw e;
            }
            return d;
        }
    }

    /**
     * A physical device is hot-plugged: the hypervisor gives it an entry (Domain-0's) and it appears on
     * Domain-0's bus.
     *
     * @param spec the device
     */
    public void hotAdd(PciDeviceSpec spec) {
        iommu.addDevice(spec);
        dom0().host().buses().addPci(spec);
    }

    /**
     * {@code xl pci-attach}: gives a guest a device Domain-0's pciback holds for guests; the device appears on
     * the guest's PCI bus (pcifront), at the same address.
     *
     * @param device the device's address, {@code DDDD:BB:SS.F}
     * @param guest the guest
     * @throws IommuException {@link Errno#EINVAL} when pciback does not hold it, {@link Errno#EBUSY} when another
     *     guest has it, {@link Errno#ENODEV} for no such device
     */
    public void attach(String device, XenDomain guest) {
        if (guest.domid() == 0) {
            throw new IommuException(Errno.EINVAL, "xl: Domain-0 has every device already; attach " + device
                    + " to a guest");
        }
        XenIommu.PhysicalDevice p = iommu.device(device);
        iommu.assign(device, guest);
        try {
            guest.host().buses().addPci(p.spec);
        } catch (RuntimeException e) {
            iommu.deassign(device);
            throw e;
        }
    }

    /**
     * {@code xl pci-detach}: takes a device back from its guest once the guest let it go (no driver bound to it
     * there); it leaves the guest's bus and is quarantined again for the next guest.
     *
     * @param device the device's address
     * @throws IommuException {@link Errno#EBUSY} while a driver in the guest has it, {@link Errno#EINVAL} when no
     *     guest has it
     */
    public void detach(String device) {
        int owner = iommu.ownerOf(device);
        if (owner <= 0 || owner == XenIommu.DOMID_IO) {
            iommu.device(device);
            throw new IommuException(Errno.EINVAL, "xl: " + device + " is not assigned to a guest ("
                    + iommu.ownerName(owner) + " has it)");
        }
        Host guest = domains.get(owner).host();
        Optional<BusDevice> there = guest.buses().find(device);
        String driver = there.map(BusDevice::driver).orElse(null);
        if (driver != null) {
            throw new IommuException(Errno.EBUSY, "xl: " + device + " is in use in " + domains.get(owner) + " by "
                    + driver + ": unbind it there first");
        }
        if (there.isPresent()) {
            guest.buses().remove(device);
        }
        iommu.deassign(device);
    }

    /**
     * @param device a device's address
     * @return the domain the hypervisor has it assigned to; empty while quarantined
     */
    public Optional<XenDomain> assignment(String device) {
        int o = iommu.ownerOf(device);
        return o < 0 || o == XenIommu.DOMID_IO ? Optional.empty() : Optional.of(domains.get(o));
    }

    /** @return machine memory in frames */
    public long machineFrames() {
        return machine.frames();
    }

    /** @return frames no domain owns */
    public long freeFrames() {
        return machine.freeFrames();
    }

    /**
     * @param mfn a machine frame
     * @return the id of the domain that owns it, or -1
     */
    public int ownerOf(long mfn) {
        return machine.ownerOf(mfn);
    }

    /**
     * Reads machine memory, whoever owns it, as a debugger on the hypervisor would.
     *
     * @param maddr machine address
     * @param length bytes
     * @return the bytes
     */
    public byte[] readMachine(long maddr, int length) {
        byte[] out = new byte[length];
        machine.memory().read(maddr, out, 0, length);
        return out;
    }

    /**
     * The hypervisor's bookkeeping, counted rather than measured: every table and array the model keeps for
     * machine memory, the domains' p2m and the IOMMU contexts, 8 bytes a reference or {@code long}, 4 an
     * {@code int}, without object headers. The domains' kernels (their Hosts) are not counted.
     *
     * @return bytes
     */
    public long bookkeepingBytes() {
        long n = machine.bytes() + iommu.bytes();
        for (XenDomain d : domains) {
            n += d.bytes();
        }
        return n;
    }

    /** Builds a {@link XenPlatform}. */
    public static final class Builder {
        private long machineMemory = DEFAULT_MACHINE_MEMORY;
        private long dom0Memory = DEFAULT_DOM0_MEMORY;
        private String dom0CommandLine = "";
        private final List<PciDeviceSpec> devices = new ArrayList<>();
        private P2mLayout layout = P2mLayout.scattered(1);
        private int cpus = 2;
        private int logCapacity = 4096;

        private Builder() {
        }

        /**
         * @param bytes machine memory, a multiple of 2 MiB from 64 MiB to 1 TiB
         * @return this
         */
        public Builder machineMemory(long bytes) {
            if (bytes < (64L << 20) || bytes > (1L << 40) || bytes % EXTENT_BYTES != 0) {
                throw new IllegalArgumentException("machine memory of " + bytes + " bytes is invalid: expected a"
                        + " multiple of 2 MiB from 64 MiB to 1 TiB");
            }
            this.machineMemory = bytes;
            return this;
        }

        /**
         * @param bytes Domain-0's memory ({@code dom0_mem}), a multiple of 2 MiB, at least 16 MiB
         * @return this
         */
        public Builder dom0Memory(long bytes) {
            this.dom0Memory = bytes;
            return this;
        }

        /**
         * @param line Domain-0's kernel command line, for example {@code xen-pciback.hide=(0000:06:0d.0)}
         * @return this
         */
        public Builder dom0CommandLine(String line) {
            this.dom0CommandLine = line;
            return this;
        }

        /**
         * @param spec a physical PCI device
         * @return this
         */
        public Builder pciDevice(PciDeviceSpec spec) {
            devices.add(spec);
            return this;
        }

        /**
         * @param layout how domains' pages lie in machine memory unless a guest is given its own
         * @return this
         */
        public Builder layout(P2mLayout layout) {
            this.layout = layout;
            return this;
        }

        /**
         * @param count CPUs of every domain's kernel
         * @return this
         */
        public Builder cpus(int count) {
            this.cpus = count;
            return this;
        }

        /** @return the platform, Domain-0 booted */
        public XenPlatform build() {
            return new XenPlatform(this);
        }
    }
}
