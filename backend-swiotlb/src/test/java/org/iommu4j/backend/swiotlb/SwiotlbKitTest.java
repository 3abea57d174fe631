package org.iommu4j.backend.swiotlb;

import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.Vfio;
import org.iommu4j.tck.BackendClaims;
import org.iommu4j.tck.BackendCompatibilityKit;

/**
 * swiotlb through the backend compatibility kit: the DMA API bounces, and its SWIOTLB-IOMMU gives VFIO the devices
 * it is handed ({@code hide}) without isolation, only with its opt-in.
 */
class SwiotlbKitTest extends BackendCompatibilityKit {
    @Override
    protected BackendProvider createProvider() {
        return new SwiotlbProvider();
    }

    @Override
    protected BackendClaims claims() {
        return BackendClaims.builder().dmaApi().bounceBuffering().coherentAllocation()
                .parameter("hide", "(" + DEVICE + ")")
                .vfioTypes(Vfio.SWIOTLB_IOMMU).unsafeOptIn(SwiotlbProvider.ENABLE_IOMMU)
                .build();
    }
}
