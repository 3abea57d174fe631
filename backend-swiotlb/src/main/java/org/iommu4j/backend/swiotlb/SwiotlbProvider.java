package org.iommu4j.backend.swiotlb;

import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.ParameterType;

/** The {@code swiotlb} module. Constructing it does nothing. */
public final class SwiotlbProvider implements BackendProvider {
    /** The opt-in for the SWIOTLB-IOMMU (VFIO without isolation). */
    public static final String ENABLE_IOMMU = "enable_unsafe_swiotlb_iommu";

    private static final ModuleInfo INFO = ModuleInfo.builder("swiotlb")
            .inTree(true)
            .version("1.0.0")
            .description("Software IO TLB: DMA through bounce buffers in low memory, and a SWIOTLB-IOMMU for VFIO")
            .author("iommu4j")
            .license("GPL v2")
            .parameter(new ParameterSpec("nslabs", ParameterType.ULONG, "0", "slots of 2 KiB in the default pool,"
                    + " aligned up to 128; 0 takes swiotlb=<nslabs> from the command line, else 32768 (64 MiB)", false))
            .parameter(new ParameterSpec("nareas", ParameterType.UINT, "0", "areas, each with its own lock, rounded up"
                    + " to a power of two; 0 takes swiotlb=<nslabs>,<nareas> (where 0 means 1), else the CPU count", false))
            .parameter(new ParameterSpec("force", ParameterType.BOOL, "N", "bounce every mapping (swiotlb=force)",
                    false))
            .parameter(new ParameterSpec("dynamic", ParameterType.BOOL, "Y", "CONFIG_SWIOTLB_DYNAMIC (y in most"
                    + " distributions' v6.12 kernels): when every pool is full, bounce through a transient pool and"
                    + " add a pool; N keeps the default pool alone, so a full pool refuses the mapping", false))
            .parameter(new ParameterSpec("limit", ParameterType.ULONG, "0x100000000", "the pool lies below this"
                    + " physical address", false))
            .parameter(new ParameterSpec("hide", ParameterType.STRING, "", "devices assigned to the SWIOTLB-IOMMU,"
                    + " as xen-pciback.hide takes them: (DDDD:BB:SS.F)(BB:SS.*)...", false))
            .parameter(new ParameterSpec(ENABLE_IOMMU, ParameterType.BOOL, "N", "Enable the UNSAFE SWIOTLB-IOMMU:"
                    + " VFIO for assigned devices with no isolation; needs CAP_SYS_RAWIO and taints the kernel",
                    true))
            .build();

    @Override
    public ModuleInfo info() {
        return INFO;
    }

    @Override
    public Backend start(KernelServices kernel) {
        return new SwiotlbBackend(kernel);
    }
}
