package org.iommu4j.api;

import java.util.EnumSet;
import java.util.Optional;
import java.util.Set;

/**
 * A VFIO iommu backend, the kernel's {@code struct vfio_iommu_driver_ops}: the iommu types a container can
 * select with {@code VFIO_SET_IOMMU}, and an instance per container that maps and unmaps. Register it with
 * {@link VfioDriverRegistry#register}.
 *
 * <p>The kernel's VFIO core does everything common: access checks, viability, pinning, the interval
 * bookkeeping of mappings (overlap, split, unmap accounting), teardown on close and hot-remove. A driver only
 * says what it supports and moves the bytes. The kernel itself ships the type-1 driver, which works over any
 * backend's {@link IommuOps} domains.
 */
public interface VfioIommuDriver {

    /** @return the driver's name, for example {@code vfio-noiommu} */
    String name();

    /**
     * The kernel's {@code VFIO_CHECK_EXTENSION} answer for this driver.
     *
     * @param extension an iommu type from {@link Vfio} or another extension number
     * @return a positive number when supported, 0 when not
     */
    int checkExtension(int extension);

    /**
     * Whether devices behind this driver are confined to what is mapped for them. A driver without isolation
     * pairs only with groups without isolation (and the other way round), and its users need
     * {@link #requiredCapabilities()} at every access point.
     *
     * @return true for a translating, isolating driver
     */
    boolean isolating();

    /**
     * What a process must hold to use a container with this driver: checked by the core when the type is set
     * and at every later access point.
     *
     * @return CAP_SYS_RAWIO for a driver that does not isolate, nothing for one that does
     */
    default Set<Capability> requiredCapabilities() {
        return isolating() ? Set.of() : EnumSet.of(Capability.CAP_SYS_RAWIO);
    }

    /**
     * A group for a device that has none, asked when the device is bound to VFIO (noiommu's fake groups).
     * The group must come from {@link IommuCore#allocateGroup}; the core adds the device to it.
     *
     * @param device a device with no iommu group
     * @return a new group, or empty to let the bind fail as the kernel's does (EINVAL)
     */
    default Optional<IommuGroup> provideGroup(Device device) {
        return Optional.empty();
    }

    /**
     * Why {@link #provideGroup} declined a device, naming what would change that; it goes into the message
     * of the failed bind, for example noiommu's "enable_unsafe_noiommu_mode is off".
     *
     * @param device a device this driver gave no group
     * @return the reason, or empty when the driver never provides groups (since API 1.1)
     */
    default Optional<String> noGroupReason(Device device) {
        return Optional.empty();
    }

    /**
     * Opens an instance for a container that selected {@code type}.
     *
     * @param type a type for which {@link #checkExtension} is positive
     * @return the container's instance
     * @throws IommuException {@link Errno#EINVAL} for a type this driver does not offer
     */
    VfioIommu open(int type);
}
