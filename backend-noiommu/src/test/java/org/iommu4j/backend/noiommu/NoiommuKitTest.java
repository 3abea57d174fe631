package org.iommu4j.backend.noiommu;

import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.Vfio;
import org.iommu4j.tck.BackendClaims;
import org.iommu4j.tck.BackendCompatibilityKit;

/** noiommu through the backend compatibility kit: no translation, no isolation, VFIO only with its opt-in. */
class NoiommuKitTest extends BackendCompatibilityKit {
    @Override
    protected BackendProvider createProvider() {
        return new NoiommuProvider();
    }

    @Override
    protected BackendClaims claims() {
        return BackendClaims.builder().dmaApi().coherentAllocation().hotPlug()
                .vfioTypes(Vfio.NOIOMMU_IOMMU).unsafeOptIn(NoiommuProvider.ENABLE).build();
    }
}
