package org.iommu4j.backend.xen;

import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.ParameterType;

/**
 * The {@code xen} module (depends on {@code swiotlb}): a Xen domain's xen-swiotlb DMA ops and IOMMU driver,
 * and in Domain-0 xen-pciback's stub. It loads only on a host that runs as a Xen domain.
 */
public final class XenProvider implements BackendProvider {
    private static final ModuleInfo INFO = ModuleInfo.builder("xen")
            .inTree(true)
            .version("2.0.0")
            .description("Xen domain DMA driver: xen-swiotlb DMA ops, the IOMMU driver that asks the hypervisor,"
                    + " and in Domain-0 pciback's stub, which holds devices for guests")
            .author("iommu4j")
            .license("GPL v2")
            .depends("swiotlb")
            .parameter(new ParameterSpec("hide", ParameterType.STRING, "", "Domain-0 only: devices pciback holds"
                    + " for guests, in xen-pciback.hide syntax: (DDDD:BB:SS.F)(BB:SS.*)...; xen-pciback.hide= on the"
                    + " kernel command line is read as well", false))
            .parameter(new ParameterSpec("force", ParameterType.BOOL, "N", "bounce every mapping; swiotlb=force on"
                    + " the kernel command line does too", false))
            .build();

    @Override
    public ModuleInfo info() {
        return INFO;
    }

    @Override
    public Backend start(KernelServices kernel) {
        return new XenBackend(kernel);
    }
}
