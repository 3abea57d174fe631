package org.iommu4j.api;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * A page table for an {@link IommuDomain}, the kernel's io-pgtable library in miniature: iova pages to frames
 * with protection bits, 4 KiB granules. A backend whose hardware translates can keep one per domain and answer
 * {@link IommuDomain#map}, {@link IommuDomain#unmap} and {@link IommuDomain#translate} from it.
 *
 * <h2>Page sizes (since 1.2)</h2>
 * Besides 4 KiB leaves the table holds 2 MiB and 1 GiB leaves ({@link #SUPPORTED_PAGE_SIZES}), as x86-64 and
 * ARM LPAE page tables do: {@link #mapPages} writes a large leaf in the directory slot that would otherwise
 * point at a table, so one entry maps the whole page. {@link #map} still writes 4 KiB leaves only; the kernel's
 * core splits a mapping into the largest page sizes that fit (its {@code iommu_pgsize}) and calls
 * {@link #mapPages} per size. {@link #unmap} follows the rule of the Linux v6.12 VT-d and AMD drivers
 * ({@code drivers/iommu/intel/iommu.c intel_iommu_unmap}): a large leaf the range touches goes whole, and the
 * return says how much went, which may be more than was asked.
 *
 * <p>Addresses and sizes are unsigned 64-bit numbers: a size of {@code 1L << 63} is large, not negative.
 *
 * <h2>Structure</h2>
 * A radix tree of six levels, like a hardware IOMMU's. The iova is a full 64-bit unsigned address; its page
 * number (the top 52 bits) is split into a 7-bit index into the 128-entry top table and five 9-bit indexes
 * into tables of 512 entries. The five upper levels hold references to the tables below; the last level
 * holds page-table entries. An entry is one {@code long}, as in hardware: the page-aligned physical address
 * OR'ed with low flag bits (present, then the {@link IommuProt} bits), so a mapping costs 8 bytes in a leaf
 * table and no object of its own. Each leaf table covers 2 MiB of iova space, and the tables above it
 * 1 GiB, 512 GiB, 256 TiB, 2<sup>57</sup> bytes and, at the top, all 2<sup>64</sup>. A slot of the tables
 * covering 1 GiB and 512 GiB holds either a table or a large leaf (2 MiB or 1 GiB), never both. Tables are allocated
 * when {@link #map} first needs them and freed by an {@link #unmap} whose range covers all they span, the rule
 * of the Linux v6.12 VT-d driver ({@code dma_pte_clear_level}); an unmap of part of a table leaves it, empty or
 * not, so that mapping and unmapping one page in a loop allocates nothing after the first map. The top table
 * lives as long as the page table.
 *
 * <h2>Cost</h2>
 * {@link #lookup} reads five table references and one entry, each with acquire semantics (for a page in the
 * leaf table that the last {@link #map} or {@link #unmap} of a range inside one leaf table used, one reference
 * and one entry): a bounded number of loads whatever the iova and however many pages are mapped, no hashing,
 * no boxing, no allocation and no lock. {@link #map} and {@link #unmap} visit the pages of their range but
 * skip every absent table at once, so unmapping a large, sparsely mapped range is cheap. A map or unmap of a
 * range inside one leaf table (the DMA API's usual 4 KiB) walks down once, or not at all when that leaf table
 * is the one last used. {@link #mappedPages} reads a counter.
 *
 * <h2>Concurrency</h2>
 * {@link #lookup} may run from any number of threads concurrently with everything else; it sees every entry
 * whole, either as it was before a concurrent {@link #map} or {@link #unmap} of that page or as it is after.
 * A page that no concurrent call touches always translates the same way, even while its neighbours are
 * mapped and unmapped and the tables around it are allocated and freed. {@link #map} and {@link #unmap}
 * serialise on a lock private to each table (a spin lock, as the kernel's page-table code takes spin locks
 * and not sleeping ones: one compare-and-set to take it, a release store to drop it), and publish their
 * writes with release semantics: a table is fully built before it is linked in, and emptied before it is
 * unlinked and never used again, so a lookup that still holds a freed table finds it empty and reports
 * {@link IommuDomain#FAULT_NOT_MAPPED}, which is an answer a racing unmap permits.
 */
public final class IoPageTable {
    /** The page sizes {@link #mapPages} accepts, one bit per size: 4 KiB, 2 MiB and 1 GiB. @since 1.2 */
    public static final long SUPPORTED_PAGE_SIZES = (1L << 12) | (1L << 21) | (1L << 30);

    /** Index bits per level below the top. */
    private static final int BITS = 9;
    /** Entries in a table below the top. */
    private static final int ENTRIES = 1 << BITS;
    /** Mask of one level's index. */
    private static final int INDEX_MASK = ENTRIES - 1;
    /** Bits of the page number: 52. */
    private static final int PAGE_NUMBER_BITS = Long.SIZE - PhysicalMemory.PAGE_SHIFT;
    /** Levels of directories (tables of tables) above the leaves. */
    private static final int DIRECTORY_LEVELS = 5;
    /** How far the page number is shifted to index the top table: 45. */
    private static final int TOP_SHIFT = DIRECTORY_LEVELS * BITS;
    /** Entries in the top table: 128, for the 7 page-number bits the lower levels leave. */
    private static final int TOP_ENTRIES = 1 << (PAGE_NUMBER_BITS - TOP_SHIFT);
    /** The highest level (page-number shift) whose slots may hold a large leaf: 1 GiB leaves. */
    private static final int MAX_BLOCK_SHIFT = 2 * BITS;

    /** Entry flag: the entry maps a page. */
    private static final long PTE_PRESENT = 1L;
    /** Where the {@link IommuProt} bits sit in an entry. */
    private static final int PTE_PROT_SHIFT = 1;
    /** Entry flags: the access bits {@link #lookup} checks. */
    private static final long PTE_ACCESS = (long) (IommuProt.READ | IommuProt.WRITE) << PTE_PROT_SHIFT;

    /**
     * The lock: 1 while a {@link #map} or {@link #unmap} holds it, 0 otherwise; taken by {@link #lock()}, which
     * guards every write to the tree and to the counters. Lookups do not take it.
     */
    @SuppressWarnings("unused") // through LOCK
    private volatile int lock;
    /** The top table, never freed. */
    private final Table root = new Table(TOP_ENTRIES, false, false, 0);
    /**
     * The leaf table the last {@link #map} or {@link #unmap} of a range inside one leaf table used, or null: a
     * TLB of one entry for the walk, so that mapping, looking up and unmapping pages near each other (the DMA
     * API's pattern) read one reference instead of walking six levels. Written under {@link #lock()}, only when
     * it changes; set to null before any table is unlinked, so it only ever names a table that is linked, or
     * one being emptied and unlinked by a concurrent unmap (which a lookup finds empty, as it would by walking).
     */
    private volatile Table lastLeaf;
    /**
     * 4 KiB pages mapped (a 2 MiB leaf counts 512); written under {@link #lock()} with release semantics through
     * {@link #MAPPED} (a volatile store would add a full fence to every map and unmap), read with acquire.
     */
    private long mapped;
    /** {@link #mapped}, for its release stores and acquire loads. */
    private static final VarHandle MAPPED;
    /** {@link #lock}, for its compare-and-set. */
    private static final VarHandle LOCK;
    /** Spins before a waiter for the lock starts yielding its CPU. */
    private static final int SPINS = 100;

    static {
        try {
            MAPPED = MethodHandles.lookup().findVarHandle(IoPageTable.class, "mapped", long.class);
            LOCK = MethodHandles.lookup().findVarHandle(IoPageTable.class, "lock", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }
    /** Leaves by level: index 0 for 4 KiB, 1 for 2 MiB, 2 for 1 GiB; written under {@link #lock()}. */
    private final long[] leaves = new long[3];

    /** Creates an empty page table. */
    public IoPageTable() {
    }

    /**
     * One table of the tree: a directory of tables one level down, or a leaf of entries. A directory of the
     * two levels that may hold large leaves also has {@link #blocks}: slot {@code i} is either
     * {@code children[i]} or {@code blocks[i]}. Slots are read with acquire and written with release;
     * {@link #live} is touched only under the page table's lock.
     */
    private static final class Table {
        /** Tables one level down, or null in a leaf. */
        final AtomicReferenceArray<Table> children;
        /** Page-table entries: of 4 KiB pages in a leaf, of large leaves in a directory that may hold them. */
        final AtomicLongArray entries;
        /** Slots that are not empty. */
        int live;
        /** In a leaf, the number of the first page it covers (a multiple of 512); 0 in a directory. */
        final long base;

        Table(int size, boolean leaf, boolean blocks, long base) {
            this.base = base;
            children = leaf ? null : new AtomicReferenceArray<>(size);
            entries = leaf || blocks ? new AtomicLongArray(size) : null;
        }
    }

    /**
     * Maps {@code size} bytes from {@code iova} to consecutive frames from {@code phys} with 4 KiB leaves. The
     * whole range is checked before anything changes, so a failure leaves the table as it was.
     *
     * @param iova page-aligned bus address
     * @param phys page-aligned address the entries point at
     * @param size a non-zero multiple of the page size, unsigned; neither {@code [iova, iova+size)} nor
     *     {@code [phys, phys+size)} may wrap past 2<sup>64</sup>
     * @param prot {@link IommuProt} bits; {@link #lookup} enforces {@link IommuProt#READ} and
     *     {@link IommuProt#WRITE}, bits outside {@link IommuProt#ALL} are ignored
     * @throws IommuException {@link Errno#EINVAL} naming a misaligned address, a bad size or a range that
     *     wraps; {@link Errno#EEXIST} naming the first page already mapped; nothing is changed either way
     */
    public void map(long iova, long phys, long size, int prot) {
        requireAligned("iova", iova);
        requireAligned("phys", phys);
        requireSize(size);
        AddressRange.requireNoWrap("iova", iova, size);
        AddressRange.requireNoWrap("phys", phys, size);
        mapLevel(iova, phys, size, prot, 0);
    }

    /**
     * Maps {@code count} pages of {@code pageSize} bytes each, the io-pgtable {@code map_pages} of Linux v6.12
     * ({@code include/linux/io-pgtable.h}): a 2 MiB or 1 GiB page is one leaf entry. Checked whole first: a
     * failure leaves the table as it was.
     *
     * @param iova bus address, aligned to {@code pageSize}
     * @param phys physical address, aligned to {@code pageSize}
     * @param pageSize one of {@link #SUPPORTED_PAGE_SIZES}
     * @param count pages, at least 1 (unsigned); {@code pageSize * count} must not wrap either range
     * @param prot {@link IommuProt} bits
     * @throws IommuException {@link Errno#EINVAL} naming an unsupported page size, a misaligned address, a bad
     *     count or a range that wraps; {@link Errno#EEXIST} naming the first page already mapped
     * @since 1.2
     */
    public void mapPages(long iova, long phys, long pageSize, long count, int prot) {
        if (Long.bitCount(pageSize) != 1 || (pageSize & SUPPORTED_PAGE_SIZES) == 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "page size 0x%x is not supported: expected 0x1000, 0x200000 or 0x40000000", pageSize));
        }
        int sizeShift = Long.numberOfTrailingZeros(pageSize);
        if (!AddressRange.isAligned(iova, pageSize) || !AddressRange.isAligned(phys, pageSize)) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "iova 0x%x or phys 0x%x is not aligned to the page size 0x%x", iova, phys, pageSize));
        }
        if (count == 0 || Long.compareUnsigned(count, -1L >>> sizeShift) > 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "page count %s is invalid: expected 1 to %d pages of 0x%x",
                    Long.toUnsignedString(count), -1L >>> sizeShift, pageSize));
        }
        long size = count << sizeShift;
        AddressRange.requireNoWrap("iova", iova, size);
        AddressRange.requireNoWrap("phys", phys, size);
        mapLevel(iova, phys, size, prot, sizeShift - PhysicalMemory.PAGE_SHIFT);
    }

    private void mapLevel(long iova, long phys, long size, int prot, int targetShift) {
        long first = iova >>> PhysicalMemory.PAGE_SHIFT;
        long last = first + (size >>> PhysicalMemory.PAGE_SHIFT) - 1;
        long flags = PTE_PRESENT | (long) (prot & IommuProt.ALL) << PTE_PROT_SHIFT;
        lock();
        try {
            if (targetShift == 0 && first >>> BITS == last >>> BITS) {
                mapInOneLeafTable(first, last, (phys | flags));
                return;
            }
            long taken = firstMapped(root, TOP_SHIFT, 0, first, last);
            if (taken >= 0) {
                throw alreadyMapped(taken);
            }
            // Entry of page p: (phys of first) + (p - first) pages, with the flags.
            mapRange(root, TOP_SHIFT, 0, first, last, (phys | flags) - (first << PhysicalMemory.PAGE_SHIFT),
                    targetShift);
            MAPPED.setRelease(this, mapped + last - first + 1);
            leaves[targetShift / BITS] += (last - first + 1) >>> targetShift;
        } finally {
            unlock();
        }
    }

    /** Takes the lock: one compare-and-set when nobody holds it, else spins, then yields, until it is free. */
    private void lock() {
        if (!LOCK.compareAndSet(this, 0, 1)) {
            for (int tries = 1; (int) LOCK.getOpaque(this) != 0 || !LOCK.compareAndSet(this, 0, 1); tries++) {
                if (tries < SPINS) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield();
                }
            }
        }
    }

    /** Drops the lock with a release store, which publishes every write made under it. */
    private void unlock() {
        LOCK.setRelease(this, 0);
    }

    /**
     * {@link #mapLevel} of 4 KiB leaves for a range inside one leaf table's 2 MiB, the DMA API's usual map: one
     * walk down, checking and allocating as it goes, instead of a search and then a write. Nothing is allocated
     * before every check has passed: a missing table means that nothing below it is mapped, so once the walk has
     * allocated one no check can fail. The caller holds {@link #lock()}.
     *
     * @param pte the entry of page {@code first}; page {@code first + i} gets it plus {@code i} pages
     */
    private void mapInOneLeafTable(long first, long last, long pte) {
        Table table = lastLeaf;
        int index = (int) first & INDEX_MASK;
        if (table == null || table.base != first - index) {
            table = walkToLeafForMap(first);
        }
        int count = (int) (last - first) + 1;
        for (int i = 0; i < count; i++) {
            if (table.entries.getPlain(index + i) != 0) {
                throw alreadyMapped(first + i);
            }
        }
        for (int i = 0; i < count; i++) {
            table.entries.setRelease(index + i, pte + ((long) i << PhysicalMemory.PAGE_SHIFT));
        }
        table.live += count;
        leaves[0] += count;
        MAPPED.setRelease(this, mapped + count);
    }

    /**
     * The walk of {@link #mapInOneLeafTable} when {@link #lastLeaf} does not cover the page: down to the leaf
     * table of {@code first}, allocating missing tables, which becomes {@link #lastLeaf}.
     *
     * @throws IommuException {@link Errno#EEXIST} when a large leaf maps the page; nothing was allocated then
     */
    private Table walkToLeafForMap(long first) {
        Table table = root;
        int index = (int) (first >>> TOP_SHIFT);
        for (int shift = TOP_SHIFT; shift > 0; shift -= BITS) {
            if (table.entries != null && table.entries.getPlain(index) != 0) {
                // A large leaf maps the whole slot, and with it the whole range.
                throw alreadyMapped(first);
            }
            Table child = table.children.getPlain(index);
            if (child == null) {
                int below = shift - BITS;
                child = new Table(ENTRIES, below == 0, below > 0 && below <= MAX_BLOCK_SHIFT,
                        below == 0 ? first & ~(long) INDEX_MASK : 0);
                // Empty and fully constructed: a lookup that sees it sees empty slots.
                table.children.setRelease(index, child);
                table.live++;
            }
            table = child;
            index = (int) (first >>> (shift - BITS)) & INDEX_MASK;
        }
        lastLeaf = table;
        return table;
    }

    private static IommuException alreadyMapped(long page) {
        return new IommuException(Errno.EEXIST, String.format("iova 0x%x is already mapped",
                page << PhysicalMemory.PAGE_SHIFT));
    }

    /**
     * Removes whatever is mapped in the range, freeing the tables it covers whole. A 2 MiB or 1 GiB leaf the range
     * touches is removed whole, as the Linux v6.12 VT-d driver does, and counted whole in the return.
     *
     * @param iova page-aligned bus address
     * @param size a multiple of the page size, unsigned, that does not make the range wrap past
     *     2<sup>64</sup>; it should be non-zero, but 0 is accepted and unmaps nothing
     * @return bytes that were mapped and are not now (more than {@code size} when a large leaf stuck out of
     *     the range)
     * @throws IommuException {@link Errno#EINVAL} naming a misaligned iova, a bad size or a range that wraps;
     *     nothing is changed
     */
    public long unmap(long iova, long size) {
        requireAligned("iova", iova);
        if (size == 0) {
            // Not a valid range, but callers rolling back a partial map pass the pages done so far, maybe none.
            return 0;
        }
        requireSize(size);
        AddressRange.requireNoWrap("iova", iova, size);
        long first = iova >>> PhysicalMemory.PAGE_SHIFT;
        long last = first + (size >>> PhysicalMemory.PAGE_SHIFT) - 1;
        lock();
        try {
            long pages = first >>> BITS == last >>> BITS ? unmapInOneLeafTable(first, last)
                    : unmapRange(root, TOP_SHIFT, 0, first, last);
            MAPPED.setRelease(this, mapped - pages);
            return pages << PhysicalMemory.PAGE_SHIFT;
        } finally {
            unlock();
        }
    }

    /**
     * {@link #unmapRange} from the root for a range inside one leaf table's 2 MiB, the DMA API's usual unmap: one
     * walk down. A large leaf on the way covers the whole range and goes whole; the leaf table goes when the
     * range covered all of it and left it empty (no table above can be covered by 2 MiB or less). The caller
     * holds {@link #lock()}.
     *
     * @return how many 4 KiB pages were mapped by what was cleared
     */
    private long unmapInOneLeafTable(long first, long last) {
        int count = (int) (last - first) + 1;
        Table cached = lastLeaf;
        if (cached != null && count < ENTRIES && cached.base == (first & ~(long) INDEX_MASK)) {
            // A linked leaf table: no large leaf above it. The range does not cover it, so it stays.
            return clearLeaf(cached, (int) first & INDEX_MASK, count);
        }
        Table parent = null;
        int parentIndex = 0;
        Table table = root;
        int index = (int) (first >>> TOP_SHIFT);
        for (int shift = TOP_SHIFT; shift > 0; shift -= BITS) {
            if (table.entries != null && table.entries.getPlain(index) != 0) {
                table.entries.setRelease(index, 0);
                table.live--;
                leaves[shift / BITS]--;
                return 1L << shift;
            }
            Table child = table.children.getPlain(index);
            if (child == null) {
                return 0;
            }
            parent = table;
            parentIndex = index;
            table = child;
            index = (int) (first >>> (shift - BITS)) & INDEX_MASK;
        }
        int cleared = clearLeaf(table, index, count);
        if (table.live == 0 && count == ENTRIES) {
            // The range covered all the table spans: it is empty and nothing will write it again.
            unlinking();
            parent.children.setRelease(parentIndex, null);
            parent.live--;
        } else if (lastLeaf != table) {
            lastLeaf = table;
        }
        return cleared;
    }

    /** Clears {@code count} entries of a leaf table from {@code index}; @return how many were mapped. */
    private int clearLeaf(Table table, int index, int count) {
        int cleared = 0;
        for (int i = index; i < index + count; i++) {
            if (table.entries.getPlain(i) != 0) {
                table.entries.setRelease(i, 0);
                cleared++;
            }
        }
        table.live -= cleared;
        leaves[0] -= cleared;
        return cleared;
    }

    /** Called under the lock before a table is unlinked: {@link #lastLeaf} must never name an unlinked table. */
    private void unlinking() {
        if (lastLeaf != null) {
            lastLeaf = null;
        }
    }

    /**
     * Looks one address up for an access. Lock-free and allocation-free: two loads when the page lies in the
     * leaf table the last map or unmap used, else a fixed walk of at most six loads (one more where a large
     * leaf could be).
     *
     * @param iova a bus address
     * @param access {@link IommuProt#READ}, {@link IommuProt#WRITE}, or 0 to ask only where it points
     * @return the address the entry points at plus the offset in the page, or
     *     {@link IommuDomain#FAULT_NOT_MAPPED} or {@link IommuDomain#FAULT_PERMISSION}
     */
    public long lookup(long iova, int access) {
        long page = iova >>> PhysicalMemory.PAGE_SHIFT;
        Table leaf = lastLeaf;
        if (leaf != null && leaf.base == (page & ~(long) INDEX_MASK)) {
            return check(leaf.entries.getAcquire((int) page & INDEX_MASK), iova, access,
                    PhysicalMemory.PAGE_OFFSET_MASK);
        }
        Table table = root.children.getAcquire((int) (page >>> TOP_SHIFT));
        for (int shift = TOP_SHIFT - BITS; table != null && shift > 0; shift -= BITS) {
            int index = (int) (page >>> shift) & INDEX_MASK;
            Table child = table.children.getAcquire(index);
            if (child == null && table.entries != null) {
                return check(table.entries.getAcquire(index), iova, access,
                        (1L << (shift + PhysicalMemory.PAGE_SHIFT)) - 1);
            }
            table = child;
        }
        if (table == null) {
            return IommuDomain.FAULT_NOT_MAPPED;
        }
        return check(table.entries.getAcquire((int) page & INDEX_MASK), iova, access,
                PhysicalMemory.PAGE_OFFSET_MASK);
    }

    private static long check(long pte, long iova, int access, long offsetMask) {
        if ((pte & PTE_PRESENT) == 0) {
            return IommuDomain.FAULT_NOT_MAPPED;
        }
        long wanted = (long) access << PTE_PROT_SHIFT & PTE_ACCESS;
        if ((wanted & ~pte) != 0) {
            return IommuDomain.FAULT_PERMISSION;
        }
        return (pte & ~offsetMask) | (iova & offsetMask);
    }

    /**
     * The size of the leaf that maps an address, for tests and drivers that report their page sizes.
     *
     * @param iova a bus address
     * @return 0x1000, 0x200000 or 0x40000000, or 0 when nothing maps it
     * @since 1.2
     */
    public long pageSizeAt(long iova) {
        long page = iova >>> PhysicalMemory.PAGE_SHIFT;
        Table table = root.children.getAcquire((int) (page >>> TOP_SHIFT));
        for (int shift = TOP_SHIFT - BITS; table != null && shift > 0; shift -= BITS) {
            int index = (int) (page >>> shift) & INDEX_MASK;
            Table child = table.children.getAcquire(index);
            if (child == null && table.entries != null) {
                return (table.entries.getAcquire(index) & PTE_PRESENT) == 0 ? 0
                        : 1L << (shift + PhysicalMemory.PAGE_SHIFT);
            }
            table = child;
        }
        return table != null && (table.entries.getAcquire((int) page & INDEX_MASK) & PTE_PRESENT) != 0
                ? PhysicalMemory.PAGE_SIZE : 0;
    }

    /**
     * @param pageSize one of {@link #SUPPORTED_PAGE_SIZES}
     * @return how many leaves of that size are mapped now
     * @throws IommuException {@link Errno#EINVAL} for another size
     * @since 1.2
     */
    public long leafCount(long pageSize) {
        if (Long.bitCount(pageSize) != 1 || (pageSize & SUPPORTED_PAGE_SIZES) == 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "page size 0x%x is not supported: expected 0x1000, 0x200000 or 0x40000000", pageSize));
        }
        lock();
        try {
            return leaves[(Long.numberOfTrailingZeros(pageSize) - PhysicalMemory.PAGE_SHIFT) / BITS];
        } finally {
            unlock();
        }
    }

    /** @return how many 4 KiB pages are mapped (a 2 MiB leaf counts 512), saturating at {@link Integer#MAX_VALUE} */
    public int mappedPages() {
        return (int) Math.min((long) MAPPED.getAcquire(this), Integer.MAX_VALUE);
    }

    /**
     * The first mapped page in {@code [lo, hi]} under a table, skipping absent tables.
     *
     * @param shift how far a page number is shifted to index {@code table}; 0 for a leaf
     * @param base first page number {@code table} covers
     * @return the page number, or -1 if none is mapped
     */
    private static long firstMapped(Table table, int shift, long base, long lo, long hi) {
        int from = (int) ((lo - base) >>> shift);
        int to = (int) ((hi - base) >>> shift);
        if (shift == 0) {
            for (int i = from; i <= to; i++) {
                if (table.entries.getPlain(i) != 0) {
                    return base + i;
                }
            }
            return -1;
        }
        for (int i = from; i <= to; i++) {
            long childBase = base + ((long) i << shift);
            if (table.entries != null && table.entries.getPlain(i) != 0) {
                return Math.max(lo, childBase);
            }
            Table child = table.children.getPlain(i);
            if (child != null) {
                long found = firstMapped(child, shift - BITS, childBase, Math.max(lo, childBase),
                        Math.min(hi, childBase + (1L << shift) - 1));
                if (found >= 0) {
                    return found;
                }
            }
        }
        return -1;
    }

    /**
     * Writes the entries of {@code [lo, hi]}, which are all empty, allocating missing tables; leaves go in the
     * tables at {@code targetShift} (0 for 4 KiB leaves, 9 for 2 MiB, 18 for 1 GiB).
     *
     * @param pteOfPageZero the entry page 0 would get; page {@code p} gets it plus {@code p} pages
     */
    private void mapRange(Table table, int shift, long base, long lo, long hi, long pteOfPageZero,
            int targetShift) {
        int from = (int) ((lo - base) >>> shift);
        int to = (int) ((hi - base) >>> shift);
        if (shift == targetShift) {
            for (int i = from; i <= to; i++) {
                if (shift != 0 && table.children.getPlain(i) != null) {
                    // An empty table left by earlier unmaps gives its slot to the large leaf.
                    unlinking();
                    table.children.setRelease(i, null);
                    table.live--;
                }
                long firstPage = base + ((long) i << shift);
                table.entries.setRelease(i, pteOfPageZero + (firstPage << PhysicalMemory.PAGE_SHIFT));
            }
            table.live += to - from + 1;
            return;
        }
        for (int i = from; i <= to; i++) {
            Table child = table.children.getPlain(i);
            if (child == null) {
                int below = shift - BITS;
                child = new Table(ENTRIES, below == 0, below > 0 && below <= MAX_BLOCK_SHIFT,
                        below == 0 ? base + ((long) i << shift) : 0);
                // Empty and fully constructed: a lookup that sees it sees empty slots.
                table.children.setRelease(i, child);
                table.live++;
            }
            long childBase = base + ((long) i << shift);
            mapRange(child, shift - BITS, childBase, Math.max(lo, childBase),
                    Math.min(hi, childBase + (1L << shift) - 1), pteOfPageZero, targetShift);
        }
    }

    /**
     * Clears the entries of {@code [lo, hi]} under a table, unlinking child tables it covers whole; a large leaf
     * the range touches goes whole.
     *
     * @return how many 4 KiB pages were mapped by what was cleared
     */
    private long unmapRange(Table table, int shift, long base, long lo, long hi) {
        int from = (int) ((lo - base) >>> shift);
        int to = (int) ((hi - base) >>> shift);
        long cleared = 0;
        if (shift == 0) {
            for (int i = from; i <= to; i++) {
                if (table.entries.getPlain(i) != 0) {
                    table.entries.setRelease(i, 0);
                    cleared++;
                }
            }
            table.live -= (int) cleared;
            leaves[0] -= cleared;
            return cleared;
        }
        for (int i = from; i <= to; i++) {
            if (table.entries != null && table.entries.getPlain(i) != 0) {
                table.entries.setRelease(i, 0);
                table.live--;
                leaves[shift / BITS]--;
                cleared += 1L << shift;
                continue;
            }
            Table child = table.children.getPlain(i);
            if (child != null) {
                long childBase = base + ((long) i << shift);
                cleared += unmapRange(child, shift - BITS, childBase, Math.max(lo, childBase),
                        Math.min(hi, childBase + (1L << shift) - 1));
                if (child.live == 0 && lo <= childBase && hi >= childBase + (1L << shift) - 1) {
                    // The range covered all the child spans: it is empty and nothing will write it again.
                    unlinking();
                    table.children.setRelease(i, null);
                    table.live--;
                }
            }
        }
        return cleared;
    }

    private static void requireAligned(String what, long address) {
        if ((address & PhysicalMemory.PAGE_OFFSET_MASK) != 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "%s 0x%x is not page-aligned: expected a multiple of 0x%x",
                    what, address, PhysicalMemory.PAGE_SIZE));
        }
    }

    /** Sizes are unsigned: any non-zero multiple of the page size is valid here; wrapping is checked apart. */
    private static void requireSize(long size) {
        if (size == 0 || (size & PhysicalMemory.PAGE_OFFSET_MASK) != 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "size 0x%x is invalid: expected a non-zero multiple of 0x%x", size, PhysicalMemory.PAGE_SIZE));
        }
    }
}
