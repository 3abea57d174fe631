package org.iommu4j.kernel.iommu;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.locks.ReentrantLock;
import org.iommu4j.api.BusListener;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuCore;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.Buses;
import org.iommu4j.kernel.fault.FaultAttr;
import org.iommu4j.kernel.log.KernelLogBuffer;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * The kernel's iommu core ({@code drivers/iommu/iommu.c}): one {@link IommuOps} per bus, groups with the
 * lowest free id, default domains, moving groups between domains for users such as VFIO, and the checks
 * every {@code iommu_map} passes before a driver sees it. Configuration changes take the host's
 * configuration lock; device DMA reads only volatile fields.
 *
 * <p>A group whose default domain type is {@link DomainType#IDENTITY} gets no domain object: nothing
 * translates for it, exactly as for a fake group, and its sysfs type reads {@code identity}.
 */
public final class Iommu implements BusListener {
    private final ReentrantLock lock;
    private final Buses buses;
    private final KernelLogBuffer log;
    private final FaultAttr pageAlloc;
    private final Map<BusType, Registration> ops = new EnumMap<>(BusType.class);
    private final BitSet usedIds = new BitSet();
    private final Map<Integer, Group> allocated = new java.util.HashMap<>();
    private final Map<Integer, Group> groups = new TreeMap<>();
    private final List<GroupListener> listeners = new java.util.concurrent.CopyOnWriteArrayList<>();

    private record Registration(IommuOps ops, ModuleRef owner) {
    }

    /**
     * @param lock the host's configuration lock
     * @param buses the host's buses, whose devices this core probes
     * @param log the kernel log
     * @param pageAlloc the {@code fail_page_alloc} attribute {@link #map} asks for its page-table pages
     */
    public Iommu(ReentrantLock lock, Buses buses, KernelLogBuffer log, FaultAttr pageAlloc) {
        this.pageAlloc = pageAlloc;
        this.lock = lock;
        this.buses = buses;
        this.log = log;
        buses.addCoreListener(this);
    }

    /**
     * @param listener told whenever a device leaves its group
     */
    public void addGroupListener(GroupListener listener) {
        listeners.add(listener);
    }

    /**
     * The kernel's {@code bus_set_iommu}: registers ops for a bus and probes the devices already on it.
     *
     * @param bus the bus
     * @param iommuOps the driver
     * @param owner the module registering it
     * @throws IommuException {@link Errno#EBUSY} if the bus has a driver
     */
    public void registerOps(BusType bus, IommuOps iommuOps, ModuleRef owner) {
        lock.lock();
        try {
            Registration existing = ops.get(bus);
            if (existing != null) {
                throw new IommuException(Errno.EBUSY, "the " + bus.sysfsName() + " bus already has IOMMU ops"
                        + " registered by " + existing.owner().name() + ": unload it first");
            }
            ops.put(bus, new Registration(iommuOps, owner));
            for (BusDevice d : buses.devices(bus)) {
                probe(d);
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Unregisters a bus's ops: every device it manages leaves its group and is released.
     *
     * @param bus the bus
     * @param iommuOps the ops registered for it
     */
    public void unregisterOps(BusType bus, IommuOps iommuOps) {
        lock.lock();
        try {
            Registration r = ops.get(bus);
            if (r == null || r.ops() != iommuOps) {
                return;
            }
            for (BusDevice d : buses.devices(bus)) {
                Group g = d.group();
                if (g != null && g.ops() == iommuOps) {
                    removeDevice(d);
                }
            }
            ops.remove(bus);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Unregisters every bus's ops an owner registered.
     *
     * @param owner a module
     * @return how many registrations there were
     */
    public int removeAllOwnedBy(ModuleRef owner) {
        lock.lock();
        try {
            int n = 0;
            for (var e : new ArrayList<>(ops.entrySet())) {
                if (e.getValue().owner() == owner) {
                    unregisterOps(e.getKey(), e.getValue().ops());
                    n++;
                }
            }
            return n;
        } finally {
            lock.unlock();
        }
    }

    /**
     * @param bus a bus
     * @return the ops registered for it
     */
    public Optional<IommuOps> ops(BusType bus) {
        lock.lock();
        try {
            return Optional.ofNullable(ops.get(bus)).map(Registration::ops);
        } finally {
            lock.unlock();
        }
    }

    /**
     * @param bus a bus
     * @return the module that registered the bus's ops
     */
    public Optional<ModuleRef> opsOwner(BusType bus) {
        lock.lock();
        try {
            return Optional.ofNullable(ops.get(bus)).map(Registration::owner);
        } finally {
            lock.unlock();
        }
    }

    @Override
    public void deviceAdded(Device device) {
        probe((BusDevice) device);
    }

    @Override
    public void deviceRemoved(Device device) {
        BusDevice d = (BusDevice) device;
        if (d.group() != null) {
            removeDevice(d);
        }
    }

    private void probe(BusDevice device) {
        Registration r = ops.get(device.bus());
        if (r == null || device.group() != null || !device.isPresent() || !r.ops().probeDevice(device)) {
            return;
        }
        IommuGroup chosen = r.ops().deviceGroup(device, view(r.owner()));
        if (!(chosen instanceof Group group) || !isAllocated(group)) {
            r.ops().releaseDevice(device);
            throw new IommuException(Errno.EINVAL, "IOMMU driver of " + r.owner().name() + " returned a group"
                    + " for " + device.name() + " that the iommu core did not allocate");
        }
        addDevice(group, device, r.ops());
    }

    private boolean isAllocated(Group g) {
        return allocated.get(g.id()) == g;
    }

    /**
     * Allocates an empty group with the lowest free id.
     *
     * @param name the {@code name} attribute, or null
     * @param isolated whether the hardware isolates the group's devices
     * @return the group
     */
    public Group allocateGroup(String name, boolean isolated) {
        lock.lock();
        try {
            int id = usedIds.nextClearBit(0);
            usedIds.set(id);
            Group group = new Group(id, name, isolated);
            allocated.put(id, group);
            return group;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Adds a device to a group with no IOMMU behind it (a fake group, the kernel's
     * {@code iommu_group_add_device} for noiommu); nothing will translate its DMA.
     *
     * @param group a group from {@link #allocateGroup}
     * @param device a device in no group
     */
    public void addDevice(Group group, BusDevice device) {
        lock.lock();
        try {
            addDevice(group, device, null);
        } finally {
            lock.unlock();
        }
    }

    private void addDevice(Group candidate, BusDevice device, IommuOps iommuOps) {
        if (!isAllocated(candidate)) {
            throw new IommuException(Errno.EINVAL, candidate + " was not allocated by this host's iommu core");
        }
        if (device.group() != null) {
            throw new IommuException(Errno.EBUSY, "device " + device.name() + " is already in iommu group "
                    + device.group().id());
        }
        Group group = groups.get(candidate.id());
        if (group == null) {
            group = candidate;
            group.setOps(iommuOps);
            if (iommuOps != null && iommuOps.defaultDomainType(device) != DomainType.IDENTITY) {
                IommuDomain domain = iommuOps.allocateDomain(iommuOps.defaultDomainType(device));
                group.setDefaultDomain(domain);
                group.setDomain(domain);
            }
            groups.put(group.id(), group);
        }
        IommuDomain domain = group.currentDomain();
        if (domain != null) {
            domain.attachDevice(device);
        }
        group.mutableDevices().add(device);
        device.setGroup(group);
        log.log(LogLevel.INFO, device.logPrefix() + ": Adding to iommu group " + group.id());
    }

    /**
     * Takes a device out of its group, the kernel's {@code iommu_group_remove_device}; a group left empty
     * frees its default domain and its id.
     *
     * @param device a device in a group
     */
    public void removeDevice(BusDevice device) {
        lock.lock();
        try {
            Group group = device.group();
            if (group == null) {
                return;
            }
            IommuDomain domain = group.currentDomain();
            if (domain != null) {
                domain.detachDevice(device);
            }
            group.mutableDevices().remove(device);
            device.setGroup(null);
            log.log(LogLevel.INFO, device.logPrefix() + ": Removing from iommu group " + group.id());
            if (group.mutableDevices().isEmpty()) {
                IommuDomain def = group.defaultDomain();
                if (def != null) {
                    def.free();
                }
                groups.remove(group.id());
                allocated.remove(group.id());
                usedIds.clear(group.id());
            }
            if (group.ops() != null) {
                group.ops().releaseDevice(device);
            }
            for (GroupListener l : listeners) {
                l.deviceLeftGroup(device, group);
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Probes a device again after its driver's view of it changed.
     *
     * @param device a present device
     * @throws IommuException {@link Errno#EBUSY} while a user owns its group's DMA
     */
    public void reprobe(BusDevice device) {
        lock.lock();
        try {
            Group g = device.group();
            if (g != null) {
                if (g.dmaOwner() != null) {
                    throw new IommuException(Errno.EBUSY, "device " + device.name() + " is in iommu group "
                            + g.id() + ", which " + g.dmaOwner() + " holds: release it first");
                }
                removeDevice(device);
            }
            probe(device);
        } finally {
            lock.unlock();
        }
    }

    /**
     * @param id a group id
     * @return the group, if it has devices
     */
    public Optional<Group> group(int id) {
        lock.lock();
        try {
            return Optional.ofNullable(groups.get(id));
        } finally {
            lock.unlock();
        }
    }

    /** @return the groups with devices, by id */
    public List<Group> groups() {
        lock.lock();
        try {
            return List.copyOf(groups.values());
        } finally {
            lock.unlock();
        }
    }

    /**
     * Moves every device of a group to a domain (the kernel's {@code iommu_attach_group}); all or nothing.
     *
     * @param group a group with an IOMMU behind it
     * @param domain a domain its driver allocated
     * @throws IommuException the driver's refusal; the group stays where it was
     */
    public void attachGroup(Group group, IommuDomain domain) {
        lock.lock();
        try {
            move(group, group.currentDomain(), domain);
        } finally {
            lock.unlock();
        }
    }

    /**
     * Returns a group to its core domain after a user domain let go: the blocking domain while user space
     * still owns the group, else the default domain (or no domain).
     *
     * @param group the group
     */
    public void restoreDefaultDomain(Group group) {
        lock.lock();
        try {
            move(group, group.currentDomain(), coreDomain(group));
        } finally {
            lock.unlock();
        }
    }

    /**
     * The kernel's {@code iommu_group_claim_dma_owner}: user space takes over a group's DMA. A group with an
     * IOMMU behind it moves to the blocking domain, so that its devices reach no memory until a user domain is
     * attached; a group without one (a fake group) only records the owner.
     *
     * @param group the group
     * @param owner who claims it
     * @throws IommuException {@link Errno#EPERM} if it has an owner already; {@link Errno#EBUSY} if a domain
     *     other than its default one is attached
     */
    public void claimDmaOwner(Group group, Object owner) {
        lock.lock();
        try {
            if (group.dmaOwner() != null) {
                throw new IommuException(Errno.EPERM, "iommu group " + group.id() + " is owned by "
                        + group.dmaOwner() + " already");
            }
            if (group.currentDomain() != group.defaultDomain()) {
                throw new IommuException(Errno.EBUSY, "iommu group " + group.id() + " has a domain other than its"
                        + " default attached");
            }
            group.setDmaOwner(owner);
            move(group, group.currentDomain(), coreDomain(group));
        } finally {
            lock.unlock();
        }
    }

    /**
     * The kernel's {@code iommu_group_release_dma_owner}: the group goes back to its default domain.
     *
     * @param group the group
     */
    public void releaseDmaOwner(Group group) {
        lock.lock();
        try {
            group.setDmaOwner(null);
            move(group, group.currentDomain(), coreDomain(group));
        } finally {
            lock.unlock();
        }
    }

    private static IommuDomain coreDomain(Group group) {
        if (group.dmaOwner() != null && group.ops() != null && group.isolated()) {
            return group.blockedDomain();
        }
        return group.defaultDomain();
    }

    private void move(Group group, IommuDomain from, IommuDomain to) {
        if (from == to) {
            return;
        }
        List<BusDevice> devices = group.busDevices();
        int moved = 0;
        try {
            for (BusDevice d : devices) {
                if (from != null) {
                    from.detachDevice(d);
                }
                try {
                    if (to != null) {
                        to.attachDevice(d);
                    }
                } catch (RuntimeException e) {
                    if (from != null) {
                        from.attachDevice(d);
                    }
                    throw e;
                }
                moved++;
            }
        } catch (RuntimeException e) {
            for (BusDevice d : devices.subList(0, moved)) {
                if (to != null) {
                    to.detachDevice(d);
                }
                if (from != null) {
                    from.attachDevice(d);
                }
            }
            throw e;
        }
        group.setDomain(to);
    }

    /**
     * The kernel's {@code iommu_map}: checks alignment against the smallest page size, then maps. A map may
     * need page-table pages, so it fails with {@link Errno#ENOMEM} when {@code fail_page_alloc} says so,
     * before the driver sees it.
     *
     * @param iommuOps the driver that allocated the domain
     * @param domain a paging domain
     * @param iova first bus address
     * @param paddr first physical address
     * @param size bytes
     * @param prot {@link org.iommu4j.api.IommuProt} bits
     * @throws IommuException {@link Errno#EINVAL} "unaligned: ...", {@link Errno#ENOMEM}, or the driver's
     *     refusal
     */
    public void map(IommuOps iommuOps, IommuDomain domain, long iova, long paddr, long size, int prot) {
        long minPage = Long.lowestOneBit(iommuOps.pageSizeBitmap());
        if (((iova | paddr | size) & (minPage - 1)) != 0 || size <= 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "unaligned: iova 0x%x pa 0x%016x size 0x%x min_pagesz 0x%x", iova, paddr, size, minPage));
        }
        if (pageAlloc.shouldFail(PhysicalMemory.PAGE_SIZE)) {
            throw new IommuException(Errno.ENOMEM, String.format(
                    "iommu_map: no memory for the page tables of iova 0x%x size 0x%x", iova, size));
        }
        domain.map(iova, paddr, size, prot);
    }

    /**
     * The kernel's {@code iommu_unmap}: checks alignment, then unmaps.
     *
     * @param iommuOps the driver that allocated the domain
     * @param domain a paging domain
     * @param iova first bus address
     * @param size bytes
     * @return bytes unmapped
     */
    public long unmap(IommuOps iommuOps, IommuDomain domain, long iova, long size) {
        long minPage = Long.lowestOneBit(iommuOps.pageSizeBitmap());
        if (((iova | size) & (minPage - 1)) != 0 || size <= 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "unaligned: iova 0x%x size 0x%x min_pagesz 0x%x", iova, size, minPage));
        }
        return domain.unmap(iova, size);
    }

    /**
     * The api view of this core for one module.
     *
     * @param owner the module
     * @return an {@link IommuCore} whose registrations belong to {@code owner}
     */
    public IommuCore view(ModuleRef owner) {
        return new IommuCore() {
            @Override
            public void registerOps(BusType bus, IommuOps iommuOps) {
                Iommu.this.registerOps(bus, iommuOps, owner);
            }

            @Override
            public void unregisterOps(BusType bus, IommuOps iommuOps) {
                Iommu.this.unregisterOps(bus, iommuOps);
            }

            @Override
            public void reprobe(Device device) {
                Iommu.this.reprobe((BusDevice) device);
            }

            @Override
            public IommuGroup allocateGroup(String name, boolean isolated) {
                return Iommu.this.allocateGroup(name, isolated);
            }

            @Override
            public Optional<IommuGroup> groupOf(Device device) {
                return Optional.ofNullable(((BusDevice) device).group());
            }

            @Override
            public Optional<String> opsOwner(BusType bus) {
                return Iommu.this.opsOwner(bus).map(ModuleRef::name);
            }
        };
    }
}
