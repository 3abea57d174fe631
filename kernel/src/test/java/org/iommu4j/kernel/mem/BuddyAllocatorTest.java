package org.iommu4j.kernel.mem;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeMap;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

class BuddyAllocatorTest {
    private static final long GIB_PAGES = (1L << 30) >>> 12;

    @Test
    void takesTheSmallestFittingBlockAtTheLowestAddress() {
        BuddyAllocator a = new BuddyAllocator(GIB_PAGES);
        assertThat(a.allocatePages(0, PageAllocator.NO_LIMIT)).isZero();
        assertThat(a.allocatePages(0, PageAllocator.NO_LIMIT)).isEqualTo(0x1000);
        assertThat(a.allocatePages(1, PageAllocator.NO_LIMIT)).isEqualTo(0x2000);
        assertThat(a.allocatePages(0, PageAllocator.NO_LIMIT)).isEqualTo(0x4000);
        assertThat(a.freePageCount()).isEqualTo(GIB_PAGES - 5);
    }

    @Test
    void aLimitKeepsTheAllocationBelowIt() {
        BuddyAllocator a = new BuddyAllocator(8 * GIB_PAGES);
        a.allocateContiguous(4 * GIB_PAGES, PageAllocator.NO_LIMIT); // the low 4 GiB are taken
        assertThatThrownBy(() -> a.allocatePages(0, 1L << 32))
                .isInstanceOf(IommuException.class)
                .hasMessage("page allocation failure: order:0, limit 0x100000000: no free block (free pages: "
                        + 4 * GIB_PAGES + ")")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(a.allocatePages(3, PageAllocator.NO_LIMIT)).isEqualTo(4L << 30);
    }

    @Test
    void fragmentationIsProvokedAndHealsWhenEverythingIsFreed() {
        BuddyAllocator a = new BuddyAllocator(2048);
        List<Long> pages = new ArrayList<>();
        for (int i = 0; i < 2048; i++) {
            pages.add(a.allocatePages(0, PageAllocator.NO_LIMIT));
        }
        for (int i = 0; i < pages.size(); i += 2) {
            a.freePages(pages.get(i), 0);
        }
        assertThat(a.freePageCount()).isEqualTo(1024);
        assertThatThrownBy(() -> a.allocatePages(1, PageAllocator.NO_LIMIT))
                .hasMessage("page allocation failure: order:1, limit 0x7fffffffffffffff: no free block (free"
                        + " pages: 1024)");
        for (int i = 1; i < pages.size(); i += 2) {
            a.freePages(pages.get(i), 0);
        }
        assertThat(a.allocatePages(PageAllocator.MAX_ORDER, PageAllocator.NO_LIMIT)).isZero();
        assertThat(a.allocatePages(PageAllocator.MAX_ORDER, PageAllocator.NO_LIMIT)).isEqualTo(1024L << 12);
    }

    @Test
    void aLimitOnlyNeedsThePagesTakenToFitNotTheWholeBlockTheyAreSplitFrom() {
        BuddyAllocator a = new BuddyAllocator(4);
        assertThat(a.allocateContiguous(1, 0x1000)).isZero();
        assertThat(a.allocatePages(0, 0x2000)).isEqualTo(0x1000);
        assertThatThrownBy(() -> a.allocatePages(0, 0x2000)).hasMessageStartingWith("page allocation failure");
    }

    @Test
    void doubleFreesAndWrongOrdersAreRefused() {
        BuddyAllocator a = new BuddyAllocator(GIB_PAGES);
        long p = a.allocatePages(2, PageAllocator.NO_LIMIT);
        assertThatThrownBy(() -> a.freePages(p, 1))
                .hasMessage("freeing 0x0 order 1: not allocated as such (double free or wrong order)");
        a.freePages(p, 2);
        assertThatThrownBy(() -> a.freePages(p, 2))
                .isInstanceOf(IommuException.class)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(a.freePageCount()).isEqualTo(GIB_PAGES);
        assertThatThrownBy(() -> a.allocatePages(11, PageAllocator.NO_LIMIT))
                .hasMessage("order 11 is invalid: expected 0 to 10");
    }

    @Test
    void contiguousRunsOfAnyLengthComeAndGo() {
        for (long pages : new long[] {GIB_PAGES, 64 * GIB_PAGES}) {
            BuddyAllocator a = new BuddyAllocator(pages);
            long pool = a.allocateContiguous(16384, 1L << 32);
            assertThat(pool + (16384L << 12)).isLessThanOrEqualTo(1L << 32);
            long odd = a.allocateContiguous(3, PageAllocator.NO_LIMIT);
            assertThat(a.freePageCount()).isEqualTo(pages - 16387);
            assertThatThrownBy(() -> a.freeContiguous(odd, 4))
                    .hasMessage(String.format("freeing 0x%x+4 pages: not a live contiguous allocation", odd));
            a.freeContiguous(odd, 3);
            a.freeContiguous(pool, 16384);
            assertThat(a.freePageCount()).isEqualTo(pages);
            assertThat(a.allocateContiguous(pages, PageAllocator.NO_LIMIT)).isZero();
        }
        assertThatThrownBy(() -> new BuddyAllocator(1024).allocateContiguous(1025, PageAllocator.NO_LIMIT))
                .hasMessage("contiguous allocation of 1025 pages below 0x7fffffffffffffff failed: memory has only"
                        + " 1024 pages (free pages: 1024)");
    }

    @Test
    void userPagesComeFromTheTopDownwards() {
        BuddyAllocator a = new BuddyAllocator(GIB_PAGES);
        long first = a.allocateUserPage();
        long second = a.allocateUserPage();
        assertThat(first).isEqualTo((1L << 30) - 4096);
        assertThat(second).isEqualTo(first - 4096);
        a.freePages(first, 0);
        a.freePages(second, 0);
        assertThat(a.allocateContiguous(GIB_PAGES, PageAllocator.NO_LIMIT)).isZero();
    }

    @Test
    void anOddSizedMemoryIsCoveredByAlignedBlocks() {
        BuddyAllocator a = new BuddyAllocator(1024 + 5);
        assertThat(a.freePageCount()).isEqualTo(1029);
        assertThat(a.allocatePages(2, PageAllocator.NO_LIMIT)).isEqualTo(1024L << 12);
        assertThat(a.allocatePages(0, PageAllocator.NO_LIMIT)).isEqualTo(1028L << 12);
    }

    record Op(int kind, int size, int pick) {
    }

    static List<Op> ops(Random r) {
        int n = r.nextInt(61);
        List<Op> ops = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            ops.add(new Op(r.nextInt(5), r.nextInt(1501), r.nextInt(1001)));
        }
        return ops;
    }

    @Test
    void allocationsNeverOverlapAndEverythingCoalescesBack() {
        Seeded.forEach("BuddyAllocatorTest.coalesce", 100, r -> allocationsNeverOverlapAndEverythingCoalescesBack(ops(r)));
    }

    private static void allocationsNeverOverlapAndEverythingCoalescesBack(List<Op> ops) {
        long total = 8 * 1024;
        BuddyAllocator a = new BuddyAllocator(total);
        TreeMap<Long, long[]> live = new TreeMap<>(); // start page -> {pages, kind}
        for (Op op : ops) {
            try {
                switch (op.kind()) {
                    case 0 -> {
                        int order = op.size() % 11;
                        live.put(a.allocatePages(order, PageAllocator.NO_LIMIT) >>> 12, new long[] {1L << order, order});
                    }
                    case 1 -> live.put(a.allocateContiguous(op.size() + 1, PageAllocator.NO_LIMIT) >>> 12,
                            new long[] {op.size() + 1, -1});
                    case 2 -> live.put(a.allocateUserPage() >>> 12, new long[] {1, 0});
                    default -> {
                        if (!live.isEmpty()) {
                            Long key = new ArrayList<>(live.keySet()).get(op.pick() % live.size());
                            long[] v = live.remove(key);
                            if (v[1] < 0) {
                                a.freeContiguous(key << 12, v[0]);
                            } else {
                                a.freePages(key << 12, (int) v[1]);
                            }
                        }
                    }
                }
            } catch (IommuException e) {
                assertThat(e.errno()).isEqualTo(Errno.ENOMEM);
            }
            long used = 0;
            long end = -1;
            for (var e : live.entrySet()) {
                assertThat(e.getKey()).isGreaterThanOrEqualTo(end);
                end = e.getKey() + e.getValue()[0];
                used += e.getValue()[0];
            }
            assertThat(end).isLessThanOrEqualTo(total);
            assertThat(a.freePageCount()).isEqualTo(total - used);
        }
        for (var e : live.entrySet()) {
            if (e.getValue()[1] < 0) {
                a.freeContiguous(e.getKey() << 12, e.getValue()[0]);
            } else {
                a.freePages(e.getKey() << 12, (int) e.getValue()[1]);
            }
        }
        assertThat(a.allocateContiguous(total, PageAllocator.NO_LIMIT)).isZero();
    }
}
