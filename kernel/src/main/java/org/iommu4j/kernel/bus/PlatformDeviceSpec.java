package org.iommu4j.kernel.bus;

/**
 * A device on the platform bus.
 *
 * @param name its name, for example {@code fsl-dma.0}
 * @param dmaMask streaming and coherent DMA mask
 * @param driver a stock driver to bind at boot, or null
 */
public record PlatformDeviceSpec(String name, long dmaMask, String driver) {

    /**
     * Checks the name.
     *
     * @param name see the record description
     * @param dmaMask see the record description
     * @param driver see the record description
     */
    public PlatformDeviceSpec {
        if (name == null || !name.matches("[A-Za-z0-9_.:-]+")) {
            throw new IllegalArgumentException("platform device name '" + name
                    + "' is invalid: use letters, digits and . _ : -");
        }
    }

    /**
     * @param name the device's name
     * @return a 32-bit DMA platform device, unbound
     */
    public static PlatformDeviceSpec of(String name) {
        return new PlatformDeviceSpec(name, DmaMasks.bits(32), null);
    }
}
