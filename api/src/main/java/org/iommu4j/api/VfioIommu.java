package org.iommu4j.api;

import java.util.Optional;

/**
 * One container's instance of a {@link VfioIommuDriver}. The VFIO core serialises calls per container, so an
 * implementation needs no locking of its own for them.
 */
public interface VfioIommu {

    /**
     * Whether the driver implements a container ioctl at all. The kernel passes the ioctls it does not know to
     * the container's driver, and a driver that does not implement one answers {@code ENOTTY} before looking at
     * its arguments, as the kernel's no-IOMMU driver does for {@code VFIO_IOMMU_MAP_DMA} and
     * {@code VFIO_IOMMU_UNMAP_DMA}. The core asks this first and fails the call with {@link Errno#ENOTTY}
     * carrying the reason. The default implements map and unmap; {@link Vfio#IOMMU_GET_INFO} is the kernel's
     * type 1 driver's alone.
     *
     * @param request {@link Vfio#IOMMU_MAP_DMA}, {@link Vfio#IOMMU_UNMAP_DMA} or {@link Vfio#IOMMU_GET_INFO}
     * @return empty when implemented, or why not, for the message (since 1.2)
     */
    default Optional<String> unsupportedIoctl(int request) {
        return Optional.empty();
    }

    /**
     * A group joins the container (or the container's type is being set with the group already in it).
     *
     * @param group the group
     * @throws IommuException to refuse the group: the core then leaves it out of the container
     */
    void attachGroup(IommuGroup group);

    /**
     * A group leaves the container. The core has already unmapped everything when it was the last group.
     *
     * @param group a group {@link #attachGroup} accepted
     */
    void detachGroup(IommuGroup group);

    /**
     * Makes pinned user memory reachable by the container's devices. The core has checked that the requested
     * range does not overlap a live mapping and that the pages are pinned.
     *
     * @param iova the requested device address, or {@link Vfio#ANY_IOVA} to let the driver choose
     * @param pages the pinned memory
     * @param prot {@link IommuProt#READ} and/or {@link IommuProt#WRITE}
     * @return the device address of the first byte of the mapping
     * @throws IommuException {@link Errno#EINVAL} naming the first page that cannot be mapped, or
     *     {@link Errno#ENOMEM}; nothing stays mapped
     */
    long map(long iova, PinnedPages pages, int prot);

    /**
     * Removes a whole mapping that {@link #map} made, copying back anything the device wrote that is not yet
     * in the user's pages. The core unpins the pages afterwards.
     *
     * @param mapping the mapping
     */
    void unmap(VfioDmaMapping mapping);

    /**
     * Makes what devices wrote into part of a mapping visible in the user's pages. Nothing to do for a driver
     * that maps user memory directly.
     *
     * @param mapping the mapping
     * @param offset bytes from the mapping's start
     * @param size bytes, inside the mapping
     */
    default void syncForCpu(VfioDmaMapping mapping, long offset, long size) {
    }

    /**
     * Makes what the user wrote into part of a mapping visible to devices.
     *
     * @param mapping the mapping
     * @param offset bytes from the mapping's start
     * @param size bytes, inside the mapping
     */
    default void syncForDevice(VfioDmaMapping mapping, long offset, long size) {
    }

    /**
     * The container is closing; every mapping has been unmapped and every group detached.
     */
    default void release() {
    }
}
