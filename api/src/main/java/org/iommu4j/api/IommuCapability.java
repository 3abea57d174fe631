package org.iommu4j.api;

/** What an IOMMU can do for a device, asked with {@link IommuOps#capable}; the kernel's {@code enum iommu_cap}. */
public enum IommuCapability {
    /** DMA through the IOMMU snoops CPU caches. */
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
