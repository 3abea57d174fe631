package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

/**
 * Random sequences of maps and unmaps, applied both to an {@link IoPageTable} and to a sorted map of page to
 * entry. The iovas cluster in a few small regions so that ranges overlap: at the bottom of the iova space, at
 * the top (where ranges can wrap past 2^64), and astride the boundaries between tables of every level. The
 * sequences are seeded; a failure names its seed (see {@link Seeded}).
 */
class IoPageTableModelTest {
    private static final int PAGE = PhysicalMemory.PAGE_SIZE;
    private static final int REGION_PAGES = 16;
    private static final int MAX_RANGE_PAGES = 10;
    /** First iova of each region; all but the first and last straddle a level-table boundary. */
    private static final long[] REGIONS = {
        0,
        (1L << 21) - 8L * PAGE,
        (1L << 30) - 8L * PAGE,
        (1L << 39) - 8L * PAGE,
        (1L << 48) - 8L * PAGE,
        (1L << 57) - 8L * PAGE,
        (1L << 63) - 8L * PAGE,
        -(long) REGION_PAGES * PAGE,
    };
    private static final int[] ACCESSES = {0, IommuProt.READ, IommuProt.WRITE, IommuProt.READ | IommuProt.WRITE};

    /** One operation: a map of {@code pages} pages at a page of a region, or an unmap. */
    record Op(boolean map, int region, int page, int pages, long phys, int prot) {
        long iova() {
            return REGIONS[region] + (long) page * PAGE;
        }

        long size() {
            return (long) pages * PAGE;
        }

        @Override
        public String toString() {
            return map ? String.format("map(0x%x, 0x%x, 0x%x, %s)", iova(), phys, size(), IommuProt.toString(prot))
                    : String.format("unmap(0x%x, 0x%x)", iova(), size());
        }
    }

    private static final int[] PROTS = {0, IommuProt.READ, IommuProt.WRITE, IommuProt.READ | IommuProt.WRITE,
        IommuProt.READ | IommuProt.CACHE};

    static List<Op> operations(Random r) {
        int n = 1 + r.nextInt(50);
        List<Op> ops = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            ops.add(new Op(r.nextInt(100) < 60, r.nextInt(REGIONS.length), r.nextInt(REGION_PAGES),
                    1 + r.nextInt(MAX_RANGE_PAGES), (r.nextLong() & ((1L << 40) - 1)) * PAGE,
                    PROTS[r.nextInt(PROTS.length)]));
        }
        return ops;
    }

    @Test
    void agreesWithAModel() {
        Seeded.forEach("IoPageTableModelTest.agreesWithAModel", 300, r -> agreesWithAModel(operations(r)));
    }

    private static void agreesWithAModel(List<Op> ops) {
        IoPageTable table = new IoPageTable();
        TreeMap<Long, Long> model = new TreeMap<>();
        for (Op op : ops) {
            if (op.map()) {
                checkMap(table, model, op);
            } else {
                checkUnmap(table, model, op);
            }
            assertThat(table.mappedPages()).as("after %s", op).isEqualTo(model.size());
            checkLookups(table, model, op);
        }
    }

    private static void checkMap(IoPageTable table, TreeMap<Long, Long> model, Op op) {
        IommuException e = catchThrowableOfType(() -> table.map(op.iova(), op.phys(), op.size(), op.prot()),
                IommuException.class);
        long first = op.iova() >>> PhysicalMemory.PAGE_SHIFT;
        if (wraps(op)) {
            assertThat(e).as("%s", op).isNotNull();
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            assertThat(e.getMessage()).isEqualTo(String.format(
                    "iova 0x%x + size 0x%x wraps past 2^64: expected a size of at most 0x%x",
                    op.iova(), op.size(), -op.iova()));
            return;
        }
        long last = first + op.pages() - 1;
        Long taken = model.ceilingKey(first);
        if (taken != null && taken <= last) {
            assertThat(e).as("%s", op).isNotNull();
            assertThat(e.errno()).isEqualTo(Errno.EEXIST);
            assertThat(e.getMessage()).isEqualTo(String.format("iova 0x%x is already mapped",
                    taken << PhysicalMemory.PAGE_SHIFT));
            return;
        }
        assertThat(e).as("%s", op).isNull();
        for (long i = 0; i < op.pages(); i++) {
            model.put(first + i, op.phys() + i * PAGE | op.prot() & (IommuProt.READ | IommuProt.WRITE));
        }
    }

    private static void checkUnmap(IoPageTable table, TreeMap<Long, Long> model, Op op) {
        if (wraps(op)) {
            IommuException e = catchThrowableOfType(() -> table.unmap(op.iova(), op.size()), IommuException.class);
            assertThat(e).as("%s", op).isNotNull();
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            return;
        }
        long first = op.iova() >>> PhysicalMemory.PAGE_SHIFT;
        Map<Long, Long> range = model.subMap(first, true, first + op.pages() - 1, true);
        long expected = (long) range.size() * PAGE;
        range.clear();
        assertThat(table.unmap(op.iova(), op.size())).as("%s", op).isEqualTo(expected);
    }

    /** Every page of every region, and the pages a range starting in one can reach, with every access. */
    private static void checkLookups(IoPageTable table, TreeMap<Long, Long> model, Op after) {
        for (long base : REGIONS) {
            for (int p = -1; p < REGION_PAGES + MAX_RANGE_PAGES; p++) {
                long iova = base + (long) p * PAGE;
                if (Long.compareUnsigned(iova, base) < 0 != p < 0) {
                    continue; // wrapped past either end of the iova space
                }
                long probe = iova + (p & 0xff) * 8 + 3;
                Long entry = model.get(iova >>> PhysicalMemory.PAGE_SHIFT);
                for (int access : ACCESSES) {
                    long expected;
                    if (entry == null) {
                        expected = IommuDomain.FAULT_NOT_MAPPED;
                    } else if ((access & ~entry) != 0) {
                        expected = IommuDomain.FAULT_PERMISSION;
                    } else {
                        expected = (entry & ~PhysicalMemory.PAGE_OFFSET_MASK)
                                | (probe & PhysicalMemory.PAGE_OFFSET_MASK);
                    }
                    long got = table.lookup(probe, access);
                    if (got != expected) {
                        assertThat(got).as("lookup(0x%x, %s) after %s", probe, IommuProt.toString(access), after)
                                .isEqualTo(expected);
                    }
                }
            }
        }
    }

    private static boolean wraps(Op op) {
        return Long.compareUnsigned(op.size() - 1, ~op.iova()) > 0;
    }
}
