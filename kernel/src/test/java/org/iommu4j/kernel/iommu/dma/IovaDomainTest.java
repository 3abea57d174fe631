package org.iommu4j.kernel.iommu.dma;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

class IovaDomainTest {

    @Test
    void allocationIsTopDownBelowTheLimitAndSizeAlignedForPowersOfTwo() {
        IovaDomain iovad = new IovaDomain(1, 1);
        assertThat(iovad.alloc(1, 0xfff, true)).isEqualTo(0xfff);
        assertThat(iovad.alloc(4, 0xfff, true)).isEqualTo(0xff8);
        assertThat(iovad.alloc(3, 0xfff, false)).isEqualTo(0xffc); // the hole above the 4-page range
        assertThat(iovad.alloc(2, 0xfff, true)).isEqualTo(0xff6);
        assertThat(iovad.allocatedRanges()).isEqualTo(4);
    }

    @Test
    void theLowestFrameIsTheStartAndZeroMeansFull() {
        IovaDomain iovad = new IovaDomain(0x10, 1);
        assertThat(iovad.alloc(8, 0x17, true)).isEqualTo(0x10);
        assertThat(iovad.alloc(1, 0x17, true)).isZero();
        iovad.free(0x10);
        assertThat(iovad.alloc(1, 0x17, true)).isEqualTo(0x17);
    }

    @Test
    void aFreedRangeGoesToTheCallingCpusMagazineAndComesBackFromItOnly() {
        IovaDomain iovad = new IovaDomain(1, 2);
        long a = iovad.allocFast(0, 1, 0xfffff, true);
        iovad.freeFast(0, a, 1);
        assertThat(iovad.isAllocated(a)).isTrue(); // cached ranges stay in the tree
        assertThat(iovad.allocFast(1, 1, 0xfffff, true)).isNotEqualTo(a); // CPU 1 has no cache yet
        assertThat(iovad.allocFast(0, 1, 0xfffff, true)).isEqualTo(a);
        // three pages are cached as four: the order of the unadjusted size matches on free
        long b = iovad.allocFast(0, 3, 0xfffff, true);
        iovad.freeFast(0, b, 3);
        assertThat(iovad.allocFast(0, 4, 0xfffff, true)).isEqualTo(b);
    }

    @Test
    void aCachedRangeAboveTheLimitIsNotHandedOutAndFlushingTheCachesFreesThem() {
        IovaDomain iovad = new IovaDomain(1, 1);
        long high = iovad.allocFast(0, 1, 0xfffff, true);
        iovad.freeFast(0, high, 1);
        long low = iovad.allocFast(0, 1, 0xff, true);
        assertThat(low).isEqualTo(0xff);
        iovad.flushCaches();
        assertThat(iovad.isAllocated(high)).isFalse();
        assertThat(iovad.allocatedRanges()).isEqualTo(1);
    }

    @Test
    void randomAllocationsNeverOverlapAndStayInsideTheirLimits() {
        long seed = new Random().nextLong();
        Random random = new Random(seed);
        IovaDomain iovad = new IovaDomain(1, 2);
        TreeMap<Long, Long> live = new TreeMap<>();
        List<long[]> held = new ArrayList<>();
        for (int step = 0; step < 3000; step++) {
            int cpu = random.nextInt(2);
            if (!held.isEmpty() && random.nextInt(3) == 0) {
                long[] r = held.remove(random.nextInt(held.size()));
                live.remove(r[0]);
                iovad.freeFast(cpu, r[0], r[1]);
                continue;
            }
            long pages = 1 + random.nextInt(40);
            long limit = random.nextBoolean() ? 0xfff : 0x3fff;
            long pfn = iovad.allocFast(cpu, pages, limit, true);
            if (pfn == 0) {
                continue;
            }
            // alloc_iova_fast rounds a cacheable size (below 32 pages) up to a power of two
            long size = pages < 32 && Long.bitCount(pages) != 1 ? Long.highestOneBit(pages) << 1 : pages;
            var below = live.floorEntry(pfn + size - 1);
            assertThat(below == null || below.getValue() < pfn).as("seed %d step %d: overlap at 0x%x", seed, step,
                    pfn).isTrue();
            assertThat(pfn + size - 1).as("seed %d step %d", seed, step).isLessThanOrEqualTo(limit);
            live.put(pfn, pfn + size - 1);
            held.add(new long[] {pfn, pages});
        }
    }
}
