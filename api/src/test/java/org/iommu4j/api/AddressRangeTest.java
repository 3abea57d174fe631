package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class AddressRangeTest {

    @Test
    void aRangeMayEndExactlyAtTwoToTheSixtyFour() {
        AddressRange top = AddressRange.of("iova", 0xfffffffffffff000L, 0x1000);
        assertThat(top.last()).isEqualTo(-1L);
        assertThat(top.contains(-1L)).isTrue();
        assertThat(top.contains(0L)).isFalse();
        assertThat(top).hasToString("[0xfffffffffffff000-0xffffffffffffffff]");
    }

    @Test
    void aRangeThatWrapsIsRefusedNamingTheInputAndTheLargestSize() {
        assertThatThrownBy(() -> AddressRange.of("iova", 0xffffffffffffe000L, 0x3000))
                .isInstanceOf(IommuException.class)
                .hasMessage("iova 0xffffffffffffe000 + size 0x3000 wraps past 2^64: expected a size of at most 0x2000")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(AddressRange.wraps(2, -1L)).isTrue();
        assertThat(AddressRange.wraps(1, -1L)).isFalse(); // ends exactly at 2^64
        assertThat(AddressRange.wraps(0, -1L)).isFalse();
        assertThat(AddressRange.wraps(-1L, 0)).isFalse();
    }

    @Test
    void sizesAreUnsigned() {
        AddressRange half = AddressRange.of("iova", 0, 1L << 63);
        assertThat(half.contains(0x7fffffffffffffffL)).isTrue();
        assertThat(half.contains(1L << 63)).isFalse();
        assertThat(half.contains(AddressRange.of("iova", 0x1000, 0x7ffffffffffff000L))).isTrue();
        assertThat(half.contains(AddressRange.of("iova", 0x1000, 1L << 63))).isFalse();
        assertThat(AddressRange.fitsBelow(0, 1L << 63, -1L)).isTrue();
        assertThat(AddressRange.fitsBelow(0x1fffff000L, 0x1000, 0xffffffffL)).isFalse();
        assertThat(AddressRange.fitsBelow(-4096, 8192, 0xffffffffL)).isFalse();
    }

    @Test
    void overlapsUseUnsignedDistances() {
        assertThat(AddressRange.overlaps(0, 0x1000, 0xfff, 1)).isTrue();
        assertThat(AddressRange.overlaps(0, 0x1000, 0x1000, 1)).isFalse();
        assertThat(AddressRange.overlaps(0xfffffffffffff000L, 0x1000, 0, 0x1000)).isFalse();
        assertThat(AddressRange.overlaps(0, -1L, 0x8000000000000000L, 0x10)).isTrue();
        assertThat(AddressRange.overlaps(5, 0, 0, 10)).isFalse();
    }

    @Test
    void arithmeticRefusesToWrap() {
        assertThat(AddressRange.addExact("end", 0x7fffffffffffffffL, 1)).isEqualTo(1L << 63);
        assertThatThrownBy(() -> AddressRange.addExact("end", -1L, 1))
                .hasMessage("end 0xffffffffffffffff + 0x1 exceeds 2^64 - 1");
        assertThat(AddressRange.alignUp("size", 0x1001, 0x1000)).isEqualTo(0x2000);
        assertThatThrownBy(() -> AddressRange.alignUp("size", 0xfffffffffffff001L, 0x1000))
                .hasMessage("size 0xfffffffffffff001 rounded up to 0x1000 exceeds 2^64 - 1");
        assertThat(AddressRange.unitsFor(-1L, 0x1000)).isEqualTo(1L << 52);
        assertThat(AddressRange.unitsFor(0x1001, 0x1000)).isEqualTo(2);
    }

    @Test
    void javaArrayLengthsAreCheckedNotCast() {
        assertThat(AddressRange.arrayLength("length", 4096)).isEqualTo(4096);
        assertThatThrownBy(() -> AddressRange.arrayLength("length", -1))
                .hasMessage("length 18446744073709551615 is invalid: expected 0 to 2147483639 bytes in one call");
        assertThatThrownBy(() -> AddressRange.requireSlice(16, 0, -1))
                .hasMessage("buffer slice offset 0 length -1 is invalid: expected 0 <= offset, 0 <= length,"
                        + " offset + length <= 16 (the buffer's length)");
    }
}
