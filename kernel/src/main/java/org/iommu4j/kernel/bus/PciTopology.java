package org.iommu4j.kernel.bus;

import java.util.List;
import org.iommu4j.api.PciAcs;
import org.iommu4j.api.PciBridge;

/**
 * Where a PCI device sits in the tree and what the kernel's grouping reads from it
 * ({@code drivers/pci/search.c}, {@code drivers/pci/pci.c}, {@code drivers/pci/quirks.c}, Linux v6.12).
 *
 * @param parent the bridge above the device, or null for a device on a root bus
 * @param multifunction the header's multi-function bit
 * @param acsCapability the ACS bits the function implements, 0 for none
 * @param acsControl the ACS bits enabled
 * @param dmaAliasDevfns devfns on the device's bus whose requester ID it also uses (quirks,
 *     {@code pci_add_dma_alias}), each 0 to 255
 */
public record PciTopology(PciBridge parent, boolean multifunction, int acsCapability, int acsControl,
        List<Integer> dmaAliasDevfns) {

    /** A device on a root bus: single function, no ACS, no aliases. */
    public static final PciTopology ROOT_BUS = new PciTopology(null, false, 0, 0, List.of());

    /**
     * Checks the fields.
     *
     * @param parent see the record description
     * @param multifunction see the record description
     * @param acsCapability see the record description
     * @param acsControl see the record description
     * @param dmaAliasDevfns see the record description
     */
    public PciTopology {
        dmaAliasDevfns = List.copyOf(dmaAliasDevfns);
        for (int devfn : dmaAliasDevfns) {
            if (devfn < 0 || devfn > 255) {
                throw new IllegalArgumentException("DMA alias devfn " + devfn + " is invalid: expected 0 to 255");
            }
        }
    }

    PciTopology withParent(PciBridge bridge) {
        return new PciTopology(bridge, multifunction, acsCapability, acsControl, dmaAliasDevfns);
    }

    PciTopology asMultifunction(int acs) {
        return new PciTopology(parent, true, acs, acs & PciAcs.ENABLED_AT_BOOT, dmaAliasDevfns);
    }

    PciTopology withAlias(int devfn) {
        List<Integer> more = new java.util.ArrayList<>(dmaAliasDevfns);
        more.add(devfn);
        return new PciTopology(parent, multifunction, acsCapability, acsControl, more);
    }
}
