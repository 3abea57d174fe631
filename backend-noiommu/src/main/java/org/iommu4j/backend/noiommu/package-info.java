/**
 * The {@code noiommu} backend: VFIO on hardware without an IOMMU, as the seed thread asked for it and as the
 * kernel's {@code enable_unsafe_noiommu_mode} does it. Fake groups for devices bound to VFIO, no translation
 * (iova == physical address), no isolation; opt-in, CAP_SYS_RAWIO at every access point, and a tainted kernel.
 */
package org.iommu4j.backend.noiommu;
