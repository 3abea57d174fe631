package org.iommu4j.api;

import java.util.Arrays;

/**
 * A scatterlist, the kernel's {@code struct scatterlist} array ({@code include/linux/scatterlist.h}, Linux v6.12):
 * the CPU side is a list of physical segments a driver fills in; the DMA side is what {@code dma_map_sg} wrote
 * back, one DMA address and length per mapped entry ({@code sg_dma_address}, {@code sg_dma_len}). Ops that merge
 * adjacent segments map fewer entries than there are segments; dma-direct and swiotlb never merge.
 *
 * <p>A list is mutable on its DMA side only, and not thread-safe, as the kernel's is: one driver owns it between
 * map and unmap. Its arrays are allocated once, so mapping the same list again allocates nothing.
 *
 * @since 1.2
 */
public final class ScatterList {
    /** The largest segment, the kernel's {@code unsigned int length}. */
    public static final long MAX_SEGMENT_LENGTH = 0xffff_ffffL;

    private final long[] phys;
    private final long[] length;
    private final long[] dmaAddress;
    private final long[] dmaLength;
    private int mapped;

    private ScatterList(int nents) {
        phys = new long[nents];
        length = new long[nents];
        dmaAddress = new long[nents];
        dmaLength = new long[nents];
    }

    /**
     * A list of segments given as pairs.
     *
     * @param physAndLength {@code phys0, length0, phys1, length1, ...}
     * @return the list, not mapped
     * @throws IommuException EINVAL for no segment, an odd count, a length of 0 or above
     *     {@link #MAX_SEGMENT_LENGTH}, or a segment that wraps past 2<sup>64</sup>
     */
    public static ScatterList of(long... physAndLength) {
        if (physAndLength.length == 0 || physAndLength.length % 2 != 0) {
            throw new IommuException(Errno.EINVAL, "scatterlist of " + physAndLength.length + " numbers is"
                    + " invalid: expected at least one (phys, length) pair");
        }
        ScatterList sg = new ScatterList(physAndLength.length / 2);
        for (int i = 0; i < sg.phys.length; i++) {
            long p = physAndLength[2 * i];
            long len = physAndLength[2 * i + 1];
            if (len == 0 || Long.compareUnsigned(len, MAX_SEGMENT_LENGTH) > 0) {
                throw new IommuException(Errno.EINVAL, String.format("scatterlist segment %d length 0x%x is"
                        + " invalid: expected 1 to 0x%x bytes", i, len, MAX_SEGMENT_LENGTH));
            }
            AddressRange.requireNoWrap("scatterlist segment " + i + " phys", p, len);
            sg.phys[i] = p;
            sg.length[i] = len;
        }
        return sg;
    }

    /** @return the number of segments ({@code nents}) */
    public int nents() {
        return phys.length;
    }

    /**
     * @param i a segment index
     * @return its physical address
     */
    public long phys(int i) {
        return phys[i];
    }

    /**
     * @param i a segment index
     * @return its length in bytes
     */
    public long length(int i) {
        return length[i];
    }

    /** @return how many DMA entries the last map produced, 0 when the list is not mapped */
    public int mappedCount() {
        return mapped;
    }

    /**
     * @param i a mapped entry, below {@link #mappedCount()}
     * @return its DMA address ({@code sg_dma_address})
     */
    public long dmaAddress(int i) {
        requireMapped(i);
        return dmaAddress[i];
    }

    /**
     * @param i a mapped entry, below {@link #mappedCount()}
     * @return its DMA length ({@code sg_dma_len})
     */
    public long dmaLength(int i) {
        requireMapped(i);
        return dmaLength[i];
    }

    /**
     * The DMA address of an entry written with {@link #setDma} but not yet counted by {@link #setMappedCount}; for
     * {@link DmaOps} implementations undoing a map that failed half way.
     *
     * @param i an entry written with {@link #setDma}
     * @return its DMA address
     */
    public long dmaAddressUnchecked(int i) {
        return dmaAddress[i];
    }

    /**
     * Writes one DMA entry; for {@link DmaOps} implementations.
     *
     * @param i the entry, below {@link #nents()}
     * @param address its DMA address
     * @param bytes its DMA length
     */
    public void setDma(int i, long address, long bytes) {
        dmaAddress[i] = address;
        dmaLength[i] = bytes;
    }

    /**
     * Says how many DMA entries are valid; for {@link DmaOps} implementations (0 clears the DMA side).
     *
     * @param count 0 to {@link #nents()}
     */
    public void setMappedCount(int count) {
        if (count < 0 || count > phys.length) {
            throw new IommuException(Errno.EINVAL, "mapped count " + count + " is invalid: expected 0 to "
                    + phys.length);
        }
        mapped = count;
        if (count == 0) {
            Arrays.fill(dmaAddress, 0);
            Arrays.fill(dmaLength, 0);
        }
    }

    private void requireMapped(int i) {
        if (i < 0 || i >= mapped) {
            throw new IommuException(Errno.EINVAL, "scatterlist entry " + i + " is not mapped: " + mapped
                    + " of " + phys.length + " entries are");
        }
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("ScatterList[");
        for (int i = 0; i < phys.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(String.format("0x%x+0x%x", phys[i], length[i]));
            if (i < mapped) {
                sb.append(String.format(" -> 0x%x+0x%x", dmaAddress[i], dmaLength[i]));
            }
        }
        return sb.append(']').toString();
    }
}
