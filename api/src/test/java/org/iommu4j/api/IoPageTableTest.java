package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Test;

class IoPageTableTest {
    private static final long TOP_PAGE = 0xffff_ffff_ffff_f000L;

    private final IoPageTable table = new IoPageTable();

    @Test
    void lookupsFollowTheEntriesAndTheirProtection() {
        table.map(0x10000, 0x500000, 0x2000, IommuProt.READ);
        assertThat(table.lookup(0x11234, IommuProt.READ)).isEqualTo(0x501234);
        assertThat(table.lookup(0x11234, 0)).isEqualTo(0x501234);
        assertThat(table.lookup(0x11234, IommuProt.WRITE)).isEqualTo(IommuDomain.FAULT_PERMISSION);
        assertThat(table.lookup(0x12000, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.mappedPages()).isEqualTo(2);
    }

    @Test
    void anOverlappingMapChangesNothingAndUnmapCountsWhatWasThere() {
        table.map(0x10000, 0x500000, 0x1000, IommuProt.READ | IommuProt.WRITE);
        assertThatThrownBy(() -> table.map(0xf000, 0x600000, 0x2000, IommuProt.READ))
                .isInstanceOf(IommuException.class)
                .hasMessage("iova 0x10000 is already mapped")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EEXIST);
        assertThat(table.lookup(0xf000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.unmap(0xf000, 0x3000)).isEqualTo(0x1000);
        assertThat(table.mappedPages()).isZero();
    }

    @Test
    void aPageWithNoAccessStillSaysWhereItPoints() {
        table.map(0x4000, 0x9000, 0x1000, 0);
        assertThat(table.lookup(0x4fff, 0)).isEqualTo(0x9fff);
        assertThat(table.lookup(0x4000, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_PERMISSION);
        assertThat(table.lookup(0x4000, IommuProt.WRITE)).isEqualTo(IommuDomain.FAULT_PERMISSION);
        assertThat(table.lookup(0x4000, IommuProt.READ | IommuProt.WRITE)).isEqualTo(IommuDomain.FAULT_PERMISSION);
        assertThat(table.mappedPages()).isEqualTo(1);
    }

    @Test
    void writeOnlyAndOtherProtBitsAreEnforcedOnlyForReadAndWrite() {
        table.map(0x4000, 0x9000, 0x1000, IommuProt.WRITE | IommuProt.CACHE | IommuProt.NOEXEC | IommuProt.MMIO);
        assertThat(table.lookup(0x4010, IommuProt.WRITE)).isEqualTo(0x9010);
        assertThat(table.lookup(0x4010, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_PERMISSION);
        assertThat(table.lookup(0x4010, IommuProt.CACHE)).isEqualTo(0x9010);
    }

    @Test
    void theHighestPagesOfTheIovaSpaceMap() {
        table.map(TOP_PAGE, 0x7000, 0x1000, IommuProt.READ | IommuProt.WRITE);
        table.map(TOP_PAGE - 0x1000, 0x3000, 0x1000, IommuProt.READ);
        assertThat(table.lookup(-1L, IommuProt.WRITE)).isEqualTo(0x7fff);
        assertThat(table.lookup(TOP_PAGE, IommuProt.READ)).isEqualTo(0x7000);
        assertThat(table.lookup(TOP_PAGE - 1, IommuProt.READ)).isEqualTo(0x3fff);
        assertThat(table.lookup(TOP_PAGE - 0x2000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.lookup(0xfff, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.lookup(1L << 63, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.unmap(TOP_PAGE - 0x1000, 0x2000)).isEqualTo(0x2000);
        assertThat(table.lookup(-1L, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.mappedPages()).isZero();
    }

    @Test
    void addressesThatDifferOnlyInOneLevelsIndexAreDistinct() {
        long[] iovas = {0, 1L << 21, 1L << 30, 1L << 39, 1L << 48, 1L << 57, 1L << 63, 0x5000};
        for (int i = 0; i < iovas.length; i++) {
            table.map(iovas[i], (i + 1L) << 20, 0x1000, IommuProt.READ);
        }
        for (int i = 0; i < iovas.length; i++) {
            assertThat(table.lookup(iovas[i] + 0x42, IommuProt.READ)).as("iova 0x%x", iovas[i])
                    .isEqualTo(((i + 1L) << 20) + 0x42);
            assertThat(table.lookup(iovas[i] + 0x1000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        }
        assertThat(table.mappedPages()).isEqualTo(iovas.length);
    }

    @Test
    void aMapAcrossLevelTableBoundariesTranslatesEveryPage() {
        for (int level : new int[] {21, 30, 39, 48, 57}) {
            long boundary = 1L << level;
            long iova = boundary - 0x3000;
            table.map(iova, 0x100000, 0x6000, IommuProt.READ | IommuProt.WRITE);
            for (long off = 0; off < 0x6000; off += 0x1000) {
                assertThat(table.lookup(iova + off + 0x10, IommuProt.WRITE)).isEqualTo(0x100010 + off);
            }
            assertThat(table.lookup(iova - 1, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
            assertThat(table.lookup(iova + 0x6000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
            assertThat(table.mappedPages()).isEqualTo(6);
            assertThatThrownBy(() -> table.map(boundary, 0, 0x1000, IommuProt.READ))
                    .hasMessage("iova 0x%x is already mapped", boundary);
            assertThat(table.unmap(boundary, 0x10000)).isEqualTo(0x3000);
            assertThat(table.lookup(boundary - 0x1000, IommuProt.READ)).isEqualTo(0x102000);
            assertThat(table.unmap(iova, 0x6000)).isEqualTo(0x3000);
            assertThat(table.mappedPages()).isZero();
        }
    }

    @Test
    void theFirstMappedPageOfTheRangeIsNamedEvenInALaterLevelTable() {
        table.map((1L << 39) + 0x2000, 0x1000, 0x1000, IommuProt.READ);
        table.map((1L << 39) + 0x8000, 0x1000, 0x1000, IommuProt.READ);
        assertThatThrownBy(() -> table.map((1L << 39) - 0x5000, 0x0, 0x10000, IommuProt.READ))
                .hasMessage("iova 0x8000002000 is already mapped");
        assertThat(table.lookup((1L << 39) - 0x5000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.mappedPages()).isEqualTo(2);
    }

    @Test
    void unmapOfAPartlyMappedRangeCountsOnlyWhatWasMapped() {
        table.map(0x10000, 0x500000, 0x3000, IommuProt.READ);
        table.map(0x20000, 0x600000, 0x1000, IommuProt.READ);
        table.map(0x40000, 0x700000, 0x1000, IommuProt.READ);
        assertThat(table.unmap(0x11000, 0x10000)).isEqualTo(0x3000);
        assertThat(table.lookup(0x10000, IommuProt.READ)).isEqualTo(0x500000);
        assertThat(table.lookup(0x11000, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.lookup(0x20000, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.lookup(0x40000, IommuProt.READ)).isEqualTo(0x700000);
        assertThat(table.mappedPages()).isEqualTo(2);
        assertThat(table.unmap(0x11000, 0x10000)).isZero();
        assertThat(table.unmap(0, 0x1000)).isZero();
    }

    @Test
    @org.junit.jupiter.api.Timeout(5)
    void unmapOfAHugeSparseRangeIsQuick() {
        table.map(0x7000, 0x1000, 0x1000, IommuProt.READ);
        table.map(1L << 62, 0x2000, 0x1000, IommuProt.READ);
        table.map(TOP_PAGE, 0x3000, 0x1000, IommuProt.READ);
        assertThat(table.unmap(0, Long.MAX_VALUE - 0xfff)).isEqualTo(0x2000);
        assertThat(table.unmap((1L << 63) + 0x1000, Long.MAX_VALUE - 0xfff)).isEqualTo(0x1000);
        assertThat(table.mappedPages()).isZero();
        // The tables were freed; mapping again allocates new ones.
        table.map(0x7000, 0x4000, 0x1000, IommuProt.WRITE);
        assertThat(table.lookup(0x7000, IommuProt.WRITE)).isEqualTo(0x4000);
    }

    @Test
    void mappedPagesCountsMapsAndUnmaps() {
        assertThat(table.mappedPages()).isZero();
        table.map(0, 0, 0x200000, IommuProt.READ);
        assertThat(table.mappedPages()).isEqualTo(512);
        table.map(0x200000, 0, 0x1000, IommuProt.READ);
        assertThat(table.mappedPages()).isEqualTo(513);
        assertThatThrownBy(() -> table.map(0x1ff000, 0, 0x2000, IommuProt.READ)).isInstanceOf(IommuException.class);
        assertThat(table.mappedPages()).isEqualTo(513);
        assertThat(table.unmap(0x1ff000, 0x2000)).isEqualTo(0x2000);
        assertThat(table.mappedPages()).isEqualTo(511);
        assertThat(table.unmap(0, 1L << 40)).isEqualTo(511L << 12);
        assertThat(table.mappedPages()).isZero();
    }

    @Test
    void unmapOfNothingReturnsZero() {
        table.map(0x1000, 0x1000, 0x1000, IommuProt.READ);
        assertThat(table.unmap(0x1000, 0)).isZero();
        assertThat(table.mappedPages()).isEqualTo(1);
    }

    @Test
    void badMapArgumentsAreRejectedWithEinvalAndChangeNothing() {
        table.map(0x10000, 0x500000, 0x1000, IommuProt.READ);
        assertEinval(() -> table.map(0x1234, 0x1000, 0x1000, IommuProt.READ),
                "iova 0x1234 is not page-aligned: expected a multiple of 0x1000");
        assertEinval(() -> table.map(0x2000, 0x10, 0x1000, IommuProt.READ),
                "phys 0x10 is not page-aligned: expected a multiple of 0x1000");
        assertEinval(() -> table.map(0x2000, 0x1000, 0, IommuProt.READ),
                "size 0x0 is invalid: expected a non-zero multiple of 0x1000");
        assertEinval(() -> table.map(0x2000, 0x1000, 0x1800, IommuProt.READ),
                "size 0x1800 is invalid: expected a non-zero multiple of 0x1000");
        // Sizes are unsigned: 0xfffffffffffff000 is a huge size, refused because it wraps, not as negative.
        assertEinval(() -> table.map(0x2000, 0x1000, -0x1000L, IommuProt.READ),
                "iova 0x2000 + size 0xfffffffffffff000 wraps past 2^64: expected a size of at most 0xffffffffffffe000");
        assertEinval(() -> table.map(TOP_PAGE, 0x1000, 0x2000, IommuProt.READ),
                "iova 0xfffffffffffff000 + size 0x2000 wraps past 2^64: expected a size of at most 0x1000");
        assertEinval(() -> table.map(0x2000, 0xffff_ffff_fff0_0000L, 0x200000, IommuProt.READ),
                "phys 0xfffffffffff00000 + size 0x200000 wraps past 2^64: expected a size of at most 0x100000");
        // Validation comes before the overlap check.
        assertEinval(() -> table.map(0x10000, 0x1000, 0x1001, IommuProt.READ),
                "size 0x1001 is invalid: expected a non-zero multiple of 0x1000");
        assertThat(table.mappedPages()).isEqualTo(1);
        assertThat(table.lookup(0x10000, IommuProt.READ)).isEqualTo(0x500000);
        assertThat(table.lookup(0x2000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.lookup(TOP_PAGE, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
    }

    @Test
    void badUnmapArgumentsAreRejectedWithEinvalAndChangeNothing() {
        table.map(TOP_PAGE, 0x500000, 0x1000, IommuProt.READ);
        table.map(0x10000, 0x600000, 0x1000, IommuProt.READ);
        assertEinval(() -> table.unmap(0x10800, 0x1000),
                "iova 0x10800 is not page-aligned: expected a multiple of 0x1000");
        assertEinval(() -> table.unmap(0x10000, 0xfff),
                "size 0xfff is invalid: expected a non-zero multiple of 0x1000");
        assertEinval(() -> table.unmap(TOP_PAGE, Long.MIN_VALUE),
                "iova 0xfffffffffffff000 + size 0x8000000000000000 wraps past 2^64: expected a size of at most 0x1000");
        assertEinval(() -> table.unmap(TOP_PAGE, 0x2000),
                "iova 0xfffffffffffff000 + size 0x2000 wraps past 2^64: expected a size of at most 0x1000");
        assertThat(table.mappedPages()).isEqualTo(2);
        assertThat(table.lookup(TOP_PAGE, IommuProt.READ)).isEqualTo(0x500000);
        assertThat(table.lookup(0x10000, IommuProt.READ)).isEqualTo(0x600000);
    }

    @Test
    void tablesAreOwnedByTheirInstance() {
        IoPageTable other = new IoPageTable();
        table.map(0x1000, 0x2000, 0x1000, IommuProt.READ);
        other.map(0x1000, 0x3000, 0x1000, IommuProt.READ);
        assertThat(table.lookup(0x1000, 0)).isEqualTo(0x2000);
        assertThat(other.lookup(0x1000, 0)).isEqualTo(0x3000);
    }

    /** The table the last small map or unmap used is remembered; a freed or replaced table must never answer. */
    @Test
    void aLeafTableFreedOrGivenToALargeLeafNeverAnswersAgain() {
        long region = 0x4000_0000L; // a 2 MiB-aligned region: one leaf table
        long twoMb = 1L << 21;
        table.map(region + 0x5000, 0x900000, 0x1000, IommuProt.READ);
        assertThat(table.unmap(region, twoMb)).isEqualTo(0x1000); // covers the leaf table: freed
        // A map across the region's end builds a new leaf table for it through the general walk.
        table.map(region + twoMb - 0x1000, 0xa00000, 0x2000, IommuProt.WRITE);
        assertThat(table.lookup(region + twoMb - 0x1000 + 0x10, IommuProt.WRITE)).isEqualTo(0xa00010);
        assertThat(table.lookup(region + 0x5000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        table.map(region + 0x5000, 0xb00000, 0x1000, IommuProt.READ); // into the new leaf table
        assertThat(table.lookup(region + 0x5000, IommuProt.READ)).isEqualTo(0xb00000);
        assertThat(table.unmap(region, 2 * twoMb)).isEqualTo(0x3000); // frees both through the general walk
        table.map(region + 0x7000, 0xc00000, 0x1000, IommuProt.READ);
        assertThat(table.lookup(region + 0x7000, 0)).isEqualTo(0xc00000);
        assertThat(table.lookup(region + 0x5000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);

        // Emptied but kept, the leaf table then gives its slot to a 2 MiB leaf, which must answer for every page.
        assertThat(table.unmap(region + 0x7000, 0x1000)).isEqualTo(0x1000);
        table.mapPages(region, 0x4000_0000L, twoMb, 1, IommuProt.READ);
        assertThat(table.lookup(region + 0x7123, IommuProt.READ)).isEqualTo(0x4000_7123L);
        assertThat(table.pageSizeAt(region + 0x7000)).isEqualTo(twoMb);
        assertThatThrownBy(() -> table.map(region + 0x7000, 0xd00000, 0x1000, IommuProt.READ))
                .isInstanceOf(IommuException.class).hasMessage("iova 0x40007000 is already mapped");
        assertThat(table.unmap(region + 0x7000, 0x1000)).isEqualTo(twoMb); // the large leaf goes whole
        assertThat(table.lookup(region + 0x7000, 0)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.mappedPages()).isZero();
        assertThat(table.leafCount(0x1000)).isZero();
        assertThat(table.leafCount(twoMb)).isZero();
    }

    private static void assertEinval(ThrowingCallable call, String message) {
        assertThatThrownBy(call)
                .isInstanceOf(IommuException.class)
                .hasMessage(message)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
    }
}
