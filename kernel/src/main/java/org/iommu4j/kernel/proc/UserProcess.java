package org.iommu4j.kernel.proc;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.kernel.mem.BuddyAllocator;

/**
 * A user process on a simulated host: explicit credentials (uid and capabilities, never ambient), and a
 * virtual address space whose pages come from the host's page allocator. Ordinary mappings get one page at a
 * time from the top of memory downwards, so virtually consecutive pages are <em>not</em> physically
 * contiguous; {@link #mmapContiguous} asks for one physical run, as a hugepage or CMA mapping would.
 *
 * <p>Pinning ({@link #pin}) keeps frames in place for DMA: a pinned frame outlives {@link #munmap} and is
 * freed at its last unpin. Calls on one process are serialised; different processes never contend.
 */
public final class UserProcess {
    /** Where the first mapping goes; mappings grow upwards with a guard page between them. */
    public static final long MMAP_BASE = 0x7f00_0000_0000L;
    /** The kernel's default {@code RLIMIT_MEMLOCK} ({@code MLOCK_LIMIT}, 8 MiB since Linux 5.16). */
    public static final long DEFAULT_MEMLOCK_LIMIT = 8L << 20;
    /** {@code RLIM_INFINITY}: no limit. */
    public static final long RLIM_INFINITY = -1L;
    /**
     * The longest mmap this model takes: {@code Integer.MAX_VALUE} 4 KiB pages, 8 TiB - 4 KiB (an invention: the
     * kernel's limit is the address space, not a page count).
     */
    public static final long MAX_MMAP_LENGTH = (long) Integer.MAX_VALUE << PhysicalMemory.PAGE_SHIFT;

    private final int pid;
    private final String comm;
    private final int uid;
    private final Set<Capability> capabilities;
    private final PhysicalMemory memory;
    private final BuddyAllocator pages;
    private final TreeMap<Long, Vma> vmas = new TreeMap<>();
    private final PinCounts pins = new PinCounts();
    private final List<Vma> orphans = new ArrayList<>();
    private final List<Runnable> exitHooks = new ArrayList<>();
    private final List<FileObject> files = new ArrayList<>();
    private long nextVaddr = MMAP_BASE;
    private long pinnedTotal;
    private long lockedAdjust;
    private volatile long memlockLimit;
    private volatile long memlockHardLimit;
    private boolean alive = true;
    /** The mapping {@link #vmaAt} found last: pinning a buffer again finds it without a tree search or boxing. */
    private Vma lastVma;

    private record Vma(long start, long[] frames, boolean contiguous) {
        long end() {
            return start + ((long) frames.length << PhysicalMemory.PAGE_SHIFT);
        }
    }

    /**
     * @param pid process id
     * @param comm command name, as {@code comm} shows it
     * @param uid user id
     * @param capabilities effective capabilities
     * @param memory the host's memory
     * @param pages the host's page allocator
     */
    public UserProcess(int pid, String comm, int uid, Set<Capability> capabilities, PhysicalMemory memory,
            BuddyAllocator pages) {
        this(pid, comm, uid, capabilities, memory, pages, DEFAULT_MEMLOCK_LIMIT);
    }

    /**
     * A process started with a given {@code RLIMIT_MEMLOCK}, soft and hard, as {@code limits.conf} or the
     * parent that started it set it (since 1.2).
     *
     * @param pid process id
     * @param comm command name, as {@code comm} shows it
     * @param uid user id
     * @param capabilities effective capabilities
     * @param memory the host's memory
     * @param pages the host's page allocator
     * @param memlockLimit its soft and hard {@code RLIMIT_MEMLOCK} in bytes, or {@link #RLIM_INFINITY}
     * @throws IommuException {@link Errno#EINVAL} for a negative limit other than {@link #RLIM_INFINITY}
     */
    public UserProcess(int pid, String comm, int uid, Set<Capability> capabilities, PhysicalMemory memory,
            BuddyAllocator pages, long memlockLimit) {
        requireLimit(memlockLimit);
        this.memlockLimit = memlockLimit;
        this.memlockHardLimit = memlockLimit;
        this.pid = pid;
        this.comm = Objects.requireNonNull(comm);
        this.uid = uid;
        this.capabilities = capabilities.isEmpty() ? Set.of() : Collections.unmodifiableSet(EnumSet.copyOf(capabilities));
        this.memory = memory;
        this.pages = pages;
    }

    /** @return the process id */
    public int pid() {
        return pid;
    }

    /** @return the command name */
    public String comm() {
        return comm;
    }

    /** @return the user id */
    public int uid() {
        return uid;
    }

    /** @return the effective capabilities */
    public Set<Capability> capabilities() {
        return capabilities;
    }

    /**
     * @param capability a capability
     * @return whether the process holds it ({@code capable()})
     */
    public boolean capable(Capability capability) {
        return capabilities.contains(capability);
    }

    /**
     * The process's own {@code setrlimit(RLIMIT_MEMLOCK)} with the soft and the hard limit equal, as
     * {@code ulimit -l} sets them: how much memory the process may keep locked, which VFIO's pinning is charged
     * against unless the process has {@link Capability#CAP_IPC_LOCK}.
     *
     * @param bytes the limit, or {@link #RLIM_INFINITY}
     * @throws IommuException {@link Errno#EINVAL} for a negative limit other than {@link #RLIM_INFINITY};
     *     {@link Errno#EPERM} when it would raise the hard limit and the process lacks
     *     {@link Capability#CAP_SYS_RESOURCE} (nothing changes)
     * @see #setMemlockLimit(long, long)
     */
    public void setMemlockLimit(long bytes) {
        setMemlockLimit(bytes, bytes);
    }

    /**
     * The process's own {@code setrlimit(RLIMIT_MEMLOCK)}, as the kernel's {@code do_prlimit} checks it: the
     * soft limit may not pass the hard one, and only {@link Capability#CAP_SYS_RESOURCE} raises the hard limit
     * (lowering it is always allowed, and cannot be undone without that capability). Limits are unsigned:
     * {@link #RLIM_INFINITY} is the largest.
     *
     * @param soft the limit pinning is checked against, or {@link #RLIM_INFINITY}
     * @param hard the ceiling of the soft limit, or {@link #RLIM_INFINITY}
     * @throws IommuException {@link Errno#EINVAL} for a negative value other than {@link #RLIM_INFINITY} or
     *     a soft limit above the hard one; {@link Errno#EPERM} for a raise of the hard limit without
     *     CAP_SYS_RESOURCE; nothing changes then (since 1.2)
     */
    public synchronized void setMemlockLimit(long soft, long hard) {
        requireLimit(soft);
        requireLimit(hard);
        if (Long.compareUnsigned(soft, hard) > 0) {
            throw new IommuException(Errno.EINVAL, "setrlimit(RLIMIT_MEMLOCK): soft limit " + limitString(soft)
                    + " is above the hard limit " + limitString(hard) + ": expected soft <= hard");
        }
        if (Long.compareUnsigned(hard, memlockHardLimit) > 0 && !capable(Capability.CAP_SYS_RESOURCE)) {
            throw new IommuException(Errno.EPERM, "setrlimit(RLIMIT_MEMLOCK): Operation not permitted: raising"
                    + " the hard limit from " + limitString(memlockHardLimit) + " to " + limitString(hard)
                    + " needs CAP_SYS_RESOURCE; " + this + " does not have it");
        }
        this.memlockHardLimit = hard;
        this.memlockLimit = soft;
    }

    private static void requireLimit(long bytes) {
        if (bytes < 0 && bytes != RLIM_INFINITY) {
            throw new IommuException(Errno.EINVAL, "RLIMIT_MEMLOCK " + bytes + " is invalid: expected 0 or more"
                    + " bytes, or RLIM_INFINITY (-1)");
        }
    }

    private static String limitString(long bytes) {
        return bytes == RLIM_INFINITY ? "unlimited" : Long.toString(bytes);
    }

    /** @return the soft {@code RLIMIT_MEMLOCK} in bytes, the one pinning is checked against, or {@link #RLIM_INFINITY} */
    public long memlockLimit() {
        return memlockLimit;
    }

    /** @return the hard {@code RLIMIT_MEMLOCK} in bytes, or {@link #RLIM_INFINITY} (since 1.2) */
    public long memlockHardLimit() {
        return memlockHardLimit;
    }

    /** @return {@code comm:pid}, as the kernel prints a process */
    @Override
    public String toString() {
        return comm + ":" + pid;
    }

    /**
     * Maps anonymous memory: zeroed pages, physically scattered.
     *
     * @param length bytes, rounded up to whole pages
     * @return the first virtual address, page-aligned
     * @throws IommuException {@link Errno#ENOMEM} when memory runs out, refused before anything is allocated
     *     when the length is more than the free memory (nothing stays allocated), {@link Errno#EINVAL} for a
     *     length below 1 or above 8 TiB - 4 KiB ({@value #MAX_MMAP_LENGTH} bytes)
     */
    public synchronized long mmap(long length) {
        int count = pageCount(length);
        long free = pages.freePageCount();
        if (count > free) {
            throw new IommuException(Errno.ENOMEM, "mmap of " + length + " bytes in " + this + ": out of memory: it"
                    + " needs " + count + " pages and " + free + " are free");
        }
        long[] frames = new long[count];
        try {
            for (int i = 0; i < count; i++) {
                frames[i] = pages.allocateUserPage();
                memory.fill(frames[i], PhysicalMemory.PAGE_SIZE, (byte) 0);
            }
        } catch (IommuException e) {
            for (long f : frames) {
                if (f != 0) {
                    pages.freePages(f, 0);
                }
            }
            throw e;
        }
        return insert(frames, false);
    }

    /**
     * Maps zeroed memory that is one physically contiguous run.
     *
     * @param length bytes, rounded up to whole pages
     * @return the first virtual address, page-aligned
     * @throws IommuException {@link Errno#ENOMEM} when no run that long is free
     */
    public synchronized long mmapContiguous(long length) {
        int count = pageCount(length);
        long first = pages.allocateContiguous(count, PageAllocator.NO_LIMIT);
        memory.fill(first, (long) count << PhysicalMemory.PAGE_SHIFT, (byte) 0);
        long[] frames = new long[count];
        for (int i = 0; i < count; i++) {
            frames[i] = first + ((long) i << PhysicalMemory.PAGE_SHIFT);
        }
        return insert(frames, true);
    }

    private int pageCount(long length) {
        requireAlive();
        if (length < 1 || PhysicalMemory.pageAlignUp(length) >>> PhysicalMemory.PAGE_SHIFT > Integer.MAX_VALUE) {
            throw new IommuException(Errno.EINVAL, "mmap length " + length + " is invalid: expected 1 to "
                    + MAX_MMAP_LENGTH + " bytes (8 TiB - 4 KiB)");
        }
        return (int) (PhysicalMemory.pageAlignUp(length) >>> PhysicalMemory.PAGE_SHIFT);
    }

    private long insert(long[] frames, boolean contiguous) {
        long start = nextVaddr;
        vmas.put(start, new Vma(start, frames, contiguous));
        nextVaddr = start + ((long) (frames.length + 1) << PhysicalMemory.PAGE_SHIFT);
        return start;
    }

    /**
     * Unmaps a whole mapping. Pinned frames stay allocated until unpinned.
     *
     * @param vaddr the address {@link #mmap} or {@link #mmapContiguous} returned
     * @throws IommuException {@link Errno#EINVAL} if no mapping starts there
     */
    public synchronized void munmap(long vaddr) {
        Vma vma = vmas.get(vaddr);
        if (vma == null) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "munmap of 0x%x in %s: no mapping starts there", vaddr, this));
        }
        vmas.remove(vaddr);
        lastVma = null;
        release(vma);
    }

    /** Frees a mapping's frames now, or when its last pinned frame is unpinned. */
    private void release(Vma vma) {
        for (long f : vma.frames()) {
            if (pins.get(f) != 0) {
                orphans.add(vma);
                return;
            }
        }
        if (vma.contiguous()) {
            pages.freeContiguous(vma.frames()[0], vma.frames().length);
        } else {
            for (long f : vma.frames()) {
                pages.freePages(f, 0);
            }
        }
    }

    /**
     * Writes user memory, as the process's own stores would.
     *
     * @param vaddr first virtual address
     * @param src bytes
     * @throws IommuException {@link Errno#EFAULT} if any byte is unmapped (nothing is written)
     */
    public void write(long vaddr, byte[] src) {
        write(vaddr, src, 0, src.length);
    }

    /**
     * @param vaddr first virtual address
     * @param src source
     * @param offset first index
     * @param length bytes
     * @see #write(long, byte[])
     */
    public synchronized void write(long vaddr, byte[] src, int offset, int length) {
        AddressRange.requireSlice(src.length, offset, length);
        long[] frames = frames(vaddr, length);
        copy(vaddr, frames, src, offset, length, true);
    }

    /**
     * Reads user memory.
     *
     * @param vaddr first virtual address
     * @param length bytes
     * @return the bytes
     * @throws IommuException {@link Errno#EFAULT} if any byte is unmapped, {@link Errno#EINVAL} for a length
     *     below 1
     */
    public byte[] read(long vaddr, int length) {
        AddressRange.arrayLength("read length", length);
        frames(vaddr, length);
        byte[] out = new byte[length];
        read(vaddr, out, 0, length);
        return out;
    }

    /**
     * @param vaddr first virtual address
     * @param dst destination
     * @param offset first index
     * @param length bytes
     * @see #read(long, int)
     */
    public synchronized void read(long vaddr, byte[] dst, int offset, int length) {
        AddressRange.requireSlice(dst.length, offset, length);
        long[] frames = frames(vaddr, length);
        copy(vaddr, frames, dst, offset, length, false);
    }

    private void copy(long vaddr, long[] frames, byte[] buffer, int offset, int length, boolean write) {
        int done = 0;
        int page = 0;
        while (done < length) {
            long at = vaddr + done;
            int inPage = (int) (at & PhysicalMemory.PAGE_OFFSET_MASK);
            int chunk = Math.min(length - done, PhysicalMemory.PAGE_SIZE - inPage);
            if (write) {
                memory.write(frames[page] + inPage, buffer, offset + done, chunk);
            } else {
                memory.read(frames[page] + inPage, buffer, offset + done, chunk);
            }
            done += chunk;
            page++;
        }
    }

    /**
     * The physical address behind a virtual address, as {@code /proc/<pid>/pagemap} tells it.
     *
     * @param vaddr a virtual address
     * @return its physical address
     * @throws IommuException {@link Errno#EFAULT} if unmapped
     */
    public synchronized long virtToPhys(long vaddr) {
        return frames(vaddr, 1)[0] + (vaddr & PhysicalMemory.PAGE_OFFSET_MASK);
    }

    /**
     * The frames behind every page a range touches.
     *
     * @param vaddr first virtual address
     * @param length bytes, at least 1
     * @return page-aligned physical addresses, one per page
     * @throws IommuException {@link Errno#EFAULT} naming the first unmapped page
     */
    public synchronized long[] pagemap(long vaddr, long length) {
        return frames(vaddr, length);
    }

    /**
     * The frames behind a range. Every page is checked to be mapped, one mapping at a time, before anything is
     * allocated, so that the array is never larger than what is really mapped (a length of 1 TiB over a
     * 16 KiB mapping is EFAULT, not an OutOfMemoryError).
     */
    private long[] frames(long vaddr, long length) {
        requireAlive();
        if (length == 0) {
            throw new IommuException(Errno.EINVAL, "length 0 is invalid: expected at least 1 byte");
        }
        if (AddressRange.wraps(vaddr, length)) {
            throw new IommuException(Errno.EFAULT, String.format("range 0x%x+0x%x wraps", vaddr, length));
        }
        long first = PhysicalMemory.pageAlignDown(vaddr);
        long lastPage = PhysicalMemory.pageAlignDown(vaddr + length - 1);
        long page = first;
        while (true) {
            Vma v = page < 0 ? null : vmaAt(page);
            if (v == null) {
                throw new IommuException(Errno.EFAULT, String.format(
                        "address 0x%x is not mapped in %s", page == first ? vaddr : page, this));
            }
            if (Long.compareUnsigned(lastPage, v.end()) < 0) {
                break;
            }
            page = v.end();
        }
        long count = ((lastPage - first) >>> PhysicalMemory.PAGE_SHIFT) + 1;
        long[] out = new long[(int) count];
        for (int i = 0; i < out.length; i++) {
            long at = first + ((long) i << PhysicalMemory.PAGE_SHIFT);
            Vma v = vmaAt(at);
            out[i] = v.frames()[(int) ((at - v.start()) >>> PhysicalMemory.PAGE_SHIFT)];
        }
        return out;
    }

    /** @return the mapping that holds a (non-negative) page address, or null */
    private Vma vmaAt(long page) {
        Vma v = lastVma;
        if (v != null && page >= v.start() && page < v.end()) {
            return v;
        }
        var e = vmas.floorEntry(page);
        if (e == null || page >= e.getValue().end()) {
            return null;
        }
        lastVma = e.getValue();
        return lastVma;
    }

    /**
     * Pins the pages of a range for DMA ({@code pin_user_pages}): each frame's pin count goes up by one.
     *
     * @param vaddr first virtual address
     * @param length bytes, at least 1
     * @return the pinned frames
     * @throws IommuException {@link Errno#EFAULT} if any page is unmapped (nothing is pinned)
     */
    public synchronized PinnedPages pin(long vaddr, long length) {
        long[] frames = frames(vaddr, length);
        for (long f : frames) {
            pins.increment(f);
        }
        pinnedTotal += frames.length;
        return new PinnedPages(vaddr, length, frames);
    }

    /**
     * Drops the pins {@link #pin} took; a frame that was unmapped meanwhile is freed at its last unpin.
     *
     * @param pinned what {@link #pin} returned
     * @throws IommuException {@link Errno#EINVAL} if a frame is not pinned (nothing changes)
     */
    public synchronized void unpin(PinnedPages pinned) {
        for (int i = 0; i < pinned.pageCount(); i++) {
            if (pins.get(pinned.frame(i)) == 0) {
                throw new IommuException(Errno.EINVAL, String.format(
                        "unpin of frame 0x%x in %s: it is not pinned", pinned.frame(i), this));
            }
        }
        boolean freedSome = false;
        for (int i = 0; i < pinned.pageCount(); i++) {
            if (pins.decrement(pinned.frame(i))) {
                freedSome = true;
            }
        }
        pinnedTotal -= pinned.pageCount();
        if (freedSome && !orphans.isEmpty()) {
            List<Vma> waiting = new ArrayList<>(orphans);
            orphans.clear();
            waiting.forEach(this::release);
        }
    }

    /**
     * @param vaddr a mapped virtual address
     * @return how many pins the page holding it has
     */
    public synchronized int pinCount(long vaddr) {
        return pins.get(frames(vaddr, 1)[0]);
    }

    /**
     * @return pages charged to the process's locked memory (the kernel's {@code locked_vm} for VFIO): the pin
     *     references it holds, plus what {@link #chargeLocked} moved to it
     */
    public synchronized long lockedPages() {
        return pinnedTotal + lockedAdjust;
    }

    /**
     * Moves locked-memory accounting without pinning, as type1's {@code vfio_change_dma_owner} does when a live
     * update hands a mapping to another process: the pins stay where they are, the charge moves (since 1.2).
     *
     * @param delta pages to add (negative to take away)
     */
    public synchronized void chargeLocked(long delta) {
        lockedAdjust += delta;
    }

    /**
     * Puts a file in the process's descriptor table (open, fork, or a received {@code SCM_RIGHTS}).
     *
     * @throws IommuException {@link Errno#ESRCH} after exit
     */
    synchronized void install(FileObject file) {
        requireAlive();
        for (FileObject f : files) {
            if (f == file) {
                return;
            }
        }
        files.add(file);
    }

    synchronized void uninstall(FileObject file) {
        files.removeIf(f -> f == file);
    }

    /** @return how many files the process holds descriptors to (since 1.2) */
    public synchronized int openFileCount() {
        return files.size();
    }

    /**
     * {@code fork()}: a child with the same credentials and limits, a copy of the address space (every page
     * copied now, as the kernel copies pinned pages at fork instead of sharing them copy-on-write, since a DMA
     * pin must keep pointing at the parent's page) and a descriptor to every file the parent holds. Pins and
     * locked memory are not inherited; exit hooks are not either.
     *
     * @param childPid the child's process id
     * @return the child
     * @throws IommuException {@link Errno#ESRCH} after exit, {@link Errno#ENOMEM} when memory for the copy runs
     *     out (nothing stays allocated and the parent is unchanged) (since 1.2)
     */
    public UserProcess fork(int childPid) {
        UserProcess child = new UserProcess(childPid, comm, uid, capabilities, memory, pages, RLIM_INFINITY);
        List<FileObject> inherited;
        synchronized (this) {
            requireAlive();
            child.memlockLimit = memlockLimit;
            child.memlockHardLimit = memlockHardLimit;
            try {
                for (Vma vma : vmas.values()) {
                    long[] copy = new long[vma.frames().length];
                    if (vma.contiguous()) {
                        long run = pages.allocateContiguous(copy.length, PageAllocator.NO_LIMIT);
                        for (int i = 0; i < copy.length; i++) {
                            copy[i] = run + ((long) i << PhysicalMemory.PAGE_SHIFT);
                        }
                    } else {
                        for (int i = 0; i < copy.length; i++) {
                            try {
                                copy[i] = pages.allocateUserPage();
                            } catch (IommuException e) {
                                for (int j = 0; j < i; j++) {
                                    pages.freePages(copy[j], 0);
                                }
                                throw e;
                            }
                        }
                    }
                    byte[] page = new byte[PhysicalMemory.PAGE_SIZE];
                    for (int i = 0; i < copy.length; i++) {
                        memory.read(vma.frames()[i], page, 0, page.length);
                        memory.write(copy[i], page, 0, page.length);
                    }
                    child.vmas.put(vma.start(), new Vma(vma.start(), copy, vma.contiguous()));
                }
            } catch (IommuException e) {
                for (Vma vma : child.vmas.values()) {
                    child.release(vma);
                }
                throw e;
            }
            child.nextVaddr = nextVaddr;
            inherited = new ArrayList<>(files);
            child.files.addAll(inherited);
        }
        for (FileObject f : inherited) {
            f.inherit(child);
        }
        return child;
    }

    /**
     * Runs a hook when the process exits, before its memory goes: open VFIO files close here.
     *
     * @param hook the hook
     */
    public synchronized void onExit(Runnable hook) {
        requireAlive();
        exitHooks.add(hook);
    }

    /**
     * Takes back a hook {@link #onExit} registered, as closing a file before exit does; nothing happens if it
     * is not registered (or already ran).
     *
     * @param hook the same object that was registered
     */
    public synchronized void removeExitHook(Runnable hook) {
        exitHooks.removeIf(h -> h == hook);
    }

    /** @return how many exit hooks are registered (open files that exit would close) */
    public synchronized int exitHookCount() {
        return exitHooks.size();
    }

    /** @return false after {@link #exit()} */
    public synchronized boolean isAlive() {
        return alive;
    }

    /**
     * Exits: runs exit hooks (latest first), closes every file it holds (latest opened first; a file another
     * process still holds stays open), then unmaps everything.
     */
    public void exit() {
        List<Runnable> hooks;
        synchronized (this) {
            if (!alive) {
                return;
            }
            hooks = new ArrayList<>(exitHooks);
            exitHooks.clear();
        }
        Collections.reverse(hooks);
        for (Runnable h : hooks) {
            h.run();
        }
        List<FileObject> open;
        synchronized (this) {
            open = new ArrayList<>(files);
            files.clear();
        }
        Collections.reverse(open);
        for (FileObject f : open) {
            f.drop(this);
        }
        synchronized (this) {
            lastVma = null;
            for (Vma vma : new ArrayList<>(vmas.values())) {
                vmas.remove(vma.start());
                release(vma);
            }
            alive = false;
        }
    }

    private void requireAlive() {
        if (!alive) {
            throw new IommuException(Errno.ESRCH, "process " + this + " has exited");
        }
    }
}
