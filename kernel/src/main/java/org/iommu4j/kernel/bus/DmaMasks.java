package org.iommu4j.kernel.bus;

/** The kernel's {@code DMA_BIT_MASK(n)}. */
public final class DmaMasks {
    private DmaMasks() {
    }

    /**
     * @param bits 1 to 64
     * @return a mask of the low {@code bits} bits
     * @throws IllegalArgumentException outside 1 to 64
     */
    public static long bits(int bits) {
        if (bits < 1 || bits > 64) {
            throw new IllegalArgumentException("DMA mask of " + bits + " bits is invalid: expected 1 to 64");
        }
        return bits == 64 ? -1L : (1L << bits) - 1;
    }
}
