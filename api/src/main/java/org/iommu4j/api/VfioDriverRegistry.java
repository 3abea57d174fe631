package org.iommu4j.api;

/** Where a backend registers its {@link VfioIommuDriver}s ({@code vfio_register_iommu_driver}). */
public interface VfioDriverRegistry {

    /**
     * @param driver a driver; containers can select its types from now on
     * @throws IommuException {@link Errno#EEXIST} if a driver of that name is registered
     */
    void register(VfioIommuDriver driver);

    /**
     * @param driver a registered driver
     * @throws IommuException {@link Errno#EBUSY} while a container uses it
     */
    void unregister(VfioIommuDriver driver);
}
