package org.iommu4j.api;

/** The buses of the simulated host. An iommu backend registers its {@link IommuOps} per bus. */
public enum BusType {
    /** PCI: devices named by their {@link PciAddress}. */
    PCI("pci"),
    /** The platform bus: devices named by a string such as {@code fsl-dma.0}. */
    PLATFORM("platform");

    private final String sysfsName;

    BusType(String sysfsName) {
        this.sysfsName = sysfsName;
    }

    /** @return the bus's name under {@code /sys/bus}, {@code pci} or {@code platform} */
    public String sysfsName() {
        return sysfsName;
    }
}
