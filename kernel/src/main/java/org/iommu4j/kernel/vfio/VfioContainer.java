package org.iommu4j.kernel.vfio;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.TreeMap;
import java.util.concurrent.locks.ReentrantLock;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.api.VfioIommu;
import org.iommu4j.api.VfioIommuDriver;
import org.iommu4j.kernel.iommu.Iommu;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioIommuDrivers.Registered;

/**
 * A VFIO container, what {@code open("/dev/vfio/vfio")} returns: groups join it, then an iommu type is set,
 * then user memory is mapped for the groups' devices. The container keeps the interval bookkeeping every
 * backend shares (overlap, split, pinning, teardown); its driver only maps and unmaps.
 *
 * <p>Map, unmap and sync take this container's lock only, never a lock all containers share.
 */
public final class VfioContainer implements AutoCloseable {
    private final org.iommu4j.kernel.vfio.Vfio vfio;
    private final UserProcess opener;
    private final Runnable exitHook = this::close;
    private final ReentrantLock lock = new ReentrantLock();
    private final List<VfioGroup> groups = new ArrayList<>();
    private final TreeMap<Long, Mapping> mappings = new TreeMap<>();
    private Registered driver;
    private VfioIommu iommu;
    private int type;
    private boolean closed;

    private record Mapping(VfioDmaMapping mapping, UserProcess owner) {
        long end() {
            return mapping.iova() + mapping.size();
        }
    }

    VfioContainer(org.iommu4j.kernel.vfio.Vfio vfio, UserProcess opener) {
        this.vfio = vfio;
        this.opener = opener;
    }

    /** @return what the opener runs at exit: {@link #close}, kept so that closing first can take it back */
    Runnable exitHook() {
        return exitHook;
    }

    /** @return the process that opened it */
    public UserProcess opener() {
        return opener;
    }

    /** @return {@code VFIO_GET_API_VERSION} */
    public int apiVersion() {
        return Vfio.API_VERSION;
    }

    /**
     * {@code VFIO_CHECK_EXTENSION}: with an iommu type set, the driver's answer; before, the first positive
     * answer of a registered driver that may serve the container's groups (any driver while it has none).
     *
     * @param extension an iommu type or other extension number
     * @return positive when supported
     */
    public int checkExtension(int extension) {
        lock.lock();
        try {
            requireOpen();
            if (driver != null) {
                return driver.driver().checkExtension(extension);
            }
            for (Registered r : vfio.host().vfioDrivers().all()) {
                if (!groups.isEmpty() && r.driver().isolating() != groups.get(0).isolated()) {
                    continue;
                }
                int answer = r.driver().checkExtension(extension);
                if (answer > 0) {
                    return answer;
                }
            }
            return 0;
        } finally {
            lock.unlock();
        }
    }

    /**
     * {@code VFIO_SET_IOMMU}: picks the first registered driver that offers the type and may serve this
     * container's groups (isolating drivers for isolated groups, the others for groups without isolation),
     * opens it and attaches every group.
     *
     * @param caller who asks
     * @param iommuType for example {@link Vfio#TYPE1v2_IOMMU} or {@link Vfio#NOIOMMU_IOMMU}
     * @throws IommuException {@link Errno#EINVAL} with no groups or a type already set; {@link Errno#EPERM}
     *     when the driver needs a capability the caller lacks; {@link Errno#ENODEV} when no driver offers the
     *     type for these groups
     */
    public void setIommu(UserProcess caller, int iommuType) {
        vfio.lock().lock();
        lock.lock();
        try {
            requireOpen();
            if (groups.isEmpty()) {
                throw new IommuException(Errno.EINVAL, "VFIO_SET_IOMMU: the container has no groups; add a group"
                        + " first");
            }
            if (driver != null) {
                throw new IommuException(Errno.EINVAL, "VFIO_SET_IOMMU: the iommu type is already "
                        + Vfio.typeName(type));
            }
            boolean isolated = groups.get(0).isolated();
            IommuException last = null;
            List<String> offered = new ArrayList<>();
            for (Registered r : vfio.host().vfioDrivers().all()) {
                VfioIommuDriver d = r.driver();
                if (d.isolating() != isolated || d.checkExtension(iommuType) <= 0) {
                    continue;
                }
                offered.add(d.name());
                try {
                    VfioAccess.checkContainer(caller, d.requiredCapabilities(), VfioAccess.Step.SET_IOMMU,
                            "a container with " + d.name());
                } catch (IommuException e) {
                    last = e;
                    continue;
                }
                if (!r.owner().tryGet()) {
                    continue;
                }
                try {
                    VfioIommu instance = d.open(iommuType);
                    attachAll(instance);
                    driver = r;
                    iommu = instance;
                    type = iommuType;
                    return;
                } catch (IommuException e) {
                    r.owner().put();
                    last = e;
                }
            }
            if (last != null) {
                throw last;
            }
            throw new IommuException(Errno.ENODEV, "VFIO_SET_IOMMU: no VFIO iommu driver offers "
                    + Vfio.typeName(iommuType) + " for " + (isolated ? "isolated" : "unisolated (no-IOMMU)")
                    + " groups; registered: " + vfio.host().vfioDrivers().all().stream()
                    .map(x -> x.driver().name()).toList());
        } finally {
            lock.unlock();
            vfio.lock().unlock();
        }
    }

    private void attachAll(VfioIommu instance) {
        List<VfioGroup> attached = new ArrayList<>();
        try {
            for (VfioGroup g : groups) {
                instance.attachGroup(g.group());
                attached.add(g);
            }
        } catch (RuntimeException e) {
            for (VfioGroup g : attached) {
                instance.detachGroup(g.group());
            }
            instance.release();
            throw e;
        }
    }

    /** @return whether an iommu type is set */
    public boolean hasIommu() {
        lock.lock();
        try {
            return driver != null;
        } finally {
            lock.unlock();
        }
    }

    /** @return the iommu type set, if any */
    public OptionalInt iommuType() {
        lock.lock();
        try {
            return driver == null ? OptionalInt.empty() : OptionalInt.of(type);
        } finally {
            lock.unlock();
        }
    }

    /** @return the name of the iommu driver serving the container, if any */
    public Optional<String> driverName() {
        lock.lock();
        try {
            return driver == null ? Optional.empty() : Optional.of(driver.driver().name());
        } finally {
            lock.unlock();
        }
    }

    /** @return the ids of the groups in the container */
    public List<Integer> groupIds() {
        lock.lock();
        try {
            return groups.stream().map(VfioGroup::id).toList();
        } finally {
            lock.unlock();
        }
    }

    /**
     * {@code VFIO_IOMMU_MAP_DMA}: pins {@code [vaddr, vaddr+size)} of the caller's memory and maps it for the
     * container's devices.
     *
     * @param caller whose memory it is
     * @param vaddr page-aligned virtual address
     * @param size page-aligned length, positive
     * @param iova page-aligned device address, or {@link Vfio#ANY_IOVA} for a driver that chooses
     * @param prot {@link IommuProt#READ} (the device reads), {@link IommuProt#WRITE} (it writes), or both
     * @return the mapping, with the device address to use
     * @throws IommuException {@link Errno#EINVAL} for bad arguments or no iommu type; {@link Errno#EEXIST}
     *     when the range overlaps a mapping; {@link Errno#EFAULT} for unmapped user memory; {@link Errno#EPERM}
     *     without the driver's capability; {@link Errno#ENOMEM} when {@code failslab} or the page allocator
     *     fails, or (type 1) when pinning would pass the caller's RLIMIT_MEMLOCK without CAP_IPC_LOCK;
     *     {@link Errno#ENOSPC} (type 1) past {@code vfio_iommu_type1.dma_entry_limit}; the driver's refusal.
     *     Nothing stays pinned or mapped on failure.
     */
    public VfioDmaMapping mapDma(UserProcess caller, long vaddr, long size, long iova, int prot) {
        lock.lock();
        try {
            requireIommu(caller, VfioAccess.Step.MAP);
            if ((prot & ~(IommuProt.READ | IommuProt.WRITE)) != 0 || (prot & (IommuProt.READ | IommuProt.WRITE)) == 0) {
                throw new IommuException(Errno.EINVAL, "VFIO_IOMMU_MAP_DMA: flags " + IommuProt.toString(prot)
                        + " are invalid: expected READ, WRITE or both");
            }
            if (size <= 0 || ((vaddr | size) & PhysicalMemory.PAGE_OFFSET_MASK) != 0
                    || iova != Vfio.ANY_IOVA && (iova < 0 || (iova & PhysicalMemory.PAGE_OFFSET_MASK) != 0
                    || iova + size < iova)) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x iova %s size"
                        + " 0x%x: vaddr, iova and size must be page-aligned and size positive", vaddr,
                        iova == Vfio.ANY_IOVA ? "ANY" : "0x" + Long.toHexString(iova), size));
            }
            if (iova != Vfio.ANY_IOVA) {
                requireFree(iova, size);
            }
            boolean type1 = driver.driver() == vfio.type1Driver();
            if (type1 && mappings.size() >= vfio.dmaEntryLimit()) {
                throw new IommuException(Errno.ENOSPC, "VFIO_IOMMU_MAP_DMA: the container holds "
                        + mappings.size() + " mappings, the most vfio_iommu_type1.dma_entry_limit allows;"
                        + " unmap some or raise the limit");
            }
            if (vfio.host().faults().slab().shouldFail(128)) {
                throw new IommuException(Errno.ENOMEM, "VFIO_IOMMU_MAP_DMA: cannot allocate the mapping's record:"
                        + " out of memory");
            }
            PinnedPages pages = type1 ? pinWithinLimit(caller, vaddr, size) : caller.pin(vaddr, size);
            long at;
            try {
                at = iommu.map(iova, pages, prot);
            } catch (RuntimeException e) {
                caller.unpin(pages);
                throw e;
            }
            VfioDmaMapping mapping = new VfioDmaMapping(at, pages, prot);
            if (iova == Vfio.ANY_IOVA) {
                try {
                    requireFree(at, size);
                } catch (IommuException e) {
                    iommu.unmap(mapping);
                    caller.unpin(pages);
                    throw e;
                }
            }
            mappings.put(at, new Mapping(mapping, caller));
            return mapping;
        } finally {
            lock.unlock();
        }
    }

    /**
     * The type1 driver's {@code vfio_pin_pages_remote}: pins the range and charges it to the caller's locked
     * memory, refusing when that would pass {@code RLIMIT_MEMLOCK} and the caller lacks CAP_IPC_LOCK.
     */
    private PinnedPages pinWithinLimit(UserProcess caller, long vaddr, long size) {
        synchronized (caller) {
            long limit = caller.memlockLimit();
            long asked = size >>> PhysicalMemory.PAGE_SHIFT;
            if (limit != UserProcess.RLIM_INFINITY && !caller.capable(Capability.CAP_IPC_LOCK)
                    && caller.lockedPages() + asked > limit >>> PhysicalMemory.PAGE_SHIFT) {
                String kernel = "vfio_pin_pages_remote: RLIMIT_MEMLOCK (" + (limit >>> PhysicalMemory.PAGE_SHIFT
                        << PhysicalMemory.PAGE_SHIFT) + ") exceeded";
                vfio.host().log().log(LogLevel.WARNING, kernel);
                throw new IommuException(Errno.ENOMEM, "VFIO_IOMMU_MAP_DMA: " + kernel + ": " + caller + " has "
                        + caller.lockedPages() + " pages locked and asks " + asked + " more; raise its RLIMIT_MEMLOCK"
                        + " or give it CAP_IPC_LOCK");
            }
            return caller.pin(vaddr, size);
        }
    }

    private void requireFree(long iova, long size) {
        Map.Entry<Long, Mapping> below = mappings.lowerEntry(iova + size);
        if (below != null && below.getValue().end() > iova) {
            VfioDmaMapping m = below.getValue().mapping();
            throw new IommuException(Errno.EEXIST, String.format("VFIO_IOMMU_MAP_DMA: iova 0x%x+0x%x overlaps the"
                    + " mapping at 0x%x+0x%x", iova, size, m.iova(), m.size()));
        }
    }

    /**
     * {@code VFIO_IOMMU_UNMAP_DMA}: removes every mapping inside {@code [iova, iova+size)} and unpins its
     * pages. As type 1 v2 rules it (and every type but the original type 1), a range that would split a mapping
     * is refused. The original {@link Vfio#TYPE1_IOMMU} keeps its v1 rules instead: a range that starts inside
     * a mapping unmaps nothing and returns 0, and a mapping that starts inside the range is removed whole, even
     * where it runs past the range's end (the returned size says how much went).
     *
     * @param caller who asks
     * @param iova page-aligned start
     * @param size page-aligned length, positive
     * @return bytes unmapped (0 when nothing was mapped there)
     * @throws IommuException {@link Errno#EINVAL} for bad arguments or a range that splits a mapping
     */
    public long unmapDma(UserProcess caller, long iova, long size) {
        lock.lock();
        try {
            requireIommu(caller, VfioAccess.Step.UNMAP);
            if (size <= 0 || ((iova | size) & PhysicalMemory.PAGE_OFFSET_MASK) != 0 || iova + size < iova) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA: iova 0x%x size 0x%x:"
                        + " both must be page-aligned and size positive", iova, size));
            }
            long end = iova + size;
            Map.Entry<Long, Mapping> first = mappings.lowerEntry(iova);
            if (type == Vfio.TYPE1_IOMMU) {
                if (first != null && first.getValue().end() > iova) {
                    return 0;
                }
                return removeStartingIn(iova, end);
            }
            if (first != null && first.getValue().end() > iova) {
                throw split(iova, size, first.getValue());
            }
            Map.Entry<Long, Mapping> last = mappings.lowerEntry(end);
            if (last != null && last.getKey() >= iova && last.getValue().end() > end) {
                throw split(iova, size, last.getValue());
            }
            return removeStartingIn(iova, end);
        } finally {
            lock.unlock();
        }
    }

    private long removeStartingIn(long iova, long end) {
        long unmapped = 0;
        for (Mapping m : new ArrayList<>(mappings.subMap(iova, true, end, false).values())) {
            remove(m);
            unmapped += m.mapping().size();
        }
        return unmapped;
    }

    private static IommuException split(long iova, long size, Mapping m) {
        return new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA: iova 0x%x+0x%x would split the"
                + " mapping at 0x%x+0x%x; unmap whole mappings", iova, size, m.mapping().iova(), m.mapping().size()));
    }

    private void remove(Mapping m) {
        mappings.remove(m.mapping().iova());
        iommu.unmap(m.mapping());
        m.owner().unpin(m.mapping().pages());
    }

    /**
     * Makes what the devices wrote into {@code [iova, iova+size)} visible in the user's memory: a no-op for
     * drivers that map user memory directly, a copy for a bouncing one.
     *
     * @param caller who asks
     * @param iova inside a mapping
     * @param size bytes, inside the same mapping
     * @throws IommuException {@link Errno#EINVAL} for a range not inside one mapping
     */
    public void syncForCpu(UserProcess caller, long iova, long size) {
        sync(caller, iova, size, true);
    }

    /**
     * Makes what the user wrote into {@code [iova, iova+size)} visible to the devices.
     *
     * @param caller who asks
     * @param iova inside a mapping
     * @param size bytes, inside the same mapping
     */
    public void syncForDevice(UserProcess caller, long iova, long size) {
        sync(caller, iova, size, false);
    }

    private void sync(UserProcess caller, long iova, long size, boolean forCpu) {
        lock.lock();
        try {
            requireIommu(caller, VfioAccess.Step.SYNC);
            Map.Entry<Long, Mapping> e = mappings.floorEntry(iova);
            if (size <= 0 || e == null || iova + size > e.getValue().end() || iova + size < iova) {
                throw new IommuException(Errno.EINVAL, String.format("sync of iova 0x%x+0x%x: not inside one"
                        + " mapping", iova, size));
            }
            VfioDmaMapping m = e.getValue().mapping();
            if (forCpu) {
                iommu.syncForCpu(m, iova - m.iova(), size);
            } else {
                iommu.syncForDevice(m, iova - m.iova(), size);
            }
        } finally {
            lock.unlock();
        }
    }

    /** @return the live mappings, by iova */
    public List<VfioDmaMapping> mappings() {
        lock.lock();
        try {
            return mappings.values().stream().map(Mapping::mapping).toList();
        } finally {
            lock.unlock();
        }
    }

    private void requireIommu(UserProcess caller, VfioAccess.Step step) {
        requireOpen();
        if (driver == null) {
            throw new IommuException(Errno.EINVAL, "the container has no iommu type: VFIO_SET_IOMMU first");
        }
        VfioAccess.checkContainer(caller, driver.driver().requiredCapabilities(), step,
                "a container with " + driver.driver().name());
    }

    private void requireOpen() {
        if (closed) {
            throw new IommuException(Errno.EBADF, "the container is closed");
        }
    }

    /** A group joins; called by the group file under the host's configuration lock. */
    void attach(VfioGroup group) {
        lock.lock();
        try {
            requireOpen();
            if (!groups.isEmpty() && groups.get(0).isolated() != group.isolated()) {
                throw new IommuException(Errno.EPERM, group.node() + " cannot join this container: groups with"
                        + " and without IOMMU isolation do not mix in one container");
            }
            Iommu core = vfio.host().iommu();
            core.claimDmaOwner(group.group(), group);
            if (iommu != null) {
                try {
                    iommu.attachGroup(group.group());
                } catch (RuntimeException e) {
                    core.releaseDmaOwner(group.group());
                    throw e;
                }
            }
            groups.add(group);
            group.setContainer(this);
        } finally {
            lock.unlock();
        }
    }

    /** A group leaves; the last one takes the iommu and every mapping with it, as type 1's detach does. */
    void detach(VfioGroup group) {
        lock.lock();
        try {
            if (!groups.remove(group)) {
                return;
            }
            if (iommu != null) {
                if (groups.isEmpty()) {
                    for (Mapping m : new ArrayList<>(mappings.values())) {
                        remove(m);
                    }
                }
                iommu.detachGroup(group.group());
                if (groups.isEmpty()) {
                    iommu.release();
                    ModuleRef owner = driver.owner();
                    iommu = null;
                    driver = null;
                    type = 0;
                    owner.put();
                }
            }
            group.setContainer(null);
            vfio.host().iommu().releaseDmaOwner(group.group());
        } finally {
            lock.unlock();
        }
    }

    /**
     * Closes the container: every mapping goes, every group leaves, and the devices opened through those
     * groups are revoked (their calls fail with {@link Errno#ENODEV}), since without a container nothing
     * confines their DMA. Closing twice does nothing.
     */
    @Override
    public void close() {
        vfio.lock().lock();
        lock.lock();
        try {
            if (closed) {
                return;
            }
            opener.removeExitHook(exitHook);
            for (VfioGroup g : new ArrayList<>(groups)) {
                if (g.openFile() != null) {
                    g.openFile().revokeDevices("its container was closed");
                }
                detach(g);
            }
            closed = true;
        } finally {
            lock.unlock();
            vfio.lock().unlock();
        }
    }
}
