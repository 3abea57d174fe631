package org.iommu4j.api;

/**
 * The DMA API a backend provides for kernel drivers, the kernel's {@code struct dma_map_ops}: turn a
 * physical buffer into an address a device can use, keep CPU and device views in step, and hand out
 * coherent memory. Whether that is identity, a bounce buffer or a hypervisor's translation is the backend's
 * business; the caller only ever uses the returned DMA address.
 *
 * <p>The kernel checks arguments before calling: sizes are positive, {@code direction} is not
 * {@link DmaDirection#NONE}, the device is present. {@link #map}, {@link #unmap} and the syncs are hot paths:
 * they run on many threads at once and should allocate nothing on success.
 */
public interface DmaOps {

    /**
     * Maps {@code [phys, phys+size)} for a streaming DMA, the kernel's {@code dma_map_phys}.
     *
     * @param device the device that will access the buffer
     * @param phys first physical address of the buffer
     * @param size bytes
     * @param direction which way data moves
     * @return the DMA address to give the device
     * @throws DmaMappingException when the buffer cannot be made reachable (the kernel's DMA_MAPPING_ERROR)
     */
    long map(Device device, long phys, long size, DmaDirection direction);

    /**
     * Ends a streaming mapping, copying data back to the CPU's buffer where the direction requires.
     *
     * @param device the device given to {@link #map}
     * @param dmaAddress the address {@link #map} returned
     * @param size the size given to {@link #map}
     * @param direction the direction given to {@link #map}
     * @throws IommuException {@link Errno#EINVAL} for an address this backend never mapped or a size that
     *     differs from the mapping's, when the backend keeps state per mapping (a bounce pool does; dma-direct
     *     keeps none and cannot tell); nothing is changed
     */
    void unmap(Device device, long dmaAddress, long size, DmaDirection direction);

    /**
     * Makes what the device wrote visible to the CPU, the kernel's {@code dma_sync_single_for_cpu}.
     *
     * @param device the device
     * @param dmaAddress an address inside a live mapping
     * @param size bytes from there, inside the same mapping
     * @param direction the mapping's direction
     */
    void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction);

    /**
     * Makes what the CPU wrote visible to the device, the kernel's {@code dma_sync_single_for_device}.
     *
     * @param device the device
     * @param dmaAddress an address inside a live mapping
     * @param size bytes from there, inside the same mapping
     * @param direction the mapping's direction
     */
    void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction);

    /**
     * Allocates memory both the CPU and the device see without syncs, the kernel's {@code dma_alloc_coherent}:
     * reachable by the device under its coherent mask, zeroed.
     *
     * @param device the device
     * @param size bytes, rounded up to whole pages
     * @return the buffer's CPU and DMA addresses
     * @throws IommuException {@link Errno#ENOMEM} when no reachable memory is free
     */
    CoherentBuffer allocateCoherent(Device device, long size);

    /**
     * Frees a buffer {@link #allocateCoherent} returned.
     *
     * @param device the device it was allocated for
     * @param buffer the buffer
     */
    void freeCoherent(Device device, CoherentBuffer buffer);

    /**
     * The largest single mapping this backend can make for the device ({@code dma_max_mapping_size}).
     *
     * @param device the device
     * @return bytes; unlimited by default
     */
    default long maxMappingSize(Device device) {
        return Long.MAX_VALUE;
    }
}
