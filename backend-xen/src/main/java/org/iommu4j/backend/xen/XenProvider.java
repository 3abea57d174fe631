package org.iommu4j.backend.xen;

import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.ParameterType;

/**
 * The {@code xen} module (depends on {@code swiotlb}). Loaded by name it builds its own hypervisor — dom0 and
 * the guest, the guest's p2m laid out as its parameters say; a test can hand it a hypervisor it built.
 */
public final class XenProvider implements BackendProvider {
    private static final ModuleInfo INFO = ModuleInfo.builder("xen")
            .inTree(true)
            .version("1.0.0")
            .description("Xen guest IOMMU driver: xen-swiotlb DMA and pciback-style assignment; the hypervisor"
                    + " isolates")
            .author("iommu4j")
            .license("GPL v2")
            .depends("swiotlb")
            .parameter(new ParameterSpec("p2m", ParameterType.STRING, "scattered", "how the guest's pages lie in"
                    + " machine memory: scattered or contiguous", false))
            .parameter(new ParameterSpec("p2m_seed", ParameterType.LONG, "1", "seed of the scattered layout", false))
            .parameter(new ParameterSpec("machine_mb", ParameterType.ULONG, "0", "machine memory in MiB; 0 gives"
                    + " twice the guest plus 64 MiB for dom0", false))
            .parameter(new ParameterSpec("hide", ParameterType.STRING, "", "devices given to the guest, in"
                    + " xen-pciback.hide syntax: (DDDD:BB:SS.F)(BB:SS.*)...; xen-pciback.hide= on the kernel command"
                    + " line is read as well", false))
            .parameter(new ParameterSpec("force", ParameterType.BOOL, "N", "bounce every mapping; swiotlb=force on"
                    + " the kernel command line does too", false))
            .build();

    private final XenHypervisor hypervisor;
    private final XenDomain guest;

    /** The provider the loader finds: it builds its hypervisor at start. */
    public XenProvider() {
        this(null, null);
    }

    /**
     * A provider for a hypervisor a test built.
     *
     * @param hypervisor the hypervisor
     * @param guest the domain the host runs as, made with {@link XenHypervisor#createGuest}
     */
    public XenProvider(XenHypervisor hypervisor, XenDomain guest) {
        this.hypervisor = hypervisor;
        this.guest = guest;
    }

    @Override
    public ModuleInfo info() {
        return INFO;
    }

    @Override
    public Backend start(KernelServices kernel) {
        return new XenBackend(kernel, hypervisor, guest);
    }
}
