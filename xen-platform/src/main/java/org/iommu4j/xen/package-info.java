/**
 * The Xen hypervisor as part of the simulated machine ({@link org.iommu4j.xen.XenPlatform}): machine memory,
 * the physical PCI devices, the hypervisor's IOMMU, domains with their p2m, device assignment, and the
 * hypercalls a guest's kernel makes ({@link org.iommu4j.api.XenHypercalls}). Domain-0 and every guest run
 * kernels of their own, each a {@link org.iommu4j.kernel.Host}. The guest's drivers (backend {@code xen})
 * never see this package, only the api.
 */
package org.iommu4j.xen;
