package org.iommu4j.api;

/**
 * A bridge above a PCI device: a root port, a switch port, a PCIe-to-PCI bridge or a conventional PCI bridge,
 * with its own upstream bridge. {@link Device#upstreamBridges()} lists a device's bridges nearest first; the
 * iommu core's {@link IommuCore#pciDeviceGroup} reads them to group devices as the kernel does.
 *
 * @param address the bridge's own address, on its parent's secondary bus (or a root bus)
 * @param type what kind of bridge it is
 * @param secondaryBus the bus number below it
 * @param acsCapability the ACS bits it implements ({@link PciAcs}), 0 for no ACS capability
 * @param acsControl the ACS bits enabled
 * @param externalFacing whether it is a port users can plug devices into (Thunderbolt, hot-plug slots): the
 *     kernel treats every device below it as untrusted ({@code set_pcie_untrusted})
 * @param parent the bridge above it, or null when it sits on a root bus
 * @since 1.2
 */
public record PciBridge(PciAddress address, PciBridgeType type, int secondaryBus, int acsCapability,
        int acsControl, boolean externalFacing, PciBridge parent) {

    /**
     * Checks the fields.
     *
     * @param address see the record description
     * @param type see the record description
     * @param secondaryBus see the record description
     * @param acsCapability see the record description
     * @param acsControl see the record description
     * @param externalFacing see the record description
     * @param parent see the record description
     * @throws IllegalArgumentException naming the field that is wrong
     */
    public PciBridge {
        if (address == null || type == null) {
            throw new IllegalArgumentException("a PCI bridge needs an address and a type");
        }
        if (secondaryBus < 1 || secondaryBus > 255) {
            throw new IllegalArgumentException("secondary bus " + secondaryBus + " of bridge " + address
                    + " is invalid: expected 1 to 255");
        }
        if (parent != null && (parent.secondaryBus() != address.bus()
                || parent.address().domain() != address.domain())) {
            throw new IllegalArgumentException(String.format("bridge %s is not on the secondary bus %02x of its"
                    + " parent %s", address, parent.secondaryBus(), parent.address()));
        }
    }

    /**
     * @param address the bridge's address, for example {@code 0000:00:1c.0}
     * @param type its type
     * @param secondaryBus the bus below it
     * @return a bridge on a root bus, without ACS, not external-facing
     */
    public static PciBridge of(String address, PciBridgeType type, int secondaryBus) {
        return new PciBridge(PciAddress.parse(address), type, secondaryBus, 0, 0, false, null);
    }

    /**
     * @param address the bridge's address, on this bridge's secondary bus
     * @param type its type
     * @param bus the bus below it
     * @return a bridge below this one, without ACS
     */
    public PciBridge child(String address, PciBridgeType type, int bus) {
        return new PciBridge(PciAddress.parse(address), type, bus, 0, 0, false, this);
    }

    /**
     * @param capability the ACS bits implemented; the kernel enables {@link PciAcs#ENABLED_AT_BOOT} of them
     * @return a copy with an ACS capability
     */
    public PciBridge withAcs(int capability) {
        return new PciBridge(address, type, secondaryBus, capability, capability & PciAcs.ENABLED_AT_BOOT,
                externalFacing, parent);
    }

    /** @return a copy marked external-facing */
    public PciBridge asExternalFacing() {
        return new PciBridge(address, type, secondaryBus, acsCapability, acsControl, true, parent);
    }

    /**
     * The kernel's {@code pci_acs_enabled} for a bridge: true for a switch upstream port (ACS does not apply to
     * a single-function one), the ACS test for root and downstream ports, false for bridges to conventional PCI.
     *
     * @param wanted the bits asked for
     * @return whether the bridge isolates its devices from peer-to-peer DMA
     */
    public boolean acsEnabled(int wanted) {
        return switch (type) {
            case ROOT_PORT, SWITCH_DOWNSTREAM_PORT -> PciAcs.flagsEnabled(acsCapability, acsControl, wanted);
            case SWITCH_UPSTREAM_PORT -> true;
            case PCIE_TO_PCI_BRIDGE, PCI_BRIDGE -> false;
        };
    }

    /** @return the bridge's requester ID, bus number and devfn ({@code pci_dev_id}) */
    public int requesterId() {
        return address.requesterId();
    }
}
