package org.iommu4j.api;

import java.util.List;
import java.util.Optional;

/**
 * An iommu group: the smallest set of devices the IOMMU can isolate from each other, and so the unit VFIO
 * hands to a user. The kernel's iommu core owns groups, gives them ids from 0 upward, and shows them in its
 * sysfs view; a backend obtains one from {@link IommuCore#allocateGroup} and returns it from
 * {@link IommuOps#deviceGroup}.
 */
public interface IommuGroup {

    /** @return the group's number, as in {@code /sys/kernel/iommu_groups/<id>} */
    int id();

    /** @return the group's {@code name} attribute, set for fake groups such as {@code vfio-noiommu} */
    Optional<String> name();

    /**
     * Whether the hardware (or a hypervisor) confines the group's devices to what is mapped for them. A group
     * that does not isolate is usable by VFIO only with CAP_SYS_RAWIO, taints the kernel, and shows up as
     * {@code /dev/vfio/noiommu-<id>}.
     *
     * @return true for a real, isolating group
     */
    boolean isolated();

    /** @return the devices in the group, in the order they joined */
    List<Device> devices();

    /** @return the domain the group's devices are attached to now, if any */
    Optional<IommuDomain> domain();

    /**
     * Whether a user (VFIO, for a process that opened the group) holds the group's DMA ownership, the kernel's
     * {@code iommu_group_claim_dma_owner}: while it does, the iommu core refuses to move the group's devices
     * ({@link IommuCore#reprobe} is EBUSY), so a caller that must move several devices can check them all first
     * and change nothing when one is held.
     *
     * @return true while a user owns the group's DMA
     * @since 1.2 (by default false, for groups that cannot be owned)
     */
    default boolean dmaOwned() {
        return false;
    }
}
