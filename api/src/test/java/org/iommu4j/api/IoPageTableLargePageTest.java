package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class IoPageTableLargePageTest {
    private static final long MB2 = 1L << 21;
    private static final long GB1 = 1L << 30;
    private final IoPageTable table = new IoPageTable();

    @Test
    void aTwoMegabytePageIsOneLeafAndTranslatesEveryOffsetInIt() {
        table.mapPages(0x4020_0000L, 0x0060_0000L, MB2, 1, IommuProt.READ | IommuProt.WRITE);

        assertThat(table.leafCount(MB2)).isEqualTo(1);
        assertThat(table.leafCount(PhysicalMemory.PAGE_SIZE)).isZero();
        assertThat(table.mappedPages()).isEqualTo(512);
        assertThat(table.pageSizeAt(0x4020_0000L + 0x12345)).isEqualTo(MB2);
        assertThat(table.lookup(0x4020_0000L + 0x12345, IommuProt.WRITE)).isEqualTo(0x0060_0000L + 0x12345);
        assertThat(table.lookup(0x4020_0000L + MB2 - 1, IommuProt.READ)).isEqualTo(0x0060_0000L + MB2 - 1);
        assertThat(table.lookup(0x4020_0000L + MB2, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.lookup(0x4020_0000L - 1, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
    }

    @Test
    void aOneGigabytePageIsOneLeafAndEnforcesItsProtection() {
        table.mapPages(GB1 * 3, GB1, GB1, 1, IommuProt.READ);

        assertThat(table.leafCount(GB1)).isEqualTo(1);
        assertThat(table.pageSizeAt(GB1 * 3 + 0x3fff_f000L)).isEqualTo(GB1);
        assertThat(table.lookup(GB1 * 3 + 0x1234_5678L, IommuProt.READ)).isEqualTo(GB1 + 0x1234_5678L);
        assertThat(table.lookup(GB1 * 3, IommuProt.WRITE)).isEqualTo(IommuDomain.FAULT_PERMISSION);
    }

    @Test
    void unmappingOnePageOfALargeLeafRemovesTheWholeLeafAndSaysSo() {
        table.mapPages(0x20_0000L, 0x40_0000L, MB2, 2, IommuProt.READ);

        assertThat(table.unmap(0x20_0000L + 0x5000, 0x1000)).isEqualTo(MB2);
        assertThat(table.lookup(0x20_0000L, IommuProt.READ)).isEqualTo(IommuDomain.FAULT_NOT_MAPPED);
        assertThat(table.lookup(0x40_0000L, IommuProt.READ)).isEqualTo(0x60_0000L);
        assertThat(table.leafCount(MB2)).isEqualTo(1);
        assertThat(table.mappedPages()).isEqualTo(512);
    }

    @Test
    void aLargePageOverSmallerMappingsIsRefusedNamingTheFirstMappedPage() {
        table.map(0x20_3000L, 0x1000, 0x1000, IommuProt.READ);
        assertThatThrownBy(() -> table.mapPages(0x20_0000L, 0x40_0000L, MB2, 1, IommuProt.READ))
                .isInstanceOf(IommuException.class)
                .hasMessage("iova 0x203000 is already mapped");
        table.mapPages(0x40_0000L, 0x40_0000L, MB2, 1, IommuProt.READ);
        assertThatThrownBy(() -> table.map(0x40_1000L, 0x1000, 0x1000, IommuProt.READ))
                .hasMessage("iova 0x401000 is already mapped");
        assertThat(table.mappedPages()).isEqualTo(513);
    }

    @Test
    void badLargePageArgumentsAreRefusedAndChangeNothing() {
        assertThatThrownBy(() -> table.mapPages(0, 0, 0x10000, 1, IommuProt.READ))
                .hasMessage("page size 0x10000 is not supported: expected 0x1000, 0x200000 or 0x40000000");
        assertThatThrownBy(() -> table.mapPages(0x1000, 0, MB2, 1, IommuProt.READ))
                .hasMessage("iova 0x1000 or phys 0x0 is not aligned to the page size 0x200000");
        assertThatThrownBy(() -> table.mapPages(0, 0, MB2, 0, IommuProt.READ))
                .hasMessage("page count 0 is invalid: expected 1 to 8796093022207 pages of 0x200000");
        assertThatThrownBy(() -> table.mapPages(-GB1, 0, GB1, 2, IommuProt.READ))
                .hasMessage("iova 0xffffffffc0000000 + size 0x80000000 wraps past 2^64: expected a size of at"
                        + " most 0x40000000");
        assertThat(table.mappedPages()).isZero();
    }

    @Test
    void theTopOfTheAddressSpaceTakesAOneGigabyteLeaf() {
        table.mapPages(-GB1, 0, GB1, 1, IommuProt.READ);
        assertThat(table.lookup(-1L, IommuProt.READ)).isEqualTo(GB1 - 1);
        assertThat(table.unmap(-GB1, GB1)).isEqualTo(GB1);
        assertThat(table.leafCount(GB1)).isZero();
    }
}
