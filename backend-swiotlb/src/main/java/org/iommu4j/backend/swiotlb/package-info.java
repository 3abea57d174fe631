/**
 * The {@code swiotlb} backend: the kernel's software IO TLB ({@code kernel/dma/swiotlb.c}, Linux v6.12, dynamic
 * pools included) as a bounce pool in low memory that the DMA API falls back to for devices that cannot reach a
 * buffer, and the seed thread's generic SWIOTLB-IOMMU driver (not in any kernel), which lets VFIO work on top of
 * it for devices assigned by B:D.F.
 */
package org.iommu4j.backend.swiotlb;
