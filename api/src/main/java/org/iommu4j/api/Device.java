package org.iommu4j.api;

import java.util.List;
import java.util.Optional;

/**
 * A device on one of the host's buses, as a backend sees it: its identity and the DMA limits the kernel's DMA
 * API honours. The kernel owns devices; a backend never creates one. A device stays the same object from
 * hot-add to hot-remove; after removal {@link #isPresent()} is false and the kernel refuses new work for it.
 */
public interface Device {

    /** @return the device's name on its bus: {@code 0000:06:0d.0} for PCI, for example {@code fsl-dma.0} for platform */
    String name();

    /** @return the bus the device sits on */
    BusType bus();

    /** @return the PCI address, present exactly when {@link #bus()} is PCI */
    Optional<PciAddress> pciAddress();

    /** @return PCI vendor id (0 for platform devices) */
    int vendorId();

    /** @return PCI device id (0 for platform devices) */
    int deviceId();

    /** @return PCI class code, 24 bits (0 for platform devices) */
    int classCode();

    /**
     * The highest bus address the device can put on the bus for streaming DMA, as a mask: {@code 0xffffffff}
     * for a 32-bit device. The kernel's {@code dma_mask}.
     *
     * @return the streaming DMA mask
     */
    long dmaMask();

    /** @return the mask for coherent allocations, the kernel's {@code coherent_dma_mask} */
    long coherentDmaMask();

    /**
     * A limit the bus imposes on top of the mask ({@code bus_dma_limit}), or 0 when there is none.
     *
     * @return the highest reachable bus address, or 0
     */
    long busDmaLimit();

    /**
     * Low address bits the device needs preserved between the original buffer and its bounce buffer
     * ({@code dma_get_min_align_mask}); 0 when it needs none.
     *
     * @return the minimum alignment mask
     */
    long minAlignMask();

    /**
     * The boundary no single DMA segment may cross ({@code dma_get_seg_boundary}): a segment's first and last
     * byte agree in every bit above this mask. Usually {@code 0xffffffff}.
     *
     * @return the segment boundary mask
     */
    long segmentBoundaryMask();

    /**
     * The highest bus address the device can reach, {@code min(dmaMask, busDmaLimit)} with a limit of 0
     * meaning none: the kernel's {@code dma_capable} test is {@code addr + size - 1 <= reachLimit()}. Both are
     * unsigned, as the kernel's {@code min_not_zero} on {@code u64} compares them (before 1.2 a 64-bit mask,
     * {@code -1} as a long, wrongly won over any bus limit).
     *
     * @return the highest reachable bus address
     */
    default long reachLimit() {
        long limit = busDmaLimit();
        long mask = dmaMask();
        // min_not_zero on u64: compared unsigned, so a 64-bit mask does not read as -1 and win
        return limit == 0 || Long.compareUnsigned(mask, limit) <= 0 ? mask : limit;
    }

    /**
     * The bridges above a PCI device, nearest first, up to the one on a root bus; empty for a device on a root
     * bus and for platform devices.
     *
     * @return the parent chain
     * @since 1.2 (empty by default)
     */
    default List<PciBridge> upstreamBridges() {
        return List.of();
    }

    /**
     * @return whether the device is one function of a multi-function device (its header's multi-function bit)
     * @since 1.2 (false by default)
     */
    default boolean isMultifunction() {
        return false;
    }

    /**
     * Whether ACS isolates this function from its peers, the kernel's {@code pci_acs_enabled} with
     * {@link PciAcs#REQUIRED} ({@code drivers/pci/pci.c}, Linux v6.12): false for conventional PCI devices,
     * true for a single-function PCIe endpoint (ACS does not apply to it), and for a function of a
     * multi-function device true only when its ACS capability has the required controls on.
     *
     * @return whether the device is isolated from the other functions of its slot
     * @since 1.2 (false by default)
     */
    default boolean acsIsolates() {
        return false;
    }

    /**
     * The requester IDs the device's DMA may reach the IOMMU with, in the order
     * {@code pci_for_each_dma_alias} visits them: its own, its quirk aliases (functions whose ID it uses,
     * {@code pci_add_dma_alias}), then the IDs bridges above it substitute.
     *
     * @return the aliases, each {@code bus << 8 | devfn}; empty for platform devices
     * @since 1.2 (empty by default)
     */
    default List<Integer> dmaAliases() {
        return List.of();
    }

    /**
     * Whether the kernel distrusts the device because it sits below an external-facing port
     * ({@code pdev->untrusted}): its default domain is a strict DMA domain, and the DMA API bounces its
     * buffers that do not fill whole pages.
     *
     * @return whether the device is untrusted
     * @since 1.2 (false by default)
     */
    default boolean isUntrusted() {
        return false;
    }

    /** @return false once the device has been hot-removed */
    boolean isPresent();
}
