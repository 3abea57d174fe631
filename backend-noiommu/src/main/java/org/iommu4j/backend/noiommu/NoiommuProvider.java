package org.iommu4j.backend.noiommu;

import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.ParameterType;

/** The {@code noiommu} module: VFIO without an IOMMU. Constructing it does nothing. */
public final class NoiommuProvider implements BackendProvider {
    /**
     * The opt-in parameter, as the kernel names it. The kernel's is the vfio module's
     * ({@code vfio.enable_unsafe_noiommu_mode=1} on the command line), which turns the mode on here too;
     * {@code noiommu.enable_unsafe_noiommu_mode} is this module's alias of it, writable at run time.
     */
    public static final String ENABLE = "enable_unsafe_noiommu_mode";
    /** Refuse VFIO_IOMMU_MAP_DMA as the kernel does (ENOTTY) instead of the seed's validated no-op map. */
    public static final String KERNEL_FAITHFUL = "kernel_faithful_map";

    private static final ModuleInfo INFO = ModuleInfo.builder("noiommu")
            .inTree(true)
            .version("1.0.0")
            .description("VFIO for hardware without an IOMMU: fake groups, iova == phys, no isolation (UNSAFE)")
            .author("iommu4j")
            .license("GPL v2")
            .parameter(new ParameterSpec(ENABLE, ParameterType.BOOL, "N", "Enable UNSAFE no-IOMMU mode. It gives"
                    + " no device isolation, no DMA translation and no protection of the host kernel, cannot be used"
                    + " to assign devices to virtual machines, needs CAP_SYS_RAWIO and taints the kernel. If you do"
                    + " not know what it is for, leave it off.", true))
            .parameter(new ParameterSpec(KERNEL_FAITHFUL, ParameterType.BOOL, "N", "Refuse VFIO_IOMMU_MAP_DMA with"
                    + " ENOTTY as the kernel's no-IOMMU container does, instead of validating iova == phys", true))
            .build();

    @Override
    public ModuleInfo info() {
        return INFO;
    }

    @Override
    public Backend start(KernelServices kernel) {
        return new NoiommuBackend(kernel);
    }
}
