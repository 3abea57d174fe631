package org.iommu4j.kernel.vfio;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.iommu4j.api.BusListener;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.DeviceDriver;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuCapability;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.api.VfioIommuDriver;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.iommu.GroupListener;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.params.CommandLine;
import org.iommu4j.kernel.proc.UserProcess;

/**
 * The VFIO core ({@code drivers/vfio/vfio_main.c}, {@code group.c} and {@code container.c}, Linux v6.12): the {@code vfio-pci} and {@code vfio-platform} drivers a device is
 * bound to only when asked, VFIO groups and their {@code /dev/vfio} nodes, and containers. Written once for
 * every backend: a backend supplies a {@link VfioIommuDriver} (its iommu type and its map/unmap), and for
 * hardware without an IOMMU the groups its devices lack.
 *
 * <p>Every operation that can change state takes the caller explicitly; the checks of {@link VfioAccess}
 * run at each step. Binding, opening and container membership take the host's configuration lock; DMA
 * mapping takes only the container's own lock.
 */
public final class Vfio {
    /** The PCI driver's name. */
    public static final String PCI_DRIVER = "vfio-pci";
    /** The platform driver's name. */
    public static final String PLATFORM_DRIVER = "vfio-platform";
    /**
     * The syntax of a group's node, compiled on first use: a host is built without compiling a pattern (regular
     * expressions spin lambda classes, milliseconds of a cold JVM's start).
     */
    private static final class NodeSyntax {
        static final Pattern NODE = Pattern.compile("/dev/vfio/(noiommu-)?(\\d+)");
    }

    /** The kernel parameter that bounds the mappings of one container. */
    public static final String DMA_ENTRY_LIMIT_PARAMETER = "vfio_iommu_type1.dma_entry_limit";
    /** Its default, {@code U16_MAX}. */
    public static final int DEFAULT_DMA_ENTRY_LIMIT = 65535;
    private final Host host;
    private final int dmaEntryLimit;
    private final ReentrantLock lock;
    private final Map<Integer, VfioGroup> groups = new TreeMap<>();
    private final Type1IommuDriver type1;

    /**
     * Registers the VFIO drivers and the kernel's type-1 iommu driver on a host.
     *
     * @param host the host
     */
    public Vfio(Host host) {
        this.host = host;
        this.dmaEntryLimit = dmaEntryLimit(host);
        this.lock = host.configLock();
        this.type1 = new Type1IommuDriver(host.iommu(), boolParameter(host, Type1IommuDriver.ALLOW_UNSAFE_INTERRUPTS),
                host.log());
        host.buses().registerDriver(new VfioDriver(PCI_DRIVER, BusType.PCI), ModuleRef.KERNEL);
        host.buses().registerDriver(new VfioDriver(PLATFORM_DRIVER, BusType.PLATFORM), ModuleRef.KERNEL);
        host.buses().addListener(new BusListener() {
            @Override
            public void deviceRemoved(Device device) {
                revoke((BusDevice) device, "has been removed");
            }
        }, ModuleRef.KERNEL);
        // classes, not lambdas: a host's first lambda costs a cold JVM milliseconds of class spinning
        host.iommu().addGroupListener(new GroupListener() {
            @Override
            public void deviceLeftGroup(BusDevice device, Group group) {
                lostGroup(device);
            }
        });
        host.vfioDrivers().register(type1, ModuleRef.KERNEL);
        host.vfioDrivers().addUnregisterListener(new Consumer<VfioIommuDriver>() {
            @Override
            public void accept(VfioIommuDriver driver) {
                driverUnregistered(driver);
            }
        });
    }

    /** @return the host */
    Host host() {
        return host;
    }

    /** @return the kernel's own vfio_iommu_type1, whose accounting and limits only its containers get */
    VfioIommuDriver type1Driver() {
        return type1;
    }

    /** {@code vfio_iommu_type1.dma_entry_limit} from the command line; a bad value keeps the default. */
    private static int dmaEntryLimit(Host host) {
        String raw = host.commandLine().get(DMA_ENTRY_LIMIT_PARAMETER).orElse("");
        if (CommandLine.isDecimal(raw, 10) && Long.parseLong(raw) <= Integer.MAX_VALUE) {
            return Integer.parseInt(raw);
        }
        if (!raw.isEmpty()) {
            host.log().log(LogLevel.WARNING, "vfio_iommu_type1: invalid value '" + raw + "' for "
                    + DMA_ENTRY_LIMIT_PARAMETER + ": expected 0 to " + Integer.MAX_VALUE + "; using "
                    + DEFAULT_DMA_ENTRY_LIMIT);
        }
        return DEFAULT_DMA_ENTRY_LIMIT;
    }

    /**
     * A boolean kernel parameter as {@code kstrtobool} reads it: {@code y}, {@code Y}, {@code 1}, {@code on}
     * are true, a bare word too; anything else (or absence) is false.
     */
    static boolean boolParameter(Host host, String key) {
        Optional<String> raw = host.commandLine().get(key);
        if (raw.isEmpty()) {
            return false;
        }
        String v = raw.get();
        return v.isEmpty() || v.charAt(0) == 'y' || v.charAt(0) == 'Y' || v.charAt(0) == '1'
                || v.equalsIgnoreCase("on");
    }

    /**
     * @return whether {@code vfio_iommu_type1.allow_unsafe_interrupts=1} lets groups whose IOMMU does not
     *     isolate MSIs join a type 1 container
     */
    public boolean allowUnsafeInterrupts() {
        return boolParameter(host, Type1IommuDriver.ALLOW_UNSAFE_INTERRUPTS);
    }

    /**
     * @return how many DMA mappings one type 1 container may hold ({@code vfio_iommu_type1.dma_entry_limit},
     *     65535 unless the command line says otherwise); a map past it fails with {@link Errno#ENOSPC}
     */
    public int dmaEntryLimit() {
        return dmaEntryLimit;
    }

    /** @return the kernel's type-1 iommu driver */
    public VfioIommuDriver type1() {
        return type1;
    }

    /**
     * Binds a device to VFIO, as writing it to {@code /sys/bus/pci/drivers/vfio-pci/bind} does.
     *
     * @param device the device's name, for example {@code 0000:06:0d.0}
     * @throws IommuException {@link Errno#ENODEV} if absent, {@link Errno#EBUSY} if another driver has it,
     *     {@link Errno#EINVAL} when it has no iommu group and no backend provides one
     */
    public void bind(String device) {
        BusDevice d = host.buses().require(device);
        host.buses().bind(d, d.bus() == BusType.PCI ? PCI_DRIVER : PLATFORM_DRIVER);
    }

    /**
     * Unbinds a device from VFIO.
     *
     * @param device the device's name
     * @throws IommuException {@link Errno#EINVAL} if it is not bound to VFIO; {@link Errno#EBUSY} while a
     *     user has it open
     */
    public void unbind(String device) {
        lock.lock();
        try {
            BusDevice d = host.buses().require(device);
            if (!isVfioDriver(d.driver())) {
                throw new IommuException(Errno.EINVAL, "device " + d.name() + " is not bound to VFIO (driver: "
                        + (d.driver() == null ? "none" : d.driver()) + ")");
            }
            VfioGroup g = groups.get(d.group().id());
            if (g != null && g.openFile() != null && g.openFile().hasDevice(d)) {
                throw new IommuException(Errno.EBUSY, "device " + d.name() + " is open by "
                        + g.openFile().opener() + ": close it first");
            }
            host.buses().unbind(d);
        } finally {
            lock.unlock();
        }
    }

    static boolean isVfioDriver(String driver) {
        return PCI_DRIVER.equals(driver) || PLATFORM_DRIVER.equals(driver);
    }

    /**
     * Opens {@code /dev/vfio/vfio}: a new, empty container.
     *
     * @param caller the process opening it
     * @return the container
     */
    public VfioContainer openContainer(UserProcess caller) {
        if (!caller.isAlive()) {
            throw new IommuException(Errno.ESRCH, "process " + caller + " has exited");
        }
        if (host.faults().slab().shouldFail(512)) {
            throw new IommuException(Errno.ENOMEM, "/dev/vfio/vfio: cannot allocate a container: out of memory");
        }
        VfioContainer c = new VfioContainer(this, caller);
        c.open();
        return c;
    }

    /**
     * Opens a group's node.
     *
     * @param caller the process opening it
     * @param node {@code /dev/vfio/<id>} or {@code /dev/vfio/noiommu-<id>}
     * @return the open group
     * @throws IommuException {@link Errno#ENOENT} for a node that does not exist (any string, a number too large
     *     for a group id included), {@link Errno#EPERM} without CAP_SYS_RAWIO for a group without isolation,
     *     {@link Errno#EBUSY} if it is open already, {@link Errno#ESRCH} if the caller has exited; nothing
     *     changes on failure
     */
    public VfioGroupFile openGroup(UserProcess caller, String node) {
        Matcher m = NodeSyntax.NODE.matcher(node == null ? "" : node);
        lock.lock();
        try {
            VfioGroup g = null;
            if (m.matches() && m.group(2).length() <= 10 && Long.parseLong(m.group(2)) <= Integer.MAX_VALUE) {
                g = groups.get(Integer.parseInt(m.group(2)));
            }
            if (g == null || !g.node().equals(node)) {
                throw new IommuException(Errno.ENOENT, node + ": No such file or directory (VFIO group nodes: "
                        + deviceNodes() + ")");
            }
            VfioAccess.checkGroup(caller, g, VfioAccess.Step.OPEN_GROUP);
            if (g.openFile() != null) {
                throw new IommuException(Errno.EBUSY, node + " is already open by " + g.openFile().opener()
                        + ": a group can be open once at a time");
            }
            if (!g.providerOwner().tryGet()) {
                throw new IommuException(Errno.ENODEV, node + ": its module " + g.providerOwner().name()
                        + " is going away");
            }
            VfioGroupFile f = new VfioGroupFile(this, g, caller);
            try {
                f.open();
            } catch (RuntimeException e) {
                g.providerOwner().put();
                throw e;
            }
            g.setOpenFile(f);
            return f;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Opens a group by id, whichever node it has.
     *
     * @param caller the process opening it
     * @param groupId the iommu group's id
     * @return the open group
     */
    public VfioGroupFile openGroup(UserProcess caller, int groupId) {
        lock.lock();
        try {
            VfioGroup g = groups.get(groupId);
            return openGroup(caller, g == null ? "/dev/vfio/" + groupId : g.node());
        } finally {
            lock.unlock();
        }
    }

    /**
     * Who has a VFIO group open, for messages that name what holds a module.
     *
     * @param groupId an iommu group id
     * @return the process holding its {@code /dev/vfio} node open, if one does
     */
    public Optional<UserProcess> openerOf(int groupId) {
        lock.lock();
        try {
            VfioGroup g = groups.get(groupId);
            return g == null || g.openFile() == null ? Optional.empty() : Optional.of(g.openFile().opener());
        } finally {
            lock.unlock();
        }
    }

    /** @return the group nodes under {@code /dev/vfio}, by group id */
    public List<String> deviceNodes() {
        lock.lock();
        try {
            List<String> out = new ArrayList<>();
            for (VfioGroup g : groups.values()) {
                out.add(g.node());
            }
            return out;
        } finally {
            lock.unlock();
        }
    }

    /**
     * @param groupId an iommu group id
     * @return its VFIO node, if a device of it is bound to VFIO
     */
    public Optional<String> nodeOf(int groupId) {
        lock.lock();
        try {
            return Optional.ofNullable(groups.get(groupId)).map(VfioGroup::node);
        } finally {
            lock.unlock();
        }
    }

    ReentrantLock lock() {
        return lock;
    }

    /** vfio-pci's probe: the device needs an iommu group, real or provided; its VFIO group is made here. */
    private void probe(BusDevice device) {
        Group group = device.group();
        VfioIommuDriver provider = null;
        ModuleRef owner = group == null ? ModuleRef.KERNEL
                : host.iommu().opsOwner(device.bus()).orElse(ModuleRef.KERNEL);
        if (group == null) {
            for (var r : host.vfioDrivers().all()) {
                Optional<IommuGroup> provided = r.driver().provideGroup(device);
                if (provided.isPresent()) {
                    group = (Group) provided.get();
                    provider = r.driver();
                    owner = r.owner();
                    host.iommu().addDevice(group, device);
                    break;
                }
            }
        }
        if (group == null) {
            List<String> reasons = new ArrayList<>();
            for (var r : host.vfioDrivers().all()) {
                r.driver().noGroupReason(device).ifPresent(reasons::add);
            }
            throw probeFailed(device, "the device has no iommu group; " + (reasons.isEmpty()
                    ? "load an IOMMU backend that manages it, or one that provides groups for devices without an"
                    + " IOMMU" : String.join("; ", reasons)));
        }
        // __vfio_register_dev: an IOMMU that cannot keep DMA cache-coherent for the device cannot give it to
        // user space, which has no way to restore coherency
        if (provider == null && group.isolated() && group.ops() != null
                && !group.ops().capable(device, IommuCapability.CACHE_COHERENCY)) {
            throw probeFailed(device, "its IOMMU (" + owner.name() + ") does not report IOMMU_CAP_CACHE_COHERENCY"
                    + " for it, which VFIO requires" + group.ops().missingCapabilityReason(device,
                    IommuCapability.CACHE_COHERENCY).map(why -> ": " + why).orElse(""));
        }
        VfioGroup vg = groups.get(group.id());
        if (vg == null) {
            vg = new VfioGroup(group, provider, owner);
            groups.put(group.id(), vg);
            if (!group.isolated()) {
                String name = group.name().orElse("vfio-noiommu");
                host.taint().add(TaintFlag.USER, owner.name(), name + " group for " + device.name());
                host.log().log(LogLevel.WARNING, device.logPrefix() + ": Adding kernel taint for " + name
                        + " group on device");
            }
        }
        vg.devices().add(device);
    }

    /** The driver core's report of a failed probe (the 6.x form), and the error the bind returns. */
    private IommuException probeFailed(BusDevice device, String why) {
        String kernel = "probe with driver " + device.driver() + " failed with error -22";
        host.log().log(LogLevel.ERR, device.logPrefix() + ": " + kernel);
        return new IommuException(Errno.EINVAL, device.logPrefix() + ": " + kernel + ": " + why);
    }

    /** vfio-pci's remove, and what a device's loss of its group or presence means for its users. */
    private void release(BusDevice device) {
        VfioGroup vg = findByDevice(device);
        if (vg == null) {
            return;
        }
        revoke(device, "has been unbound from VFIO");
        vg.devices().remove(device);
        if (vg.provider() != null && device.group() == vg.group()) {
            host.iommu().removeDevice(device);
        }
        if (vg.devices().isEmpty()) {
            retire(vg);
        }
    }

    private void retire(VfioGroup vg) {
        vg.markDead();
        groups.remove(vg.id());
        VfioGroupFile f = vg.openFile();
        if (f != null) {
            f.closeDevices();
        }
        VfioContainer c = vg.container();
        if (c != null) {
            c.detach(vg);
        }
        if (vg.dmaClaimed()) {
            host.iommu().releaseDmaOwner(vg.group());
            vg.setDmaClaimed(false);
        }
    }

    private void revoke(BusDevice device, String why) {
        lock.lock();
        try {
            VfioGroup vg = findByDevice(device);
            if (vg != null && vg.openFile() != null) {
                vg.openFile().revoke(device, why);
            }
        } finally {
            lock.unlock();
        }
    }

    private void lostGroup(BusDevice device) {
        if (isVfioDriver(device.driver()) && findByDevice(device) != null) {
            host.buses().unbind(device);
        }
    }

    private void driverUnregistered(VfioIommuDriver driver) {
        lock.lock();
        try {
            for (VfioGroup vg : new ArrayList<>(groups.values())) {
                if (vg.provider() == driver) {
                    for (BusDevice d : new ArrayList<>(vg.devices())) {
                        host.buses().unbind(d);
                    }
                }
            }
        } finally {
            lock.unlock();
        }
    }

    private VfioGroup findByDevice(BusDevice device) {
        for (VfioGroup vg : groups.values()) {
            if (vg.devices().contains(device)) {
                return vg;
            }
        }
        return null;
    }

    /** The {@code vfio-pci} / {@code vfio-platform} driver. */
    private final class VfioDriver implements DeviceDriver {
        private final String name;
        private final BusType bus;

        VfioDriver(String name, BusType bus) {
            this.name = name;
            this.bus = bus;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public BusType bus() {
            return bus;
        }

        @Override
        public boolean driverManagedDma() {
            return true;
        }

        @Override
        public void probe(Device device) {
            lock.lock();
            try {
                Vfio.this.probe((BusDevice) device);
            } finally {
                lock.unlock();
            }
        }

        @Override
        public void remove(Device device) {
            lock.lock();
            try {
                release((BusDevice) device);
            } finally {
                lock.unlock();
            }
        }
    }
}
