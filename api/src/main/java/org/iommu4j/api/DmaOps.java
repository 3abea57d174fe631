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
 *
 * <p>Since 1.2: attributes ({@link DmaAttrs}), scatterlists ({@link ScatterList}, mapped segment by segment by
 * default) and {@link #optMappingSize}, all default methods, so a 1.1 backend keeps working unchanged.
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
     * @return bytes, unsigned; unlimited by default ({@code Long.MAX_VALUE}, as in 1.1; the kernel's
     *     {@code SIZE_MAX} is {@code -1}, which dma-direct returns)
     */
    default long maxMappingSize(Device device) {
        return Long.MAX_VALUE;
    }

    /**
     * The mapping size that performs best, the kernel's {@code dma_opt_mapping_size}: in Linux v6.12 the smaller
     * of {@link #maxMappingSize} and the ops' own optimum, which only an IOMMU's ops have (the IOVA cache's largest
     * size).
     *
     * @param device the device
     * @return bytes; by default {@link #maxMappingSize}
     * @since 1.2
     */
    default long optMappingSize(Device device) {
        return maxMappingSize(device);
    }

    /**
     * {@link #map(Device, long, long, DmaDirection)} with attributes, the kernel's {@code dma_map_page_attrs}.
     *
     * @param device the device
     * @param phys first physical address of the buffer
     * @param size bytes
     * @param direction which way data moves
     * @param attrs the call's attributes
     * @return the DMA address
     * @since 1.2 (by default the attributes are ignored and the 1.1 method is called: a backend without bounce
     *     buffers has nothing to skip and nothing to warn about)
     */
    default long map(Device device, long phys, long size, DmaDirection direction, DmaAttrs attrs) {
        return map(device, phys, size, direction);
    }

    /**
     * {@link #unmap(Device, long, long, DmaDirection)} with attributes, the kernel's {@code dma_unmap_page_attrs}.
     *
     * @param device the device
     * @param dmaAddress what map returned
     * @param size the mapped size
     * @param direction the mapped direction
     * @param attrs the call's attributes
     * @since 1.2 (by default the attributes are ignored and the 1.1 method is called)
     */
    default void unmap(Device device, long dmaAddress, long size, DmaDirection direction, DmaAttrs attrs) {
        unmap(device, dmaAddress, size, direction);
    }

    /**
     * Maps a scatterlist, the kernel's {@code dma_map_sg_attrs}: by default each segment on its own through
     * {@link #map(Device, long, long, DmaDirection, DmaAttrs)}, never merged, as {@code dma_direct_map_sg} does;
     * if one fails, the ones already mapped are unmapped (without a CPU sync, as the kernel's error path does) and
     * the failure is thrown. Entry {@code i} of the DMA side is segment {@code i}.
     *
     * @param device the device
     * @param sg the list; its DMA side is written
     * @param direction which way data moves
     * @param attrs the call's attributes
     * @return the number of DMA entries, {@link ScatterList#mappedCount()}
     * @throws DmaMappingException when a segment cannot be mapped; nothing stays mapped
     * @since 1.2
     */
    default int mapSg(Device device, ScatterList sg, DmaDirection direction, DmaAttrs attrs) {
        int n = sg.nents();
        for (int i = 0; i < n; i++) {
            long address;
            try {
                address = map(device, sg.phys(i), sg.length(i), direction, attrs);
            } catch (RuntimeException e) {
                DmaAttrs skip = attrs.with(DmaAttrs.SKIP_CPU_SYNC);
                for (int j = 0; j < i; j++) {
                    unmap(device, sg.dmaAddressUnchecked(j), sg.length(j), direction, skip);
                }
                sg.setMappedCount(0);
                throw e;
            }
            sg.setDma(i, address, sg.length(i));
        }
        sg.setMappedCount(n);
        return n;
    }

    /**
     * Unmaps a scatterlist {@link #mapSg} mapped, the kernel's {@code dma_unmap_sg_attrs}: by default each DMA
     * entry through {@link #unmap(Device, long, long, DmaDirection, DmaAttrs)}. The list's DMA side is cleared.
     *
     * @param device the device
     * @param sg the mapped list
     * @param direction the mapped direction
     * @param attrs the call's attributes
     * @since 1.2
     */
    default void unmapSg(Device device, ScatterList sg, DmaDirection direction, DmaAttrs attrs) {
        for (int i = 0; i < sg.mappedCount(); i++) {
            unmap(device, sg.dmaAddress(i), sg.dmaLength(i), direction, attrs);
        }
        sg.setMappedCount(0);
    }

    /**
     * The kernel's {@code dma_sync_sg_for_cpu}: by default {@link #syncForCpu} for each DMA entry.
     *
     * @param device the device
     * @param sg the mapped list
     * @param direction the mapped direction
     * @since 1.2
     */
    default void syncSgForCpu(Device device, ScatterList sg, DmaDirection direction) {
        for (int i = 0; i < sg.mappedCount(); i++) {
            syncForCpu(device, sg.dmaAddress(i), sg.dmaLength(i), direction);
        }
    }

    /**
     * The kernel's {@code dma_sync_sg_for_device}: by default {@link #syncForDevice} for each DMA entry.
     *
     * @param device the device
     * @param sg the mapped list
     * @param direction the mapped direction
     * @since 1.2
     */
    default void syncSgForDevice(Device device, ScatterList sg, DmaDirection direction) {
        for (int i = 0; i < sg.mappedCount(); i++) {
            syncForDevice(device, sg.dmaAddress(i), sg.dmaLength(i), direction);
        }
    }
}
