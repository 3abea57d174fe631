package org.iommu4j.api;

/** What an IOMMU can do for a device, asked with {@link IommuOps#capable}; the kernel's {@code enum iommu_cap}. */
public enum IommuCapability {
    /**
     * DMA through the IOMMU snoops CPU caches. VFIO requires it of an isolating IOMMU for every device it
     * takes: binding {@code vfio-pci} to a device whose IOMMU does not report it fails with
     * {@link Errno#EINVAL}, so an IOMMU that will not give a device to user space answers false for it.
     */
    CACHE_COHERENCY,
    /** The IOMMU can refuse instruction fetches (IOMMU_NOEXEC). */
    NOEXEC,
    /** Interrupts are remapped and isolated. */
    INTR_REMAP,
    /** The IOMMU enforces cache coherency for the domain. */
    ENFORCE_CACHE_COHERENCY,
    /** The IOMMU is in a mode where it can defer IOTLB flushes. */
    DEFERRED_FLUSH
}
