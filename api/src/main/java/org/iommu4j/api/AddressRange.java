package org.iommu4j.api;

/**
 * A range of a 64-bit address space, {@code [start, start + size)}, with both numbers unsigned, as the kernel's
 * {@code dma_addr_t}, {@code phys_addr_t} and {@code size_t} are. This is the one place where iommu4j does
 * address arithmetic that can overflow: every public entry point that takes an address and a size checks them
 * through it, so {@code 0xfffffffffffff000 + 0x2000} is refused as a wrap instead of silently reaching address 0,
 * and a size of {@code 1L << 63} is a large size, not a negative one.
 *
 * <p>A range may end exactly at 2<sup>64</sup> (its {@link #last()} byte is {@code 0xffffffffffffffff}); it may
 * be empty (size 0), in which case it contains nothing and {@link #last()} is undefined. The static helpers do
 * the same checks for callers that keep the two numbers apart, so that a hot path need not build a record.
 *
 * @param start the first address, unsigned
 * @param size the number of bytes, unsigned
 * @since 1.2
 */
public record AddressRange(long start, long size) {

    /**
     * Checks that the range does not wrap past 2<sup>64</sup>.
     *
     * @param start see the record description
     * @param size see the record description
     * @throws IommuException EINVAL if {@code start + size} exceeds 2<sup>64</sup>
     */
    public AddressRange {
        requireNoWrap("address", start, size);
    }

    /**
     * A range, checked, with the caller's name for the address in the message.
     *
     * @param what what the address is, for the message ({@code "iova"}, {@code "vaddr"})
     * @param start the first address, unsigned
     * @param size the number of bytes, unsigned
     * @return the range
     * @throws IommuException EINVAL naming {@code what} if the range wraps past 2<sup>64</sup>
     */
    public static AddressRange of(String what, long start, long size) {
        requireNoWrap(what, start, size);
        return new AddressRange(start, size);
    }

    /** @return whether the range has no bytes */
    public boolean isEmpty() {
        return size == 0;
    }

    /**
     * The last byte of a non-empty range.
     *
     * @return {@code start + size - 1}, unsigned
     * @throws IllegalStateException if the range is empty
     */
    public long last() {
        if (size == 0) {
            throw new IllegalStateException("an empty range at 0x" + Long.toHexString(start) + " has no last byte");
        }
        return start + size - 1;
    }

    /**
     * @param address an address, unsigned
     * @return whether the range holds that address
     */
    public boolean contains(long address) {
        return size != 0 && Long.compareUnsigned(address - start, size) < 0;
    }

    /**
     * @param other another range
     * @return whether every byte of {@code other} is in this range (an empty one is, if it starts inside or at
     *     this range's end)
     */
    public boolean contains(AddressRange other) {
        long offset = other.start - start;
        return Long.compareUnsigned(offset, size) <= 0 && Long.compareUnsigned(other.size, size - offset) <= 0;
    }

    /**
     * @param other another range
     * @return whether the two share at least one byte
     */
    public boolean overlaps(AddressRange other) {
        return overlaps(start, size, other.start, other.size);
    }

    /**
     * @param limit the highest address allowed, inclusive and unsigned (a DMA mask, a bus limit)
     * @return whether every byte of the range is at or below the limit (an empty range always is)
     */
    public boolean fitsBelow(long limit) {
        return fitsBelow(start, size, limit);
    }

    /** @return {@code [0x<start>-0x<last>]}, as the kernel prints resources, or {@code [0x<start>, empty]} */
    @Override
    public String toString() {
        return size == 0 ? String.format("[0x%x, empty]", start) : String.format("[0x%x-0x%x]", start, last());
    }

    /**
     * Whether {@code [start, start + size)} wraps past 2<sup>64</sup>.
     *
     * @param start the first address, unsigned
     * @param size the number of bytes, unsigned
     * @return whether the range would wrap (never for size 0)
     */
    public static boolean wraps(long start, long size) {
        // Bytes left up to 2^64, minus one so that the count fits in 64 bits: ~start.
        return size != 0 && Long.compareUnsigned(size - 1, ~start) > 0;
    }

    /**
     * Refuses a range that wraps past 2<sup>64</sup>, the check the kernel writes as {@code iova + size - 1 < iova}.
     *
     * @param what what the address is, for the message
     * @param start the first address, unsigned
     * @param size the number of bytes, unsigned
     * @throws IommuException EINVAL naming the input and the largest size that would fit
     */
    public static void requireNoWrap(String what, long start, long size) {
        if (wraps(start, size)) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "%s 0x%x + size 0x%x wraps past 2^64: expected a size of at most 0x%x",
                    what, start, size, -start));
        }
    }

    /**
     * Whether a range lies at or below a limit, with unsigned arithmetic that cannot wrap.
     *
     * @param start the first address, unsigned
     * @param size the number of bytes, unsigned
     * @param limit the highest address allowed, inclusive and unsigned
     * @return whether every byte is at or below {@code limit}; false for a range that wraps
     */
    public static boolean fitsBelow(long start, long size, long limit) {
        if (size == 0) {
            return true;
        }
        if (wraps(start, size)) {
            return false;
        }
        return Long.compareUnsigned(start + size - 1, limit) <= 0;
    }

    /**
     * Whether two ranges share a byte, with unsigned arithmetic that cannot wrap.
     *
     * @param start1 the first range's start
     * @param size1 the first range's size
     * @param start2 the second range's start
     * @param size2 the second range's size
     * @return whether they overlap (never when either is empty)
     */
    public static boolean overlaps(long start1, long size1, long start2, long size2) {
        if (size1 == 0 || size2 == 0) {
            return false;
        }
        return Long.compareUnsigned(start2 - start1, size1) < 0 || Long.compareUnsigned(start1 - start2, size2) < 0;
    }

    /**
     * Unsigned addition that refuses to wrap.
     *
     * @param what what the sum is, for the message
     * @param a an unsigned number
     * @param b an unsigned number
     * @return {@code a + b}
     * @throws IommuException EINVAL if the sum exceeds 2<sup>64</sup> - 1
     */
    public static long addExact(String what, long a, long b) {
        long sum = a + b;
        if (Long.compareUnsigned(sum, a) < 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "%s 0x%x + 0x%x exceeds 2^64 - 1", what, a, b));
        }
        return sum;
    }

    /**
     * Rounds an unsigned number up to a power-of-two alignment, refusing to wrap.
     *
     * @param what what the number is, for the message
     * @param value an unsigned number
     * @param alignment a power of two
     * @return the smallest multiple of {@code alignment} at or above {@code value}
     * @throws IommuException EINVAL if that multiple exceeds 2<sup>64</sup> - 1, or the alignment is not a power
     *     of two
     */
    public static long alignUp(String what, long value, long alignment) {
        requirePowerOfTwo("alignment", alignment);
        long mask = alignment - 1;
        long up = (value + mask) & ~mask;
        if (Long.compareUnsigned(up, value) < 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "%s 0x%x rounded up to 0x%x exceeds 2^64 - 1", what, value, alignment));
        }
        return up;
    }

    /**
     * @param value an unsigned number
     * @param alignment a power of two
     * @return whether {@code value} is a multiple of {@code alignment}
     */
    public static boolean isAligned(long value, long alignment) {
        return (value & (alignment - 1)) == 0;
    }

    /**
     * How many {@code unit}-sized pieces a size needs, rounded up, without overflow.
     *
     * @param size an unsigned size
     * @param unit a power of two
     * @return {@code ceil(size / unit)}, unsigned
     */
    public static long unitsFor(long size, long unit) {
        int shift = Long.numberOfTrailingZeros(unit);
        return (size >>> shift) + ((size & (unit - 1)) != 0 ? 1 : 0);
    }

    /**
     * Converts a byte count to a Java array length, for the calls that copy into or out of {@code byte[]}.
     *
     * @param what what the count is, for the message
     * @param length a count, which must be 0 to {@code Integer.MAX_VALUE - 8}
     * @return the count as an int
     * @throws IommuException EINVAL if it is negative or too large for one Java array
     */
    public static int arrayLength(String what, long length) {
        if (length < 0 || length > MAX_ARRAY_LENGTH) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "%s %s is invalid: expected 0 to %d bytes in one call",
                    what, Long.toUnsignedString(length), MAX_ARRAY_LENGTH));
        }
        return (int) length;
    }

    /**
     * Checks a slice of a Java array, as {@code buffer[offset, offset + length)}.
     *
     * @param bufferLength the array's length
     * @param offset the first index
     * @param length the number of bytes
     * @throws IommuException EINVAL naming the slice and the array's length if it does not fit
     */
    public static void requireSlice(int bufferLength, int offset, int length) {
        if (offset < 0 || length < 0 || length > bufferLength - offset) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "buffer slice offset %d length %d is invalid: expected 0 <= offset, 0 <= length,"
                            + " offset + length <= %d (the buffer's length)", offset, length, bufferLength));
        }
    }

    private static void requirePowerOfTwo(String what, long value) {
        if (value == 0 || (value & (value - 1)) != 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "%s 0x%x is invalid: expected a power of two", what, value));
        }
    }

    /** The longest byte count one Java array can hold on every JVM. */
    public static final int MAX_ARRAY_LENGTH = Integer.MAX_VALUE - 8;
}
