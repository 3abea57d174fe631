package org.iommu4j.api;

/**
 * A coherent DMA buffer: where the CPU finds it and where the device finds it.
 *
 * @param phys the buffer's physical address, for the CPU
 * @param dmaAddress the buffer's bus address, for the device
 * @param size bytes, a multiple of the page size
 */
public record CoherentBuffer(long phys, long dmaAddress, long size) {
}
