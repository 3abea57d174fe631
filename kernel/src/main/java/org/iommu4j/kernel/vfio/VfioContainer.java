package org.iommu4j.kernel.vfio;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.concurrent.locks.ReentrantLock;
import org.iommu4j.api.AddressRange;
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
import org.iommu4j.kernel.proc.FileObject;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioIommuDrivers.Registered;

/**
 * A VFIO container, what {@code open("/dev/vfio/vfio")} returns ({@code drivers/vfio/container.c} and, for
 * its type 1 ioctls, {@code drivers/vfio/vfio_iommu_type1.c}, Linux v6.12): groups join it, then an iommu type
 * is set, then user memory is mapped for the groups' devices. The container keeps the interval bookkeeping
 * every backend shares (overlap, split, pinning, ownership, teardown); its driver only maps and unmaps.
 *
 * <p>It is a file: only a process that holds it (opened it, inherited it by fork, or was passed it with
 * {@link #passTo}) may use it; any other gets {@link Errno#EBADF}. As in the kernel, each group in it keeps it
 * alive: closing the last descriptor while groups are in it changes nothing for their devices, and the
 * container goes when its last group leaves.
 *
 * <p>Addresses and sizes are unsigned 64-bit numbers, checked through {@link AddressRange}. Each mapping
 * belongs to the process that made it ({@code vfio_dma->task}): an unmap stops at the first mapping of
 * another process and reports what it removed so far, as {@code vfio_dma_do_unmap} does.
 *
 * <p>Map, unmap and sync take this container's lock only, never a lock all containers share.
 */
public final class VfioContainer extends FileObject {
    /** The node a container is opened from. */
    public static final String NODE = "/dev/vfio/vfio";

    private final org.iommu4j.kernel.vfio.Vfio vfio;
    private final UserProcess opener;
    private final ReentrantLock lock = new ReentrantLock();
    private final List<VfioGroup> groups = new ArrayList<>();
    private final IovaTree<Dma> mappings = new IovaTree<>();
    private Registered driver;
    private VfioIommu iommu;
    private int type;
    private int vaddrInvalidCount;
    private boolean released;

    /** A mapping as type 1 tracks it ({@code struct vfio_dma}). */
    private static final class Dma {
        final VfioDmaMapping mapping;
        /** The process whose pin references hold the pages; they are dropped there at unmap. */
        final UserProcess pinHolder;
        /** {@code dma->task}: who may unmap it, and whose locked memory it is charged to. */
        UserProcess owner;
        long vaddr;
        boolean vaddrInvalid;
        /** Pages charged to the owner's locked memory (type 1 only). */
        final long lockedPages;

        Dma(VfioDmaMapping mapping, UserProcess owner, long lockedPages) {
            this.mapping = mapping;
            this.pinHolder = owner;
            this.owner = owner;
            this.vaddr = mapping.pages().vaddr();
            this.lockedPages = lockedPages;
        }

        long iova() {
            return mapping.iova();
        }

        long last() {
            return mapping.iova() + mapping.size() - 1;
        }
    }

    VfioContainer(org.iommu4j.kernel.vfio.Vfio vfio, UserProcess opener) {
        this.vfio = vfio;
        this.opener = opener;
    }

    /** Installs the container in its opener's descriptor table. */
    void open() {
        openBy(opener);
    }

    @Override
    public String fileName() {
        return NODE;
    }

    /** @return the process that opened it */
    public UserProcess opener() {
        return opener;
    }

    /**
     * @return whether the container is gone: no process holds it and no group is in it (it cannot come back)
     */
    public boolean released() {
        lock.lock();
        try {
            return released;
        } finally {
            lock.unlock();
        }
    }

    /**
     * {@code VFIO_GET_API_VERSION}.
     *
     * @param caller who asks
     * @return {@link Vfio#API_VERSION}
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container
     */
    public int apiVersion(UserProcess caller) {
        requireHeld(caller);
        return Vfio.API_VERSION;
    }

    /**
     * {@code VFIO_CHECK_EXTENSION}: with an iommu type set, the driver's answer (type 1 answers
     * {@link Vfio#UPDATE_VADDR} only then); before, the first positive answer of a registered driver that may
     * serve the container's groups (any driver while it has none).
     *
     * @param caller who asks
     * @param extension an iommu type or other extension number
     * @return positive when supported
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container
     */
    public int checkExtension(UserProcess caller, int extension) {
        requireHeld(caller);
        lock.lock();
        try {
            if (driver != null) {
                if (iommu instanceof Type1IommuDriver.Container t1) {
                    return t1.checkExtension(extension);
                }
                return driver.driver().checkExtension(extension);
            }
            for (Registered r : vfio.host().vfioDrivers().all()) {
                if (!groups.isEmpty() && r.driver().isolating() != groups.get(0).isolated()) {
                    continue;
                }
                int answer = r.driver().checkExtension(extension);
                if (answer > 0 && extension != Vfio.UPDATE_VADDR) {
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
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container;
     *     {@link Errno#EINVAL} with no groups or a type already set; {@link Errno#EPERM} when the driver needs a
     *     capability the caller lacks, or (type 1) a group's IOMMU does not remap interrupts;
     *     {@link Errno#ENODEV} when no driver offers the type for these groups
     */
    public void setIommu(UserProcess caller, int iommuType) {
        requireHeld(caller);
        vfio.lock().lock();
        lock.lock();
        try {
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
            for (Registered r : vfio.host().vfioDrivers().all()) {
                VfioIommuDriver d = r.driver();
                if (d.isolating() != isolated || d.checkExtension(iommuType) <= 0) {
                    continue;
                }
                try {
                    VfioAccess.checkContainer(caller, d, VfioAccess.Step.SET_IOMMU);
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
     * {@code VFIO_IOMMU_GET_INFO} of the type 1 driver ({@code vfio_iommu_type1_get_info}): the page sizes
     * the container maps with, and the capability chain of its valid IOVA ranges, its migration page sizes and
     * how many more mappings it takes.
     *
     * @param caller who asks
     * @return the answer
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container;
     *     {@link Errno#EINVAL} with no iommu type set; {@link Errno#ENOTTY} for a driver other than type 1
     */
    public VfioIommuInfo iommuInfo(UserProcess caller) {
        requireHeld(caller);
        lock.lock();
        try {
            requireIommu(caller, VfioAccess.Step.INFO, Vfio.IOMMU_GET_INFO);
            if (!(iommu instanceof Type1IommuDriver.Container t1)) {
                throw new IommuException(Errno.ENOTTY, "VFIO_IOMMU_GET_INFO: " + driver.driver().name()
                        + " does not implement it (Inappropriate ioctl for device)");
            }
            long pgsizes = t1.pgsizeBitmap();
            return new VfioIommuInfo(VfioIommuInfo.FLAG_PGSIZES | VfioIommuInfo.FLAG_CAPS, pgsizes,
                    t1.iovaRanges(), Long.lowestOneBit(pgsizes), VfioIommuInfo.DIRTY_BITMAP_SIZE_MAX,
                    vfio.dmaEntryLimit() - mappings.size());
        } finally {
            lock.unlock();
        }
    }

    /**
     * {@code VFIO_IOMMU_MAP_DMA}: pins {@code [vaddr, vaddr+size)} of the caller's memory and maps it for the
     * container's devices. The mapping belongs to the caller. The checks run in {@code vfio_dma_do_map}'s order:
     * flags, alignment to the IOMMU's smallest page (type 1: the smallest size of the domains' page-size
     * bitmaps, at least 4 KiB), wrap of iova or vaddr (unsigned), overlap, the entry limit, valid IOVA ranges,
     * then pinning.
     *
     * @param caller whose memory it is
     * @param vaddr aligned virtual address
     * @param size aligned length, not 0
     * @param iova aligned device address, or {@link Vfio#ANY_IOVA} for a driver that chooses
     * @param prot {@link IommuProt#READ} (the device reads), {@link IommuProt#WRITE} (it writes), or both
     * @return the mapping, with the device address to use
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container;
     *     {@link Errno#EINVAL} for bad arguments, no iommu type, or (type 1) a range outside the valid IOVA
     *     ranges (the x86 MSI window, a device's RMRR); {@link Errno#EEXIST} when the range overlaps a mapping;
     *     {@link Errno#EFAULT} for unmapped user memory; {@link Errno#EPERM} without the driver's capability;
     *     {@link Errno#ENOMEM} when {@code failslab} or the page allocator fails, or (type 1) when pinning would
     *     pass the caller's RLIMIT_MEMLOCK without CAP_IPC_LOCK; {@link Errno#ENOSPC} (type 1) past
     *     {@code vfio_iommu_type1.dma_entry_limit}; {@link Errno#ENOTTY} from a driver that does not map; the
     *     driver's refusal. Nothing stays pinned or mapped on failure.
     */
    public VfioDmaMapping mapDma(UserProcess caller, long vaddr, long size, long iova, int prot) {
        requireHeld(caller);
        lock.lock();
        try {
            requireIommu(caller, VfioAccess.Step.MAP, Vfio.IOMMU_MAP_DMA);
            if ((prot & ~(IommuProt.READ | IommuProt.WRITE)) != 0 || (prot & (IommuProt.READ | IommuProt.WRITE)) == 0) {
                throw new IommuException(Errno.EINVAL, "VFIO_IOMMU_MAP_DMA: flags " + IommuProt.toString(prot)
                        + " are invalid: expected READ, WRITE or both");
            }
            boolean any = iova == Vfio.ANY_IOVA;
            long pgsize = pageSize();
            checkMapArguments(vaddr, size, any ? 0 : iova, pgsize, any);
            if (!any) {
                requireFree(iova, size);
            }
            boolean type1 = iommu instanceof Type1IommuDriver.Container;
            if (type1 && mappings.size() >= vfio.dmaEntryLimit()) {
                throw new IommuException(Errno.ENOSPC, "VFIO_IOMMU_MAP_DMA: the container holds "
                        + mappings.size() + " mappings, the most vfio_iommu_type1.dma_entry_limit allows;"
                        + " unmap some or raise the limit");
            }
            if (!any && iommu instanceof Type1IommuDriver.Container t1) {
                t1.requireValidIova(iova, size);
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
            if (any) {
                try {
                    requireFree(at, size);
                } catch (IommuException e) {
                    iommu.unmap(mapping);
                    caller.unpin(pages);
                    throw e;
                }
            }
            mappings.put(at, new Dma(mapping, caller, type1 ? pages.pageCount() : 0));
            return mapping;
        } finally {
            lock.unlock();
        }
    }

    /** The size and wrap checks of {@code vfio_dma_do_map}, unsigned. */
    private static void checkMapArguments(long vaddr, long size, long iova, long pgsize, boolean anyIova) {
        if (size == 0 || ((size | iova | vaddr) & (pgsize - 1)) != 0) {
            throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x iova %s size"
                    + " 0x%x: vaddr, iova and size must be multiples of the IOMMU's smallest page 0x%x and size"
                    + " not 0", vaddr, anyIova ? "ANY" : "0x" + Long.toHexString(iova), size, pgsize));
        }
        if (AddressRange.wraps(iova, size)) {
            throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: iova 0x%x + size 0x%x wraps"
                    + " past 2^64: expected a size of at most 0x%x", iova, size, -iova));
        }
        if (AddressRange.wraps(vaddr, size)) {
            throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x + size 0x%x wraps"
                    + " past 2^64: expected a size of at most 0x%x", vaddr, size, -vaddr));
        }
    }

    /**
     * {@code VFIO_IOMMU_MAP_DMA} with {@link Vfio#DMA_MAP_FLAG_VADDR} (type 1, {@code vfio_dma_do_map}): gives
     * a mapping whose vaddr {@link #unmapDma(UserProcess, long, long, int)} invalidated a new user address,
     * for a live update. The IOMMU mapping and the pinned pages never change, so the devices DMA on
     * throughout; a caller other than the mapping's owner becomes its owner, and the mapping's locked memory
     * moves to it ({@code vfio_change_dma_owner}).
     *
     * @param caller the process the mapping will belong to
     * @param vaddr the new, aligned user address (the kernel trusts it to hold the same memory)
     * @param size the mapping's exact size
     * @param iova the mapping's exact iova
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container;
     *     {@link Errno#EINVAL} for bad arguments, a driver other than type 1, a range that is not exactly one
     *     mapping, or a mapping whose vaddr is valid; {@link Errno#ENOENT} when nothing is mapped there;
     *     {@link Errno#ENOMEM} when the new owner's RLIMIT_MEMLOCK cannot take the mapping's locked pages and
     *     it lacks CAP_IPC_LOCK. Nothing changes on failure.
     */
    public void mapDmaVaddr(UserProcess caller, long vaddr, long size, long iova) {
        requireHeld(caller);
        lock.lock();
        try {
            requireIommu(caller, VfioAccess.Step.MAP, Vfio.IOMMU_MAP_DMA);
            if (!(iommu instanceof Type1IommuDriver.Container)) {
                throw new IommuException(Errno.EINVAL, "VFIO_IOMMU_MAP_DMA: VFIO_DMA_MAP_FLAG_VADDR is a"
                        + " vfio-iommu-type1 feature; " + driver.driver().name() + " does not offer it");
            }
            checkMapArguments(vaddr, size, iova, pageSize(), false);
            Dma dma = findOverlap(iova, size);
            if (dma == null) {
                throw new IommuException(Errno.ENOENT, String.format("VFIO_IOMMU_MAP_DMA: VFIO_DMA_MAP_FLAG_VADDR"
                        + " at iova 0x%x+0x%x: nothing is mapped there", iova, size));
            }
            if (!dma.vaddrInvalid || dma.iova() != iova || dma.mapping.size() != size) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: VFIO_DMA_MAP_FLAG_VADDR"
                        + " at iova 0x%x+0x%x: expected exactly the mapping at 0x%x+0x%x, with its vaddr"
                        + " invalidated (it is %s)", iova, size, dma.iova(), dma.mapping.size(),
                        dma.vaddrInvalid ? "invalidated" : "valid"));
            }
            if (dma.owner != caller) {
                changeOwner(dma, caller);
            }
            dma.vaddr = vaddr;
            dma.vaddrInvalid = false;
            vaddrInvalidCount--;
        } finally {
            lock.unlock();
        }
    }

    /** {@code vfio_change_dma_owner}: the locked memory moves to the new owner, checked against its limit. */
    private void changeOwner(Dma dma, UserProcess to) {
        long n = dma.lockedPages;
        synchronized (to) {
            long limit = to.memlockLimit();
            if (n > 0 && limit != UserProcess.RLIM_INFINITY && !to.capable(Capability.CAP_IPC_LOCK)
                    && to.lockedPages() + n > limit >>> PhysicalMemory.PAGE_SHIFT) {
                throw new IommuException(Errno.ENOMEM, "VFIO_IOMMU_MAP_DMA: VFIO_DMA_MAP_FLAG_VADDR: the mapping's "
                        + n + " locked pages would pass RLIMIT_MEMLOCK (" + limit + ") of " + to + ", which has "
                        + to.lockedPages() + " locked; raise its RLIMIT_MEMLOCK or give it CAP_IPC_LOCK");
            }
            to.chargeLocked(n);
        }
        dma.owner.chargeLocked(-n);
        dma.owner = to;
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

    /** @return the mapping that overlaps {@code [iova, iova + size)} with the highest start, or null */
    private Dma findOverlap(long iova, long size) {
        long last = iova + size - 1;
        Dma below = mappings.floor(last);
        return below != null && Long.compareUnsigned(below.last(), iova) >= 0 ? below : null;
    }

    /** @return the mapping that holds the address, or null */
    private Dma containing(long address) {
        Dma d = mappings.floor(address);
        return d != null && Long.compareUnsigned(d.last(), address) >= 0 ? d : null;
    }

    private void requireFree(long iova, long size) {
        Dma d = findOverlap(iova, size);
        if (d != null) {
            throw new IommuException(Errno.EEXIST, String.format("VFIO_IOMMU_MAP_DMA: iova 0x%x+0x%x overlaps the"
                    + " mapping at 0x%x+0x%x", iova, size, d.iova(), d.mapping.size()));
        }
    }

    /**
     * {@code VFIO_IOMMU_UNMAP_DMA} without flags: see {@link #unmapDma(UserProcess, long, long, int)}.
     *
     * @param caller who asks
     * @param iova aligned start, unsigned
     * @param size aligned length, unsigned, not 0
     * @return bytes unmapped (0 when nothing of the caller's was mapped there)
     */
    public long unmapDma(UserProcess caller, long iova, long size) {
        return unmapDma(caller, iova, size, 0);
    }

    /**
     * {@code VFIO_IOMMU_UNMAP_DMA}, as {@code vfio_dma_do_unmap} rules it: removes the mappings inside
     * {@code [iova, iova+size)} (unsigned; the range may end at 2<sup>64</sup>) and unpins their pages, in
     * iova order, stopping at the first mapping another process made ({@code dma->task->mm != current->mm}):
     * what was removed before it stays removed and is reported, and a call that meets another's mapping first
     * returns 0. Type 1 v2 (and every type but the original type 1) refuses a range that would split a
     * mapping. The original {@link Vfio#TYPE1_IOMMU} keeps its v1 rules instead: the walk stops at a mapping
     * that starts before the range, and a mapping that starts inside the range is removed whole, even where it
     * runs past the range's end (the returned size says how much went).
     *
     * <p>{@link Vfio#DMA_UNMAP_FLAG_ALL} takes every mapping (iova and size must be 0; no split check).
     * {@link Vfio#DMA_UNMAP_FLAG_VADDR} (type 1) unmaps nothing: it invalidates the vaddr of each mapping in
     * range, which the devices keep using, until {@link #mapDmaVaddr} gives it a new one; meanwhile no group
     * may join (attaching could need to pin). A second invalidation of one mapping fails with
     * {@link Errno#EINVAL} and undoes the ones this call made.
     *
     * @param caller who asks
     * @param iova aligned start, unsigned; 0 with {@link Vfio#DMA_UNMAP_FLAG_ALL}
     * @param size aligned length, unsigned, not 0; 0 with {@link Vfio#DMA_UNMAP_FLAG_ALL}
     * @param flags 0, {@link Vfio#DMA_UNMAP_FLAG_ALL}, {@link Vfio#DMA_UNMAP_FLAG_VADDR}, or both
     * @return bytes unmapped (or invalidated)
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container;
     *     {@link Errno#EINVAL} for unknown flags, misalignment, a wrap past 2<sup>64</sup>, a split (v2), no
     *     iommu type, or a vaddr invalidated twice; {@link Errno#ENOTTY} from a driver that does not unmap
     */
    public long unmapDma(UserProcess caller, long iova, long size, int flags) {
        requireHeld(caller);
        lock.lock();
        try {
            requireIommu(caller, VfioAccess.Step.UNMAP, Vfio.IOMMU_UNMAP_DMA);
            boolean type1 = iommu instanceof Type1IommuDriver.Container;
            int known = Vfio.DMA_UNMAP_FLAG_ALL | (type1 ? Vfio.DMA_UNMAP_FLAG_VADDR : 0);
            if ((flags & ~known) != 0) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA: flags 0x%x are"
                        + " invalid: expected 0, VFIO_DMA_UNMAP_FLAG_ALL (0x%x)%s", flags, Vfio.DMA_UNMAP_FLAG_ALL,
                        type1 ? " or VFIO_DMA_UNMAP_FLAG_VADDR (0x4), alone or together" : ""));
            }
            boolean all = (flags & Vfio.DMA_UNMAP_FLAG_ALL) != 0;
            boolean invalidate = (flags & Vfio.DMA_UNMAP_FLAG_VADDR) != 0;
            long pgsize = pageSize();
            if ((iova & (pgsize - 1)) != 0) {
                throw badUnmap(iova, size, pgsize);
            }
            if (all) {
                if (iova != 0 || size != 0) {
                    throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA: iova 0x%x size"
                            + " 0x%x with VFIO_DMA_UNMAP_FLAG_ALL: expected both 0", iova, size));
                }
                size = -1L;
            } else if (size == 0 || (size & (pgsize - 1)) != 0) {
                throw badUnmap(iova, size, pgsize);
            } else if (AddressRange.wraps(iova, size)) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA: iova 0x%x + size 0x%x"
                        + " wraps past 2^64: expected a size of at most 0x%x", iova, size, -iova));
            }
            long last = iova + size - 1;
            boolean v1 = type == Vfio.TYPE1_IOMMU;
            Dma first = containing(iova);
            if (!v1 && !all) {
                if (first != null && first.iova() != iova) {
                    throw split(iova, size, first);
                }
                // a mapping that holds both ends holds the whole range: no second search
                Dma end = first != null && Long.compareUnsigned(first.last(), last) >= 0 ? first : containing(last);
                if (end != null && end.last() != last) {
                    throw split(iova, size, end);
                }
            }
            Dma start = first != null ? first : ceilingUpTo(iova, last);
            if (invalidate) {
                return invalidate(caller, iova, last, start, v1);
            }
            long unmapped = 0;
            for (Dma d = start; d != null && Long.compareUnsigned(d.iova(), last) <= 0; d = next(d)) {
                if (v1 && Long.compareUnsigned(iova, d.iova()) > 0 || d.owner != caller) {
                    break;
                }
                unmapped += d.mapping.size();
                remove(d);
            }
            return unmapped;
        } finally {
            lock.unlock();
        }
    }

    /** The VADDR branch of {@code vfio_dma_do_unmap}'s walk. */
    private long invalidate(UserProcess caller, long iova, long last, Dma start, boolean v1) {
        long done = 0;
        List<Dma> marked = new ArrayList<>();
        for (Dma d = start; d != null && Long.compareUnsigned(d.iova(), last) <= 0; d = next(d)) {
            if (v1 && Long.compareUnsigned(iova, d.iova()) > 0 || d.owner != caller) {
                break;
            }
            if (d.vaddrInvalid) {
                for (Dma m : marked) {
                    m.vaddrInvalid = false;
                    vaddrInvalidCount--;
                }
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA:"
                        + " VFIO_DMA_UNMAP_FLAG_VADDR: the vaddr of the mapping at 0x%x+0x%x is invalidated already;"
                        + " nothing was invalidated", d.iova(), d.mapping.size()));
            }
            d.vaddrInvalid = true;
            vaddrInvalidCount++;
            marked.add(d);
            done += d.mapping.size();
        }
        return done;
    }

    /** {@code vfio_find_dma_first_node}: the lowest mapping that overlaps {@code [iova, last]}. */
    private Dma findFirst(long iova, long last) {
        Dma d = containing(iova);
        return d != null ? d : ceilingUpTo(iova, last);
    }

    /** @return the lowest mapping that starts in {@code [iova, last]}, or null */
    private Dma ceilingUpTo(long iova, long last) {
        Dma d = mappings.ceiling(iova);
        return d != null && Long.compareUnsigned(d.iova(), last) <= 0 ? d : null;
    }

    private Dma next(Dma d) {
        return mappings.higher(d.iova());
    }

    private static IommuException badUnmap(long iova, long size, long pgsize) {
        return new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA: iova 0x%x size 0x%x: both"
                + " must be multiples of the IOMMU's smallest page 0x%x and size not 0", iova, size, pgsize));
    }

    private static IommuException split(long iova, long size, Dma m) {
        return new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_UNMAP_DMA: iova 0x%x+0x%x would split the"
                + " mapping at 0x%x+0x%x; unmap whole mappings", iova, size, m.iova(), m.mapping.size()));
    }

    private void remove(Dma m) {
        mappings.remove(m.iova());
        if (m.vaddrInvalid) {
            vaddrInvalidCount--;
        }
        iommu.unmap(m.mapping);
        m.pinHolder.unpin(m.mapping.pages());
        if (m.owner != m.pinHolder) {
            // the charge moved with the ownership; unpinning took it from the pin holder, so move it back
            m.owner.chargeLocked(-m.lockedPages);
            m.pinHolder.chargeLocked(m.lockedPages);
        }
    }

    /**
     * Makes what the devices wrote into {@code [iova, iova+size)} visible in the user's memory: a no-op for
     * drivers that map user memory directly, a copy for a bouncing one.
     *
     * @param caller who asks
     * @param iova inside a mapping
     * @param size bytes, inside the same mapping
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container;
     *     {@link Errno#EINVAL} for a range not inside one mapping
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
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the container;
     *     {@link Errno#EINVAL} for a range not inside one mapping
     */
    public void syncForDevice(UserProcess caller, long iova, long size) {
        sync(caller, iova, size, false);
    }

    private void sync(UserProcess caller, long iova, long size, boolean forCpu) {
        requireHeld(caller);
        lock.lock();
        try {
            requireIommu(caller, VfioAccess.Step.SYNC, 0);
            Dma d = containing(iova);
            if (size == 0 || d == null || AddressRange.wraps(iova, size)
                    || Long.compareUnsigned(iova + size - 1, d.last()) > 0) {
                throw new IommuException(Errno.EINVAL, String.format("sync of iova 0x%x+0x%x: not inside one"
                        + " mapping", iova, size));
            }
            VfioDmaMapping m = d.mapping;
            if (forCpu) {
                iommu.syncForCpu(m, iova - m.iova(), size);
            } else {
                iommu.syncForDevice(m, iova - m.iova(), size);
            }
        } finally {
            lock.unlock();
        }
    }

    /** @return the live mappings, by iova (unsigned order) */
    public List<VfioDmaMapping> mappings() {
        lock.lock();
        try {
            return mappings.values().stream().map(d -> d.mapping).toList();
        } finally {
            lock.unlock();
        }
    }

    /**
     * What type 1 records of each live mapping, by iova (unsigned order).
     *
     * @return one record per mapping
     */
    public List<VfioDmaRecord> dmaRecords() {
        lock.lock();
        try {
            return mappings.values().stream().map(d -> new VfioDmaRecord(d.iova(), d.mapping.size(), d.vaddr,
                    !d.vaddrInvalid, d.owner)).toList();
        } finally {
            lock.unlock();
        }
    }

    /** The IOMMU's smallest page: type 1's {@code __ffs(iommu->pgsize_bitmap)}, else the CPU's page. */
    private long pageSize() {
        return iommu instanceof Type1IommuDriver.Container t1 ? Long.lowestOneBit(t1.pgsizeBitmap())
                : PhysicalMemory.PAGE_SIZE;
    }

    private void requireIommu(UserProcess caller, VfioAccess.Step step, int request) {
        if (driver == null) {
            throw new IommuException(Errno.EINVAL, "the container has no iommu type: VFIO_SET_IOMMU first");
        }
        if (request != 0) {
            Optional<String> refused = iommu.unsupportedIoctl(request);
            if (refused.isPresent()) {
                throw new IommuException(Errno.ENOTTY, Vfio.ioctlName(request) + ": " + refused.get());
            }
        }
        VfioAccess.checkContainer(caller, driver.driver(), step);
    }

    /** @return whether the group may join: type 1 refuses while a vaddr is invalidated */
    private void requireNoInvalidVaddr() {
        if (vaddrInvalidCount > 0) {
            throw new IommuException(Errno.EINVAL, "VFIO_GROUP_SET_CONTAINER: " + vaddrInvalidCount + " mapping(s)"
                    + " of the container have their vaddr invalidated (VFIO_DMA_UNMAP_FLAG_VADDR), and attaching a"
                    + " group could need to pin them: re-point them with VFIO_DMA_MAP_FLAG_VADDR first");
        }
    }

    /**
     * A group joins; called by the group file under the host's configuration lock, after it checked the
     * caller's hold on this container. The group's DMA ownership is claimed here (the kernel's
     * {@code iommu_group_claim_dma_owner}, in {@code vfio_container_attach_group}) and given up when it leaves.
     */
    void attach(VfioGroup group) {
        lock.lock();
        try {
            if (released) {
                throw new IommuException(Errno.EBADF, NODE + " is released");
            }
            if (!groups.isEmpty() && groups.get(0).isolated() != group.isolated()) {
                throw new IommuException(Errno.EPERM, group.node() + " cannot join this container: groups with"
                        + " and without IOMMU isolation do not mix in one container");
            }
            Iommu core = vfio.host().iommu();
            boolean claimed = false;
            if (!group.dmaClaimed()) {
                core.claimDmaOwner(group.group(), group);
                group.setDmaClaimed(true);
                claimed = true;
            }
            if (iommu != null) {
                try {
                    if (iommu instanceof Type1IommuDriver.Container) {
                        requireNoInvalidVaddr();
                    }
                    iommu.attachGroup(group.group());
                } catch (RuntimeException e) {
                    if (claimed) {
                        core.releaseDmaOwner(group.group());
                        group.setDmaClaimed(false);
                    }
                    throw e;
                }
            }
            groups.add(group);
            group.setContainer(this);
        } finally {
            lock.unlock();
        }
    }

    /**
     * A group leaves; the last one takes the iommu and every mapping with it, as type 1's detach does, and the
     * container goes if no process holds it any more. VFIO gives up the group's DMA ownership
     * ({@code iommu_group_release_dma_owner}); no device of it is open then, as the kernel ensures.
     */
    void detach(VfioGroup group) {
        lock.lock();
        try {
            if (!groups.remove(group)) {
                return;
            }
            if (iommu != null) {
                if (groups.isEmpty()) {
                    for (Dma m : mappings.values()) {
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
                    vaddrInvalidCount = 0;
                    owner.put();
                }
            }
            group.setContainer(null);
            if (group.dmaClaimed()) {
                vfio.host().iommu().releaseDmaOwner(group.group());
                group.setDmaClaimed(false);
            }
            if (groups.isEmpty() && !held()) {
                released = true;
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * The last descriptor went. With no group in it the container goes now; otherwise its groups keep it,
     * and their devices keep their mappings, until the last group leaves.
     */
    @Override
    protected void lastClose() {
        vfio.lock().lock();
        lock.lock();
        try {
            if (groups.isEmpty()) {
                released = true;
            }
        } finally {
            lock.unlock();
            vfio.lock().unlock();
        }
    }
}
