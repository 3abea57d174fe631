package org.iommu4j.api;

/**
 * A DMA-API mapping that could not be made: where the kernel's {@code dma_map_*} returns
 * {@code DMA_MAPPING_ERROR} (bounce pool full, buffer beyond the device's reach, no pool to bounce through).
 * Nothing was mapped and no slot is held.
 */
public class DmaMappingException extends IommuException {
    private static final long serialVersionUID = 1L;

    /**
     * @param errno usually {@link Errno#ENOMEM}, the errno drivers turn {@code DMA_MAPPING_ERROR} into whatever the
     *     cause (the kernel's dma-direct uses it for an unreachable buffer too; some 1.1 backends say
     *     {@link Errno#EIO} for that)
     * @param message the kernel's message with its figures
     */
    public DmaMappingException(Errno errno, String message) {
        super(errno, message);
    }
}
