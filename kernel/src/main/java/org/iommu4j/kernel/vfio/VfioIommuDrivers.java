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
    private final List<java.util.function.Consumer<VfioIommuDriver>> unregisterListeners =
            new CopyOnWriteArrayList<>();

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
    public void unregister(VfioIommuDriver driver) {
        boolean removed;
        synchronized (this) {
            removed = drivers.removeIf(r -> r.driver() == driver);
        }
        if (removed) {
            unregisterListeners.forEach(l -> l.accept(driver));
        }
    }

    /**
     * @param listener told after a driver is unregistered, so the VFIO core can drop what the driver provided
     */
    public void addUnregisterListener(java.util.function.Consumer<VfioIommuDriver> listener) {
        unregisterListeners.add(listener);
    }

    /** @return the registered drivers, oldest first */
    public List<Registered> all() {
        return List.copyOf(drivers);
    }

    /**
     * @param owner a module
     * @return how many of its drivers were unregistered
     */
    public int removeAllOwnedBy(ModuleRef owner) {
        int n = 0;
        for (Registered r : drivers) {
            if (r.owner() == owner) {
                unregister(r.driver());
                n++;
            }
        }
        return n;
    }

    /**
     * @param driver a driver
     * @return the module that registered it, or {@link ModuleRef#KERNEL} if it is not registered
     */
    public ModuleRef ownerOf(VfioIommuDriver driver) {
        for (Registered r : drivers) {
            if (r.driver() == driver) {
                return r.owner();
            }
        }
        return ModuleRef.KERNEL;
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
