package org.iommu4j.api;

/**
 * Protection bits of an IOMMU mapping, the kernel's {@code IOMMU_*} flags. They are an {@code int} bit set so
 * that map and translate allocate nothing. READ and WRITE have the same values as VFIO's
 * {@code VFIO_DMA_MAP_FLAG_READ} and {@code VFIO_DMA_MAP_FLAG_WRITE}.
 */
public final class IommuProt {
    /** The device may read (DMA to the device). */
    public static final int READ = 1;
    /** The device may write (DMA from the device). */
    public static final int WRITE = 1 << 1;
    /** The mapping is cache coherent. */
    public static final int CACHE = 1 << 2;
    /** The device may not fetch instructions from it. */
    public static final int NOEXEC = 1 << 3;
    /** The mapping is device memory (MMIO), not RAM. */
    public static final int MMIO = 1 << 4;
    /** Every bit defined above. */
    public static final int ALL = READ | WRITE | CACHE | NOEXEC | MMIO;

    private IommuProt() {
    }

    /**
     * Names the bits, for messages.
     *
     * @param prot a bit set
     * @return for example {@code READ|WRITE}, {@code none} for 0, and unknown bits in hex
     */
    public static String toString(int prot) {
        StringBuilder sb = new StringBuilder();
        String[] names = {"READ", "WRITE", "CACHE", "NOEXEC", "MMIO"};
        for (int i = 0; i < names.length; i++) {
            if ((prot & 1 << i) != 0) {
                sb.append(sb.length() == 0 ? "" : "|").append(names[i]);
            }
        }
        int unknown = prot & ~ALL;
        if (unknown != 0) {
            sb.append(sb.length() == 0 ? "" : "|").append("0x").append(Integer.toHexString(unknown));
        }
        return sb.length() == 0 ? "none" : sb.toString();
    }
}
