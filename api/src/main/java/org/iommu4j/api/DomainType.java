package org.iommu4j.api;

/** The kinds of {@link IommuDomain}, named as {@code /sys/kernel/iommu_groups/<id>/type} prints them. */
public enum DomainType {
    /** The device reaches all memory untranslated, bus address = physical address ({@code identity}). */
    IDENTITY("identity"),
    /** A translating domain the kernel's DMA API manages ({@code DMA}). */
    DMA("DMA"),
    /** A translating domain owned by a user, such as a VFIO container ({@code unmanaged}). */
    UNMANAGED("unmanaged"),
    /** Every device access faults ({@code blocked}). */
    BLOCKED("blocked");

    private final String sysfsName;

    DomainType(String sysfsName) {
        this.sysfsName = sysfsName;
    }

    /** @return the word in the group's sysfs {@code type} file */
    public String sysfsName() {
        return sysfsName;
    }

    /** @return whether domains of this type translate through a page table (DMA and UNMANAGED) */
    public boolean isPaging() {
        return this == DMA || this == UNMANAGED;
    }
}
