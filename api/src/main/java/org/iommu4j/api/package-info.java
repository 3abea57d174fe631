/**
 * The stable contract of iommu4j: the interfaces a backend implements ({@link org.iommu4j.api.IommuOps},
 * {@link org.iommu4j.api.DmaOps}, {@link org.iommu4j.api.VfioIommuDriver}), the services the simulated kernel
 * hands it ({@link org.iommu4j.api.KernelServices}), the provider the loader discovers
 * ({@link org.iommu4j.api.BackendProvider}), and the values and errors they share.
 *
 * <p>This package depends on nothing but the JDK. New capabilities arrive as default methods, so a backend
 * written against an older minor version keeps compiling and loading; see {@link org.iommu4j.api.ApiVersion}.
 *
 * <p>Addresses are {@code long}s: a <em>physical</em> address is what the CPU of the simulated host uses, a
 * <em>DMA</em> (bus) address or <em>iova</em> is what a device puts on the bus. Page size is
 * {@value org.iommu4j.api.PhysicalMemory#PAGE_SIZE} bytes throughout.
 */
package org.iommu4j.api;
