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
}
