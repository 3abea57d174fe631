package org.iommu4j.examples.fslnone;

import org.iommu4j.api.BackendProvider;
import org.iommu4j.tck.BackendClaims;
import org.iommu4j.tck.BackendCompatibilityKit;

/**
 * fsl-none through the backend compatibility kit, as its out-of-tree author would run it: groups for every
 * device, identity domains, no translation, no isolation, and no VFIO type (so no opt-in is needed).
 */
class FslNoneKitTest extends BackendCompatibilityKit {
    @Override
    protected BackendProvider createProvider() {
        return new FslNoneProvider();
    }

    @Override
    protected BackendClaims claims() {
        return BackendClaims.builder().identityDomains().hotPlug().dmaApi().coherentAllocation().build();
    }
}
