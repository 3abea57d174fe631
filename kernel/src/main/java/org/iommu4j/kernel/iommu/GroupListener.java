package org.iommu4j.kernel.iommu;

import org.iommu4j.kernel.bus.BusDevice;

/** Told when a device leaves its iommu group (hot-remove, driver unregistered, reprobe), after it has left. */
@FunctionalInterface
public interface GroupListener {

    /**
     * @param device the device, now in no group
     * @param group the group it was in (possibly now empty and gone)
     */
    void deviceLeftGroup(BusDevice device, Group group);
}
