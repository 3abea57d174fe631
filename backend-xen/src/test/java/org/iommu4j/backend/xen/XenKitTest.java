package org.iommu4j.backend.xen;

import java.util.List;
import java.util.Map;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.Vfio;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.tck.BackendClaims;
import org.iommu4j.tck.BackendCompatibilityKit;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;

/**
 * xen through the backend compatibility kit, in a guest: Domain-0's pciback holds the kit's device and the
 * platform gives it to the guest, where the hypervisor translates and isolates it and the DMA API goes through
 * xen-swiotlb.
 */
class XenKitTest extends BackendCompatibilityKit {
    @Override
    protected BackendProvider createProvider() {
        return new XenProvider();
    }

    @Override
    protected List<BackendProvider> dependencies() {
        return List.of(new SwiotlbProvider());
    }

    /** A guest of a fresh platform, given the kit's device, with nothing loaded in it yet. */
    @Override
    protected Host buildHost() {
        XenPlatform platform = XenPlatform.builder().machineMemory(4L << 30)
                .dom0CommandLine("xen-pciback.hide=(06:0d.0)").pciDevice(PciDeviceSpec.of(DEVICE)).build();
        Host dom0 = platform.dom0().host();
        dom0.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"), "class path");
        dom0.modules().insert(new XenProvider(), Map.of(), "class path");
        XenDomain guest = platform.createGuest("kit-guest", 256L << 20, "swiotlb=512");
        platform.attach(DEVICE, guest);
        return guest.host();
    }

    @Override
    protected BackendClaims claims() {
        return BackendClaims.builder().translation().isolation().dmaApi().coherentAllocation().smallPagesOnly()
                .vfioTypes(Vfio.TYPE1_IOMMU, Vfio.TYPE1v2_IOMMU)
                .build();
    }
}
