package org.iommu4j.api;

/**
 * The hypercalls a Xen guest's kernel makes for DMA, as its xen-swiotlb DMA ops and its IOMMU driver need
 * them: the pseudo-physical-to-machine table (p2m) and its inverse (m2p), {@code XENMEM_exchange} for a
 * machine-contiguous run (behind {@code xen_create_contiguous_region}, Linux v6.12
 * {@code arch/x86/xen/mmu_pv.c}), and the hypervisor's IOMMU: contexts the guest fills with machine frames it
 * owns and attaches its devices to. The hypervisor checks every frame against its owner, so a guest can reach
 * only its own memory. Reached through {@link KernelServices#xen()}, which is empty on bare metal.
 *
 * <p>Machine frames are 4 KiB ({@link PhysicalMemory#PAGE_SIZE}); bus addresses the hypervisor's IOMMU sees
 * are bus frame numbers (bfn) shifted by {@link PhysicalMemory#PAGE_SHIFT}.
 *
 * @since 1.2
 */
public interface XenHypercalls {

    /** @return this domain's id; Domain-0, the initial domain, is 0 */
    int domainId();

    /** @return whether this is the initial domain (Domain-0), the kernel's {@code xen_initial_domain()} */
    default boolean isInitialDomain() {
        return domainId() == 0;
    }

    /**
     * The p2m: the machine frame behind a pseudo-physical frame of this domain.
     *
     * @param pfn a pseudo-physical frame number
     * @return its machine frame number
     * @throws IommuException {@link Errno#EINVAL} for a frame beyond the domain's memory
     */
    long pfnToMfn(long pfn);

    /**
     * The m2p: the pseudo-physical frame of this domain a machine frame backs.
     *
     * @param mfn a machine frame number
     * @return its pfn, or -1 if this domain does not own the frame
     */
    long mfnToPfn(long mfn);

    /**
     * {@code XENMEM_exchange}: gives the domain 2^order machine-contiguous frames, aligned to their size and
     * below {@code 2^addressBits} bytes, for its pages from {@code firstPfn}, and takes the old frames back.
     * The pages' contents are not kept.
     *
     * @param firstPfn first page, aligned to 2^order
     * @param order log2 of the page count, 0 to 9
     * @param addressBits the run must lie below 2^addressBits bytes
     * @return the first machine frame of the run
     * @throws IommuException {@link Errno#ENOMEM} when no such run is free (nothing changes),
     *     {@link Errno#EINVAL} for a misaligned or out-of-range request
     */
    long exchange(long firstPfn, int order, int addressBits);

    /**
     * Allocates a context in the hypervisor's IOMMU for this domain: empty, attached to no device.
     *
     * @return the context
     */
    IommuContext createIommuContext();

    /**
     * Marks a device of the initial domain as assignable to guests (pciback has seized it) or as Domain-0's
     * own again. An assignable device is quarantined: its DMA reaches no domain's memory.
     *
     * @param device a PCI device of this domain
     * @param assignable true when pciback seizes it, false when pciback lets it go
     * @throws IommuException {@link Errno#EPERM} when this is not the initial domain; {@link Errno#EBUSY}
     *     when the device is assigned to a guest (it cannot become Domain-0's again until the guest lets it go)
     */
    void setAssignable(Device device, boolean assignable);

    /**
     * @param device a PCI device this domain sees
     * @return whether the hypervisor has the device assigned to this domain (an assignable device is
     *     assigned to no domain)
     */
    boolean owns(Device device);

    /**
     * A context of the hypervisor's IOMMU: bus frames to machine frames, for the devices attached to it. A
     * device attached to no context reaches nothing. Every frame mapped must be one the domain owns, and is
     * checked again on every access, so a frame the domain gave back is not reached.
     *
     * @since 1.2
     */
    interface IommuContext {

        /**
         * Maps {@code count} bus frames from {@code bfn} to the machine frames from {@code mfn}. A bus frame
         * already mapped to the same machine frame gains a reference (the DMA API maps a page once per buffer
         * in it); to another frame it is {@link Errno#EEXIST}. Nothing is mapped unless everything is.
         *
         * @param bfn first bus frame
         * @param mfn first machine frame
         * @param count frames, at least 1
         * @param prot {@link IommuProt} bits
         * @throws IommuException {@link Errno#EPERM} for a machine frame the domain does not own
         */
        void map(long bfn, long mfn, long count, int prot);

        /**
         * Drops one reference to each of {@code count} bus frames from {@code bfn}; a frame with none left is
         * unmapped. Frames not mapped are skipped.
         *
         * @param bfn first bus frame
         * @param count frames
         * @return how many frames were unmapped
         */
        long unmap(long bfn, long count);

        /**
         * @param busAddress a bus address
         * @param access {@link IommuProt#READ}, {@link IommuProt#WRITE}, or 0
         * @return the machine address, or {@link IommuDomain#FAULT_NOT_MAPPED} / {@link IommuDomain#FAULT_PERMISSION}
         */
        long translate(long busAddress, int access);

        /**
         * Points a device's entry in the hypervisor's IOMMU at this context.
         *
         * @param device a PCI device
         * @throws IommuException {@link Errno#EPERM} when the device is not assigned to this domain
         */
        void attach(Device device);

        /**
         * Points the device at no context, if it pointed at this one: its DMA reaches nothing.
         *
         * @param device a PCI device
         */
        void detach(Device device);

        /** Frees the context; devices still attached reach nothing. */
        void destroy();
    }
}
