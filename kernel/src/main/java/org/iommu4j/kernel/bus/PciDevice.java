package org.iommu4j.kernel.bus;

import java.util.List;
import java.util.Optional;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.BusType;
import org.iommu4j.api.PciAddress;

/** A PCI device: a {@link BusDevice} with an address and a configuration space. */
public final class PciDevice extends BusDevice {
    private final PciAddress address;
    private final PciConfigSpace config;
    private final int vendorId;
    private final int deviceId;
    private final int classCode;
    private final List<AddressRange> rmrrs;

    PciDevice(PciDeviceSpec spec, DmaPort port) {
        super(spec.address().toString(), BusType.PCI, port, spec.dmaMask(), spec.coherentDmaMask(),
                spec.busDmaLimit(), spec.minAlignMask(), spec.segmentBoundaryMask());
        this.address = spec.address();
        this.config = new PciConfigSpace(spec);
        this.vendorId = spec.vendorId();
        this.deviceId = spec.deviceId();
        this.classCode = spec.classCode();
        this.rmrrs = spec.rmrrs();
    }

    /** @return the RMRRs the firmware reports for the device, see {@link PciDeviceSpec#rmrrs()} (since 1.2) */
    public List<AddressRange> rmrrs() {
        return rmrrs;
    }

    /** @return the device's address */
    public PciAddress address() {
        return address;
    }

    @Override
    public Optional<PciAddress> pciAddress() {
        return Optional.of(address);
    }

    /** @return the device's configuration space, as the hardware implements it */
    public PciConfigSpace config() {
        return config;
    }

    @Override
    public int vendorId() {
        return vendorId;
    }

    @Override
    public int deviceId() {
        return deviceId;
    }

    @Override
    public int classCode() {
        return classCode;
    }
}
