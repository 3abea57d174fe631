package org.iommu4j.kernel.bus;

import java.util.Optional;
import org.iommu4j.api.BusType;
import org.iommu4j.api.PciAddress;

/** A device on the platform bus: a name and DMA limits, no configuration space. */
public final class PlatformDevice extends BusDevice {

    PlatformDevice(PlatformDeviceSpec spec, DmaPort port) {
        super(spec.name(), BusType.PLATFORM, port, spec.dmaMask(), spec.dmaMask(), 0, 0, 0xffffffffL);
    }

    @Override
    public Optional<PciAddress> pciAddress() {
        return Optional.empty();
    }

    @Override
    public int vendorId() {
        return 0;
    }

    @Override
    public int deviceId() {
        return 0;
    }

    @Override
    public int classCode() {
        return 0;
    }
}
