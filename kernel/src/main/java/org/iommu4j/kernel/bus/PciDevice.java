package org.iommu4j.kernel.bus;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.BusType;
import org.iommu4j.api.PciAcs;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciBridge;

/**
 * A PCI device: a {@link BusDevice} with an address, a configuration space and a place in the tree. Its
 * {@link #dmaAliases()}, {@link #acsIsolates()} and {@link #isUntrusted()} are computed once, at hot-add, as
 * the kernel's {@code pci_for_each_dma_alias}, {@code pci_acs_enabled} and {@code set_pcie_untrusted} of Linux
 * v6.12 would answer for it.
 */
public final class PciDevice extends BusDevice {
    private final PciAddress address;
    private final PciConfigSpace config;
    private final int vendorId;
    private final int deviceId;
    private final int classCode;
    private final List<AddressRange> rmrrs;
    private final PciTopology topology;
    private final List<PciBridge> bridges;
    private final List<Integer> aliases;
    private final boolean untrusted;

    PciDevice(PciDeviceSpec spec, DmaPort port) {
        super(spec.address().toString(), BusType.PCI, port, spec.dmaMask(), spec.coherentDmaMask(),
                spec.busDmaLimit(), spec.minAlignMask(), spec.segmentBoundaryMask());
        this.address = spec.address();
        this.config = new PciConfigSpace(spec);
        this.vendorId = spec.vendorId();
        this.deviceId = spec.deviceId();
        this.classCode = spec.classCode();
        this.rmrrs = spec.rmrrs();
        this.topology = spec.topology();
        List<PciBridge> chain = new ArrayList<>();
        for (PciBridge b = topology.parent(); b != null; b = b.parent()) {
            chain.add(b);
        }
        this.bridges = List.copyOf(chain);
        this.untrusted = chain.stream().anyMatch(PciBridge::externalFacing);
        List<Integer> ids = new ArrayList<>();
        ids.add(address.requesterId());
        for (int devfn : topology.dmaAliasDevfns()) {
            ids.add(address.bus() << 8 | devfn);
        }
        for (PciBridge b : chain) {
            switch (b.type()) {
                case ROOT_PORT, SWITCH_UPSTREAM_PORT, SWITCH_DOWNSTREAM_PORT -> {
                }
                case PCIE_TO_PCI_BRIDGE -> ids.add(b.secondaryBus() << 8);
                case PCI_BRIDGE -> ids.add(b.requesterId());
            }
        }
        this.aliases = List.copyOf(ids);
    }

    /** @return where the device sits in the tree */
    public PciTopology topology() {
        return topology;
    }

    @Override
    public List<PciBridge> upstreamBridges() {
        return bridges;
    }

    @Override
    public boolean isMultifunction() {
        return topology.multifunction();
    }

    /** @return whether the device is PCI Express: not below a bridge to conventional PCI */
    public boolean isPcie() {
        return topology.parent() == null || !topology.parent().type().conventionalBelow();
    }

    @Override
    public boolean acsIsolates() {
        if (!isPcie()) {
            return false;
        }
        return !topology.multifunction()
                || PciAcs.flagsEnabled(topology.acsCapability(), topology.acsControl(), PciAcs.REQUIRED);
    }

    @Override
    public List<Integer> dmaAliases() {
        return aliases;
    }

    @Override
    public boolean isUntrusted() {
        return untrusted;
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
