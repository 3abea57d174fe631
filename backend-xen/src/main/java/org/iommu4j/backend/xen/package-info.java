/**
 * The {@code xen} backend: a Xen guest's IOMMU driver that piggybacks on swiotlb while the hypervisor does
 * the isolation, as the seed thread sketched it. It carries a model of the hypervisor: machine memory, domains
 * with their pseudo-physical-to-machine (p2m) tables, device assignment, and IOMMU mappings made by
 * hypercall and validated against the ownership of the machine frames they name.
 *
 * <p>Every PCI device sits behind the hypervisor's IOMMU: a device pciback gave the guest reaches exactly the
 * guest's machine frames; any other is blocked, so its DMA into the guest is an IOMMU fault.
 *
 * <p>The host this backend is loaded into <em>is</em> the guest: its physical memory is the guest's
 * pseudo-physical memory, and devices put machine addresses on the bus.
 */
package org.iommu4j.backend.xen;
