package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class IoPageTableTest {
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
}
