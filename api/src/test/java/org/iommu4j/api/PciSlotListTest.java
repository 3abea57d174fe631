package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class PciSlotListTest {
    @Test
    void addRemoveAndShowLikePcibacksSlotFiles() {
        PciSlotList list = new PciSlotList("(0000:06:0d.0)");
        list.add(PciSlotPattern.parse("07:00.*"));
        assertThat(list).hasToString("0000:06:0d.0\n0000:07:00.*\n");
        assertThatThrownBy(() -> list.add(PciSlotPattern.parse("0000:07:00.*")))
                .hasMessage("slot 0000:07:00.* is already on the list")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EEXIST);
        list.remove(PciSlotPattern.parse("0000:06:0d.0"));
        assertThatThrownBy(() -> list.remove(PciSlotPattern.parse("0000:06:0d.0")))
                .hasMessage("slot 0000:06:0d.0 is not on the list; listed: [0000:07:00.*]")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
        var saved = list.snapshot();
        list.add(PciSlotPattern.parse("0000:08:00.0"));
        list.restore(saved);
        assertThat(list.snapshot()).containsExactly(PciSlotPattern.parse("0000:07:00.*"));
    }
}
