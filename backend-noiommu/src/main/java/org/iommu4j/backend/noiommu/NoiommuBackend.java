package org.iommu4j.backend.noiommu;

import java.util.List;
import org.iommu4j.api.Backend;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.ModuleAttribute;

/**
 * The running noiommu module: the {@code vfio-noiommu} VFIO driver and the nommu DMA ops. Turning the
 * opt-in on, at load or later, is logged as unsafe.
 */
final class NoiommuBackend implements Backend {
    private final KernelServices kernel;
    private final NoiommuVfioDriver vfio;
    private final NommuDmaOps dma;
    private final boolean ownsDefaultDma;

    NoiommuBackend(KernelServices kernel) {
        this.kernel = kernel;
        this.vfio = new NoiommuVfioDriver(kernel);
        this.dma = new NommuDmaOps(kernel);
        kernel.parameters().addListener((name, old, now) -> {
            if (name.equals(NoiommuProvider.ENABLE) && now.equals("Y") && !old.equals("Y")) {
                warnUnsafe();
            }
        });
        if (vfio.enabled()) {
            warnUnsafe();
        }
        kernel.vfio().register(vfio);
        boolean owns;
        try {
            kernel.dma().setDefaultOps(dma);
            owns = true;
        } catch (IommuException e) {
            if (e.errno() != Errno.EBUSY) {
                throw e;
            }
            kernel.log().log(LogLevel.INFO, "leaving the DMA API to the module that owns it: " + e.getMessage());
            owns = false;
        }
        this.ownsDefaultDma = owns;
    }

    private void warnUnsafe() {
        kernel.log().log(LogLevel.WARNING, "UNSAFE no-IOMMU mode enabled: devices bound to VFIO get no isolation"
                + " and no DMA translation, and the kernel will be tainted");
    }

    @Override
    public List<ModuleAttribute> attributes() {
        return List.of(ModuleAttribute.readOnly("mode",
                () -> vfio.enabled() ? "unsafe no-IOMMU mode on" : "off"));
    }

    @Override
    public void stop() {
        kernel.vfio().unregister(vfio);
        if (ownsDefaultDma) {
            kernel.dma().clearDefaultOps(dma);
        }
    }
}
