package org.iommu4j.kernel.vfio;

import org.iommu4j.kernel.proc.UserProcess;

/**
 * What VFIO records of one live DMA mapping, the fields of the kernel's {@code struct vfio_dma}
 * ({@code drivers/vfio/vfio_iommu_type1.c}, Linux v6.12) a user can observe.
 *
 * @param iova the device address, unsigned
 * @param size bytes
 * @param vaddr the user address the mapping was made from, or the one {@link VfioContainer#mapDmaVaddr} gave it
 * @param vaddrValid false between {@code VFIO_DMA_UNMAP_FLAG_VADDR} and {@code VFIO_DMA_MAP_FLAG_VADDR}
 * @param owner the process that may unmap it ({@code dma->task}), charged with its locked memory
 */
public record VfioDmaRecord(long iova, long size, long vaddr, boolean vaddrValid, UserProcess owner) {
}
