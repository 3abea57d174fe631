package org.iommu4j.api;

/** What an IOMMU can do for a device, asked with {@link IommuOps#capable}; the kernel's {@code enum iommu_cap}. */
public enum IommuCapability {
    /**
     * DMA through the IOMMU context the device can be given snoops CPU caches. VFIO requires it of an
     * isolating IOMMU for every device it takes, as the kernel's {@code __vfio_register_dev} does: binding
     * {@code vfio-pci} to a device whose IOMMU does not report it fails with {@link Errno#EINVAL}. A device the
     * IOMMU keeps in a blocking context (Xen's devices not assigned to the guest) has no context that could
     * snoop, so its IOMMU answers false for it.
     *
     * <p>Since API 1.1 VFIO checks this: an isolating backend written against 1.0, whose
     * {@link IommuOps#capable} answers false for everything, must answer true here for the devices it lets
     * VFIO take.
     */
    CACHE_COHERENCY,
    /** The IOMMU can refuse instruction fetches (IOMMU_NOEXEC). */
    NOEXEC,
    /**
     * Interrupts are remapped and isolated: a device cannot forge another's MSI. Since API 1.2 VFIO type 1 asks
     * it for every device of a joining group and refuses the group (EPERM, "No interrupt remapping support")
     * unless {@code vfio_iommu_type1.allow_unsafe_interrupts=1}: an isolating backend whose devices VFIO should
     * take must answer true here. (Linux v6.12 asks the MSI interrupt domain, {@code iommu_group_has_isolated_msi};
     * the kernel's {@code IOMMU_CAP_INTR_REMAP} was that question until v6.3.)
     */
    INTR_REMAP,
    /** The IOMMU enforces cache coherency for the domain. */
    ENFORCE_CACHE_COHERENCY,
    /** The IOMMU is in a mode where it can defer IOTLB flushes. */
    DEFERRED_FLUSH
}
