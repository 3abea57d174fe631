package org.iommu4j.api;

/**
 * A DMA-API mapping that could not be made: where the kernel's {@code dma_map_*} returns
 * {@code DMA_MAPPING_ERROR} (bounce pool full, buffer beyond the device's reach, no pool to bounce through).
 * Nothing was mapped and no slot is held.
 */
public class DmaMappingException extends IommuException {
    private static final long serialVersionUID = 1L;

    /**
     * @param errno usually {@link Errno#ENOMEM}, what a driver reports for {@code DMA_MAPPING_ERROR} whatever the
     *     cause (no room, a buffer or bounce slot beyond the device's reach; since 1.2 swiotlb says ENOMEM for
     *     both, where 1.1 said EIO for the second)
     * @param message the kernel's message with its figures
     */
    public DmaMappingException(Errno errno, String message) {
        super(errno, message);
    }
}
