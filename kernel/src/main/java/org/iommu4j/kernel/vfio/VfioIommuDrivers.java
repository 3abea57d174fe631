package org.iommu4j.kernel.vfio;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.VfioDriverRegistry;
import org.iommu4j.api.VfioIommuDriver;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * The VFIO core's list of iommu drivers ({@code vfio.iommu_drivers_list}), in registration order, each with
 * the module that registered it.
 */
public final class VfioIommuDrivers {
    private final List<Registered> drivers = new CopyOnWriteArrayList<>();

    /**
     * A driver and its module.
     *
     * @param driver the driver
     * @param owner the module that registered it
     */
    public record Registered(VfioIommuDriver driver, ModuleRef owner) {
    }

    /**
     * @param driver a driver
     * @param owner its module
     * @throws IommuException {@link Errno#EEXIST} for a second driver of that name
     */
    public synchronized void register(VfioIommuDriver driver, ModuleRef owner) {
        for (Registered r : drivers) {
            if (r.driver().name().equals(driver.name())) {
                throw new IommuException(Errno.EEXIST, "a VFIO iommu driver named " + driver.name()
                        + " is already registered by " + r.owner().name());
            }
        }
        drivers.add(new Registered(driver, owner));
    }

    /**
     * @param driver a registered driver; nothing happens for an unknown one
     */
    public synchronized void unregister(VfioIommuDriver driver) {
        drivers.removeIf(r -> r.driver() == driver);
    }

    /** @return the registered drivers, oldest first */
    public List<Registered> all() {
        return List.copyOf(drivers);
    }

    /**
     * @param owner a module
     * @return how many of its drivers were unregistered
     */
    public synchronized int removeAllOwnedBy(ModuleRef owner) {
        int before = drivers.size();
        drivers.removeIf(r -> r.owner() == owner);
        return before - drivers.size();
    }

    /**
     * @param owner a module
     * @return the api view whose registrations belong to {@code owner}
     */
    public VfioDriverRegistry view(ModuleRef owner) {
        return new VfioDriverRegistry() {
            @Override
            public void register(VfioIommuDriver driver) {
                VfioIommuDrivers.this.register(driver, owner);
            }

            @Override
            public void unregister(VfioIommuDriver driver) {
                VfioIommuDrivers.this.unregister(driver);
            }
        };
    }
}
