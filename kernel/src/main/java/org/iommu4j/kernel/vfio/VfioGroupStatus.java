package org.iommu4j.kernel.vfio;

/**
 * {@code struct vfio_group_status}.
 *
 * @param viable {@code VFIO_GROUP_FLAGS_VIABLE}
 * @param containerSet {@code VFIO_GROUP_FLAGS_CONTAINER_SET}
 */
public record VfioGroupStatus(boolean viable, boolean containerSet) {
}
