package org.iommu4j.api;

/**
 * What kind of bridge a {@link PciBridge} is, as the kernel tells them apart ({@code pci_pcie_type}, or not
 * PCIe at all). It decides how the bridge aliases its devices' requester IDs
 * ({@code drivers/pci/search.c pci_for_each_dma_alias}, Linux v6.12) and whether ACS can apply to it
 * ({@code drivers/pci/pci.c pci_acs_enabled}).
 *
 * @since 1.2
 */
public enum PciBridgeType {
    /** A PCIe root port ({@code PCI_EXP_TYPE_ROOT_PORT}): no aliasing; ACS applies. */
    ROOT_PORT(true),
    /** The upstream port of a PCIe switch ({@code PCI_EXP_TYPE_UPSTREAM}): no aliasing; ACS not required. */
    SWITCH_UPSTREAM_PORT(true),
    /** A downstream port of a PCIe switch ({@code PCI_EXP_TYPE_DOWNSTREAM}): no aliasing; ACS applies. */
    SWITCH_DOWNSTREAM_PORT(true),
    /**
     * A PCIe-to-PCI/PCI-X bridge ({@code PCI_EXP_TYPE_PCI_BRIDGE}): it takes ownership of its devices'
     * transactions with the requester ID (secondary bus, devfn 00.0), so every device below it aliases to that
     * ID; ACS never applies.
     */
    PCIE_TO_PCI_BRIDGE(true),
    /**
     * A conventional PCI-to-PCI bridge (not PCIe): the devices below it share a bus and reach each other, and
     * their requests reach the IOMMU with the bridge's own requester ID.
     */
    PCI_BRIDGE(false);

    private final boolean pcie;

    PciBridgeType(boolean pcie) {
        this.pcie = pcie;
    }

    /** @return whether the bridge is a PCI Express function ({@code pci_is_pcie}) */
    public boolean isPcie() {
        return pcie;
    }

    /** @return whether the bridge's secondary side is conventional PCI, so the devices below are not PCIe */
    public boolean conventionalBelow() {
        return this == PCIE_TO_PCI_BRIDGE || this == PCI_BRIDGE;
    }
}
