package org.iommu4j.api;

/**
 * Which way data moves in a streaming DMA mapping, the kernel's {@code enum dma_data_direction}. It decides
 * which copies a bounce buffer makes: see each constant.
 */
public enum DmaDirection {
    /** Both ways: copied to the device on map and sync-for-device, back on sync-for-cpu and unmap. */
    BIDIRECTIONAL,
    /** The device reads memory: copied to the bounce buffer on map and sync-for-device. */
    TO_DEVICE,
    /** The device writes memory: copied back to the original on sync-for-cpu and unmap. */
    FROM_DEVICE,
    /** No data moves; valid only for debugging, never for a mapping (the kernel BUGs on it). */
    NONE;

    /** @return whether the device may read the buffer (BIDIRECTIONAL or TO_DEVICE) */
    public boolean toDevice() {
        return this == BIDIRECTIONAL || this == TO_DEVICE;
    }

    /** @return whether the device may write the buffer (BIDIRECTIONAL or FROM_DEVICE) */
    public boolean fromDevice() {
        return this == BIDIRECTIONAL || this == FROM_DEVICE;
    }

    /**
     * The direction a mapping with these {@link IommuProt} flags implies: READ only is TO_DEVICE, WRITE only
     * FROM_DEVICE, both BIDIRECTIONAL.
     *
     * @param prot {@link IommuProt} bits
     * @return the direction
     * @throws IllegalArgumentException if neither READ nor WRITE is set
     */
    public static DmaDirection ofProt(int prot) {
        boolean read = (prot & IommuProt.READ) != 0;
        boolean write = (prot & IommuProt.WRITE) != 0;
        if (read && write) {
            return BIDIRECTIONAL;
        }
        if (read) {
            return TO_DEVICE;
        }
        if (write) {
            return FROM_DEVICE;
        }
        throw new IllegalArgumentException(
                "prot " + IommuProt.toString(prot) + " grants no access: expected READ, WRITE or both");
    }
}
