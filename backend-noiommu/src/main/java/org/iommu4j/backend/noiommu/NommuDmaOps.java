package org.iommu4j.backend.noiommu;

import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;

/**
 * The DMA API without an IOMMU, as the old {@code arch/x86/kernel/pci-nommu.c} did it: the DMA address is the
 * physical address, no state is kept, and a buffer past the device's mask is refused with nommu's message
 * (printed only for masks of 32 bits or more, as it was). Coherent memory is the kernel's dma-direct. That file
 * left the kernel in 5.0; in Linux v6.12 the same job is dma-direct's ({@code kernel/dma/direct.c}), whose
 * overflow is a WARN and a mapping error: this backend keeps the seed thread's nommu form on purpose.
 */
final class NommuDmaOps implements DmaOps {
    private static final long MASK_32 = 0xffffffffL;
    private final KernelServices kernel;

    NommuDmaOps(KernelServices kernel) {
        this.kernel = kernel;
    }

    @Override
    public long map(Device device, long phys, long size, DmaDirection direction) {
        long mask = device.dmaMask();
        if (Long.compareUnsigned(phys + size - 1, mask) > 0) {
            String message = String.format("nommu_map_single: overflow %x+%d of device mask %x", phys, size, mask);
            if (Long.compareUnsigned(mask, MASK_32) >= 0) {
                kernel.log().log(LogLevel.ERR, message);
            }
            throw new DmaMappingException(Errno.EIO, message);
        }
        return phys;
    }

    @Override
    public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
    }

    @Override
    public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
    }

    @Override
    public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
    }

    @Override
    public CoherentBuffer allocateCoherent(Device device, long size) {
        return kernel.dma().directOps().allocateCoherent(device, size);
    }

    @Override
    public void freeCoherent(Device device, CoherentBuffer buffer) {
        kernel.dma().directOps().freeCoherent(device, buffer);
    }
}
