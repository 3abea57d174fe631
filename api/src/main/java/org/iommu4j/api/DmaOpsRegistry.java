package org.iommu4j.api;

/**
 * Where a backend installs its {@link DmaOps}: for one device (the kernel's {@code set_dma_ops}, usually at
 * probe) or as the default for every device without its own. Devices without either use the kernel's
 * dma-direct, {@link #directOps()}.
 */
public interface DmaOpsRegistry {

    /**
     * @param device a device
     * @param ops the ops its DMA API calls go to from now on
     */
    void setDeviceOps(Device device, DmaOps ops);

    /**
     * Removes a device's own ops, so that it falls back to the default.
     *
     * @param device a device
     */
    void clearDeviceOps(Device device);

    /**
     * Installs ops for every device that has none of its own.
     *
     * @param ops the ops
     * @throws IommuException {@link Errno#EBUSY} if another module's default ops are installed
     */
    void setDefaultOps(DmaOps ops);

    /**
     * Removes the default ops this module installed; devices fall back to {@link #directOps()}.
     *
     * @param ops the ops given to {@link #setDefaultOps}
     */
    void clearDefaultOps(DmaOps ops);

    /**
     * The kernel's dma-direct without bouncing: DMA address = physical address, and a buffer beyond the
     * device's reach is refused.
     *
     * @return the kernel's direct ops
     */
    DmaOps directOps();
}
