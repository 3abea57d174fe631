package org.iommu4j.kernel.iommu;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;
import org.iommu4j.api.AddressRange;
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
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.Buses;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.dma.DmaOpsBinding;
import org.iommu4j.kernel.fault.FaultAttr;
import org.iommu4j.kernel.iommu.dma.IommuDma;
import org.iommu4j.kernel.iommu.dma.IommuDmaCookie;
import org.iommu4j.kernel.log.KernelLogBuffer;
import org.iommu4j.kernel.log.Warnings;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.params.CommandLine;

/**
 * The kernel's iommu core ({@code drivers/iommu/iommu.c}): one {@link IommuOps} per bus, groups with the
 * lowest free id, default domains, moving groups between domains for users such as VFIO, and the checks
 * every {@code iommu_map} passes before a driver sees it. Configuration changes take the host's
 * configuration lock; device DMA reads only volatile fields.
 *
 * <p>A group whose default domain type is {@link DomainType#IDENTITY} gets no domain object: nothing
 * translates for it, exactly as for a fake group, and its sysfs type reads {@code identity}. A group whose
 * default domain is {@link DomainType#DMA} gets iommu-dma ({@link IommuDma}): the DMA API hands its devices
 * IOVAs. An untrusted device's group is always a strict DMA domain, whatever the driver asks.
 *
 * <h2>What the core calls on a driver's domain, and what it keeps itself</h2>
 * The core calls {@link IommuDomain#attachDevice} / {@link IommuDomain#detachDevice} when a group moves
 * between domains (all devices or none), {@link IommuDomain#mapPages} once per run of equal pages of a map it
 * split by the page-size bitmap ({@code iommu_pgsize}), {@link IommuDomain#unmapPages} likewise,
 * {@link IommuDomain#iovaToPhys} for the DMA API's unmap and syncs, {@link IommuDomain#flushIotlbAll} for strict
 * unmaps and flush-queue flushes, {@link IommuDomain#translate} for every page of device DMA, and
 * {@link IommuDomain#free} once when the domain's group goes away. It keeps itself: which group is in which
 * domain (the default, a user's, or its own blocking domain), group membership and ids, DMA ownership,
 * argument checks (alignment to the smallest page, wrapping), the IOVA space and flush queues of DMA domains,
 * and the driver's per-device data ({@code dev_iommu_priv_set}). A driver therefore needs no device-to-domain
 * map of its own: {@link IommuCore#domainOf} gives its own domain object back.
 *
 * <h2>A driver that throws</h2>
 * An exception other than {@link IommuException} from a driver's translate, map, unmap, iova_to_phys or flush
 * is a driver bug: the core contains it. Device DMA faults ({@link org.iommu4j.api.IommuFaultException}), a VFIO
 * map fails with {@link Errno#EIO}, a DMA API map with DMA_MAPPING_ERROR (ENOMEM naming the cause), and the
 * kernel prints a WARN naming the module and taints W.
 * Linux has no such containment (a driver's bug is an oops); it is an invention of the model.
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
    private final Warnings warnings;
    private final IommuDma dma;
    private final PciDeviceGroups pciGroups = new PciDeviceGroups(this);

    private record Registration(IommuOps ops, ModuleRef owner, DmaOpsBinding dmaApi) {
    }

    /**
     * @param lock the host's configuration lock
     * @param buses the host's buses, whose devices this core probes
     * @param log the kernel log
     * @param pageAlloc the {@code fail_page_alloc} attribute {@link #map} asks for its page-table pages
     * @param warnings the kernel's WARN facility, for drivers that throw
     * @param memory the host's memory, for iommu-dma's bounce buffers
     * @param pages the page allocator, for iommu-dma's coherent buffers
     * @param commandLine {@code iommu.strict=}, {@code iommu.forcedac=}
     * @param cpus the host's CPUs
     * @param cpu the calling thread's CPU
     * @param clock the host's clock
     */
    public Iommu(ReentrantLock lock, Buses buses, KernelLogBuffer log, FaultAttr pageAlloc, Warnings warnings,
            PhysicalMemory memory, PageAllocator pages, CommandLine commandLine, int cpus, IntSupplier cpu,
            LongSupplier clock) {
        this.pageAlloc = pageAlloc;
        this.lock = lock;
        this.buses = buses;
        this.log = log;
        this.warnings = warnings;
        this.dma = new IommuDma(this, memory, pages, log, warnings, commandLine, cpus, cpu, clock);
        buses.addCoreListener(this);
    }

    /** @return iommu-dma, the DMA API of devices in DMA domains */
    public IommuDma dma() {
        return dma;
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
            if (ops.isEmpty()) {
                log.log(LogLevel.INFO, "iommu: DMA domain TLB invalidation policy: "
                        + (dma.isStrict() ? "strict" : "lazy") + " mode");
            }
            ops.put(bus, new Registration(iommuOps, owner, new DmaOpsBinding(dma, owner)));
            try {
                for (BusDevice d : buses.devices(bus)) {
                    probe(d);
                }
            } catch (RuntimeException e) {
                // bus_iommu_probe failed: the driver leaves no device behind, and no registration
                for (BusDevice d : buses.devices(bus)) {
                    Group g = d.group();
                    if (g != null && g.ops() == iommuOps) {
                        removeDevice(d);
                    }
                }
                ops.remove(bus);
                throw e;
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
        addDevice(group, device, r);
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
            Group group = new Group(this, id, name, isolated);
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

    private void addDevice(Group candidate, BusDevice device, Registration r) {
        IommuOps iommuOps = r == null ? null : r.ops();
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
            group.setOps(iommuOps, r == null ? "kernel" : r.owner().name());
            DomainType type = iommuOps == null ? null : iommuOps.defaultDomainType(device);
            if (type != null && device.isUntrusted()) {
                type = DomainType.DMA; // iommu_get_def_domain_type: an untrusted device is never passed through
            }
            if (type != null && type != DomainType.IDENTITY) {
                IommuDomain domain = iommuOps.allocateDomain(type);
                IommuDmaCookie cookie;
                try {
                    cookie = dma.createCookie(iommuOps, r.owner().name(), domain, device);
                } catch (RuntimeException e) {
                    domain.free();
                    throw e;
                }
                group.setDefaultDomain(domain);
                group.setDomain(domain);
                group.setDmaCookie(cookie, cookie == null ? null : r.dmaApi());
            }
            groups.put(group.id(), group);
        } else if (group.dmaCookie() != null) {
            dma.deviceJoined(device);
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
                IommuDmaCookie cookie = group.dmaCookie();
                if (cookie != null) {
                    dma.releaseCookie(cookie);
                    group.setDmaCookie(null, null);
                }
                if (def != null) {
                    def.free();
                }
                groups.remove(group.id());
                allocated.remove(group.id());
                usedIds.clear(group.id());
            }
            if (group.ops() != null) {
                group.ops().releaseDevice(device);
                device.setIommuPrivate(null); // dev_iommu_free, after release_device
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
     * The kernel's {@code iommu_map} ({@code drivers/iommu/iommu.c}, Linux v6.12): checks alignment against the
     * smallest page size, then splits the range into the largest page sizes of the driver's bitmap that fit
     * ({@link #pageSize}) and calls {@link IommuDomain#mapPages} once per run; if one fails, what was mapped is
     * unmapped again. A map may need page-table pages, so it fails with {@link Errno#ENOMEM} when
     * {@code fail_page_alloc} says so, before the driver sees it. Allocation-free on success.
     *
     * @param iommuOps the driver that allocated the domain
     * @param domain a paging domain
     * @param iova first bus address
     * @param paddr first physical address
     * @param size bytes, unsigned
     * @param prot {@link org.iommu4j.api.IommuProt} bits
     * @throws IommuException {@link Errno#EINVAL} "unaligned: ..." or for a range that wraps,
     *     {@link Errno#ENOMEM}, the driver's refusal, or {@link Errno#EIO} when the driver threw
     */
    public void map(IommuOps iommuOps, IommuDomain domain, long iova, long paddr, long size, int prot) {
        long bitmap = iommuOps.pageSizeBitmap();
        long minPage = Long.lowestOneBit(bitmap);
        if (((iova | paddr | size) & (minPage - 1)) != 0 || size == 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "unaligned: iova 0x%x pa 0x%016x size 0x%x min_pagesz 0x%x", iova, paddr, size, minPage));
        }
        AddressRange.requireNoWrap("iova", iova, size);
        AddressRange.requireNoWrap("pa", paddr, size);
        if (pageAlloc.shouldFail(PhysicalMemory.PAGE_SIZE)) {
            throw new IommuException(Errno.ENOMEM, String.format(
                    "iommu_map: no memory for the page tables of iova 0x%x size 0x%x", iova, size));
        }
        long done = 0;
        try {
            while (done != size) {
                long left = size - done;
                long pgsize = pageSize(bitmap, iova + done, paddr + done, left);
                long count = pageCount(bitmap, iova + done, paddr + done, left, pgsize);
                domain.mapPages(iova + done, paddr + done, pgsize, count, prot);
                done += pgsize * count;
            }
        } catch (RuntimeException e) {
            if (done != 0) {
                unmap(iommuOps, domain, iova, done);
            }
            if (e instanceof IommuException ie) {
                throw ie;
            }
            throw driverFailed(ownerOf(iommuOps), "drivers/iommu/iommu.c __iommu_map", "map", iova + done, e);
        }
    }

    /**
     * The kernel's {@code iommu_pgsize}: the largest page size of the bitmap that fits the remaining size and
     * the alignment of both addresses.
     *
     * @param bitmap the driver's page sizes
     * @param iova where the next page starts
     * @param paddr where it points
     * @param size bytes left, unsigned and non-zero
     * @return the page size
     */
    public static long pageSize(long bitmap, long iova, long paddr, long size) {
        int top = 63 - Long.numberOfLeadingZeros(size);
        long sizes = bitmap & (top == 63 ? -1L : (2L << top) - 1);
        long merged = iova | paddr;
        if (merged != 0) {
            int align = Long.numberOfTrailingZeros(merged);
            sizes &= align == 63 ? -1L : (2L << align) - 1;
        }
        return Long.highestOneBit(sizes);
    }

    /**
     * The count half of {@code iommu_pgsize}: how many pages of {@code pgsize} to map before a larger page size
     * becomes possible.
     */
    private static long pageCount(long bitmap, long iova, long paddr, long size, long pgsize) {
        int idx = Long.numberOfTrailingZeros(pgsize);
        long larger = bitmap & ~((pgsize << 1) - 1);
        if (larger != 0) {
            long next = Long.lowestOneBit(larger);
            if (((iova ^ paddr) & (next - 1)) == 0) {
                long offset = next - ((iova | paddr) & (next - 1));
                if (Long.compareUnsigned(offset + next, size) <= 0 && offset + next != 0) {
                    size = offset;
                }
            }
        }
        return size >>> idx;
    }

    /**
     * The kernel's {@code iommu_unmap}: checks alignment, then unmaps page-size run by run
     * ({@link IommuDomain#unmapPages}). A large page the range touches goes whole, so the return may exceed
     * {@code size}. Unlike the kernel, which stops at the first hole, the model goes on past unmapped runs: the
     * api's unmap removes whatever is mapped in the range.
     *
     * @param iommuOps the driver that allocated the domain
     * @param domain a paging domain
     * @param iova first bus address
     * @param size bytes, unsigned
     * @return bytes unmapped
     * @throws IommuException {@link Errno#EINVAL} for a misaligned or wrapping range, {@link Errno#EIO} when the
     *     driver threw
     */
    public long unmap(IommuOps iommuOps, IommuDomain domain, long iova, long size) {
        long bitmap = iommuOps.pageSizeBitmap();
        long minPage = Long.lowestOneBit(bitmap);
        if (((iova | size) & (minPage - 1)) != 0 || size == 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "unaligned: iova 0x%x size 0x%x min_pagesz 0x%x", iova, size, minPage));
        }
        AddressRange.requireNoWrap("iova", iova, size);
        long done = 0;
        long unmapped = 0;
        try {
            while (done != size) {
                long left = size - done;
                long pgsize = pageSize(bitmap, iova + done, iova + done, left);
                long count = pageCount(bitmap, iova + done, iova + done, left, pgsize);
                unmapped += domain.unmapPages(iova + done, pgsize, count);
                done += pgsize * count;
            }
        } catch (IommuException e) {
            throw e;
        } catch (RuntimeException e) {
            throw driverFailed(ownerOf(iommuOps), "drivers/iommu/iommu.c __iommu_unmap", "unmap", iova + done, e);
        }
        return unmapped;
    }

    /**
     * The kernel's {@code iommu_iova_to_phys}, with the driver contained.
     *
     * @param iommuOps the driver
     * @param domain its domain
     * @param iova a bus address
     * @return the physical address, or {@link IommuDomain#FAULT_NOT_MAPPED}
     * @throws IommuException {@link Errno#EIO} when the driver threw
     */
    public long iovaToPhys(IommuOps iommuOps, IommuDomain domain, long iova) {
        try {
            return domain.iovaToPhys(iova);
        } catch (IommuException e) {
            throw e;
        } catch (RuntimeException e) {
            throw driverFailed(ownerOf(iommuOps), "drivers/iommu/iommu.c iommu_iova_to_phys", "iova_to_phys",
                    iova, e);
        }
    }

    /**
     * The kernel's {@code iommu_flush_iotlb_all}, with the driver contained (a throwing flush is warned about
     * and taken as done).
     *
     * @param iommuOps the driver
     * @param domain its domain
     */
    public void flushIotlbAll(IommuOps iommuOps, IommuDomain domain) {
        try {
            domain.flushIotlbAll();
        } catch (RuntimeException e) {
            driverFailed(ownerOf(iommuOps), "drivers/iommu/iommu.c iommu_flush_iotlb_all", "flush_iotlb_all", 0,
                    e);
        }
    }

    private String ownerOf(IommuOps iommuOps) {
        for (Registration r : ops.values().toArray(new Registration[0])) {
            if (r.ops() == iommuOps) {
                return r.owner().name();
            }
        }
        return "kernel";
    }

    /**
     * A driver threw where the kernel expects an answer: WARN naming the module (taint W), and the error the
     * caller sees.
     *
     * @param owner the driver's module
     * @param site the kernel function that called the driver
     * @param op the driver operation
     * @param iova the address it was called for
     * @param e what it threw
     * @return {@link Errno#EIO} naming the module, the operation and the exception
     */
    IommuException driverFailed(String owner, String site, String op, long iova, RuntimeException e) {
        String message = String.format("iommu: IOMMU driver of module %s threw in %s at iova 0x%x: %s", owner,
                op, iova, e);
        warnings.warn(owner, site, message);
        return new IommuException(Errno.EIO, message, e);
    }

    /**
     * The kernel's {@code pci_device_group}; see {@link IommuCore#pciDeviceGroup}.
     *
     * @param device the device being probed
     * @return its group
     */
    public Group pciDeviceGroup(BusDevice device) {
        lock.lock();
        try {
            if (!(device instanceof PciDevice pci)) {
                return allocateGroup(null, true);
            }
            return pciGroups.groupFor(pci, buses.devices(org.iommu4j.api.BusType.PCI));
        } finally {
            lock.unlock();
        }
    }

    boolean isLive(Group g) {
        return g != null && isAllocated(g);
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

            @Override
            public IommuGroup pciDeviceGroup(Device device) {
                return Iommu.this.pciDeviceGroup((BusDevice) device);
            }

            @Override
            public Optional<IommuDomain> domainOf(Device device) {
                Group g = ((BusDevice) device).group();
                IommuDomain d = g == null ? null : g.currentDomain();
                return d == null || d == g.blockedDomain() ? Optional.empty() : Optional.of(d);
            }

            @Override
            public void setDevicePrivate(Device device, Object data) {
                ((BusDevice) device).setIommuPrivate(data);
            }

            @Override
            public Optional<Object> devicePrivate(Device device) {
                return Optional.ofNullable(((BusDevice) device).iommuPrivate());
            }
        };
    }
}
