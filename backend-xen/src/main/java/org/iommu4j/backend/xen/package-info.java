/**
 * The {@code xen} backend: the driver a Xen domain's kernel runs for DMA, piggybacking on swiotlb while the
 * hypervisor does the isolation, as the seed thread sketched it. xen-swiotlb DMA ops put machine addresses on
 * the bus and bounce what a device cannot reach or what straddles a machine discontinuity; the IOMMU driver
 * fills the hypervisor's IOMMU contexts by hypercall; in Domain-0, pciback's stub holds devices for guests.
 * The hypervisor itself is part of the machine, not of this driver: the backend sees it only through the api's
 * {@link org.iommu4j.api.XenHypercalls}, and does not load on bare metal.
 */
package org.iommu4j.backend.xen;
