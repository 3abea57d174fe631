package org.iommu4j.kernel.bus;

import java.util.ArrayList;
import java.util.List;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciBridge;

/**
 * What a PCI device on a simulated host looks like. Defaults describe an Intel e1000 NIC with 64-bit DMA,
 * bound to no driver.
 *
 * @param address where it sits
 * @param vendorId PCI vendor id
 * @param deviceId PCI device id
 * @param classCode 24-bit class code
 * @param dmaMask streaming DMA mask
 * @param coherentDmaMask coherent DMA mask
 * @param busDmaLimit bus limit, 0 for none
 * @param minAlignMask low address bits a bounce buffer must preserve
 * @param segmentBoundaryMask boundary a DMA segment must not cross
 * @param driver a stock driver to bind at boot (a host driver that is not VFIO), or null
 * @param bar0Size size of BAR 0 in bytes, a power of two of at least 16, or 0 for none
 * @param rmrrs the ACPI DMAR table's Reserved Memory Region Reporting entries for the device: memory the
 *     firmware keeps DMAing to (a USB controller's legacy emulation, a GPU's stolen memory), which the IOMMU
 *     identity-maps and VFIO type 1 keeps out of the container's valid IOVA ranges; page-aligned, not empty
 *     (since 1.2)
 * @param topology its parent bridge, functions, ACS and DMA aliases (since 1.2 of the model); null means
 *     {@link PciTopology#ROOT_BUS}
 */
public record PciDeviceSpec(PciAddress address, int vendorId, int deviceId, int classCode, long dmaMask,
        long coherentDmaMask, long busDmaLimit, long minAlignMask, long segmentBoundaryMask, String driver,
        int bar0Size, List<AddressRange> rmrrs, PciTopology topology) {

    /**
     * Checks the fields.
     *
     * @param address see the record description
     * @param vendorId see the record description
     * @param deviceId see the record description
     * @param classCode see the record description
     * @param dmaMask see the record description
     * @param coherentDmaMask see the record description
     * @param busDmaLimit see the record description
     * @param minAlignMask see the record description
     * @param segmentBoundaryMask see the record description
     * @param driver see the record description
     * @param bar0Size see the record description
     * @param rmrrs see the record description
     * @param topology see the record description
     */
    public PciDeviceSpec {
        if (topology == null) {
            topology = PciTopology.ROOT_BUS;
        }
        if (topology.parent() != null && (topology.parent().secondaryBus() != address.bus()
                || topology.parent().address().domain() != address.domain())) {
            throw new IllegalArgumentException(String.format("%s is not on the secondary bus %02x of its parent"
                    + " bridge %s", address, topology.parent().secondaryBus(), topology.parent().address()));
        }
        if (address == null) {
            throw new IllegalArgumentException("a PCI device needs an address (" + PciAddress.FORM + ")");
        }
        if ((vendorId & ~0xffff) != 0 || (deviceId & ~0xffff) != 0 || (classCode & ~0xffffff) != 0) {
            throw new IllegalArgumentException("PCI ids of " + address + " are out of range: vendor and device"
                    + " are 16 bits, class 24 bits");
        }
        if (bar0Size != 0 && (bar0Size < 16 || Integer.bitCount(bar0Size) != 1)) {
            throw new IllegalArgumentException("BAR 0 size " + bar0Size + " of " + address
                    + " is invalid: expected 0 or a power of two of at least 16");
        }
        rmrrs = List.copyOf(rmrrs);
        for (AddressRange r : rmrrs) {
            if (r.isEmpty() || ((r.start() | r.size()) & 0xfff) != 0) {
                throw new IllegalArgumentException("RMRR " + r + " of " + address
                        + " is invalid: expected a page-aligned, non-empty range");
            }
        }
    }

    /**
     * A copy with one more RMRR, as an ACPI DMAR table reports it for the device (since 1.2).
     *
     * @param start the first byte, page-aligned
     * @param size bytes, page-aligned, not 0
     * @return the copy
     */
    public PciDeviceSpec withRmrr(long start, long size) {
        List<AddressRange> more = new ArrayList<>(rmrrs);
        more.add(AddressRange.of("RMRR", start, size));
        return new PciDeviceSpec(address, vendorId, deviceId, classCode, dmaMask, coherentDmaMask, busDmaLimit,
                minAlignMask, segmentBoundaryMask, driver, bar0Size, more, topology);
    }

    /**
     * @param address for example {@code 0000:06:0d.0}
     * @return an e1000 at that address, 64-bit DMA, unbound
     */
    public static PciDeviceSpec of(String address) {
        return new PciDeviceSpec(PciAddress.parse(address), 0x8086, 0x100e, 0x020000, -1L, -1L, 0, 0,
                0xffffffffL, null, 0x20000, List.of(), PciTopology.ROOT_BUS);
    }

    /**
     * @param vendor vendor id
     * @param device device id
     * @param pciClass class code
     * @return a copy with these ids
     */
    public PciDeviceSpec withIds(int vendor, int device, int pciClass) {
        return new PciDeviceSpec(address, vendor, device, pciClass, dmaMask, coherentDmaMask, busDmaLimit,
                minAlignMask, segmentBoundaryMask, driver, bar0Size, rmrrs, topology);
    }

    /**
     * @param mask streaming and coherent DMA mask, for example {@code DmaMasks.bits(32)}
     * @return a copy with that mask
     */
    public PciDeviceSpec withDmaMask(long mask) {
        return new PciDeviceSpec(address, vendorId, deviceId, classCode, mask, mask, busDmaLimit, minAlignMask,
                segmentBoundaryMask, driver, bar0Size, rmrrs, topology);
    }

    /**
     * @param mask the minimum alignment mask
     * @return a copy with it
     */
    public PciDeviceSpec withMinAlignMask(long mask) {
        return new PciDeviceSpec(address, vendorId, deviceId, classCode, dmaMask, coherentDmaMask, busDmaLimit,
                mask, segmentBoundaryMask, driver, bar0Size, rmrrs, topology);
    }

    /**
     * @param mask the segment boundary mask
     * @return a copy with it
     */
    public PciDeviceSpec withSegmentBoundaryMask(long mask) {
        return new PciDeviceSpec(address, vendorId, deviceId, classCode, dmaMask, coherentDmaMask, busDmaLimit,
                minAlignMask, mask, driver, bar0Size, rmrrs, topology);
    }

    /**
     * @param limit the bus DMA limit, 0 for none
     * @return a copy with it
     */
    public PciDeviceSpec withBusDmaLimit(long limit) {
        return new PciDeviceSpec(address, vendorId, deviceId, classCode, dmaMask, coherentDmaMask, limit,
                minAlignMask, segmentBoundaryMask, driver, bar0Size, rmrrs, topology);
    }

    /**
     * @param name a host driver (for example {@code e1000}) bound at boot, or null
     * @return a copy with it
     */
    public PciDeviceSpec withDriver(String name) {
        return new PciDeviceSpec(address, vendorId, deviceId, classCode, dmaMask, coherentDmaMask, busDmaLimit,
                minAlignMask, segmentBoundaryMask, name, bar0Size, rmrrs, topology);
    }

    /**
     * @param bridge the bridge above the device; the device's bus must be the bridge's secondary bus
     * @return a copy below that bridge
     */
    public PciDeviceSpec below(PciBridge bridge) {
        return withTopology(topology.withParent(bridge));
    }

    /**
     * @param acsCapability the ACS bits the function implements ({@link org.iommu4j.api.PciAcs}), 0 for none;
     *     the kernel enables SV, RR, CR and UF of them at boot
     * @return a copy that is one function of a multi-function device
     */
    public PciDeviceSpec multifunction(int acsCapability) {
        return withTopology(topology.asMultifunction(acsCapability));
    }

    /**
     * A quirk: the device also issues DMA with the requester ID of another function on its bus, as the kernel's
     * {@code pci_add_dma_alias} records for some Ricoh and Marvell parts.
     *
     * @param devfn the alias's device and function, {@code device << 3 | function}
     * @return a copy with the alias
     */
    public PciDeviceSpec withDmaAlias(int devfn) {
        return withTopology(topology.withAlias(devfn));
    }

    private PciDeviceSpec withTopology(PciTopology t) {
        return new PciDeviceSpec(address, vendorId, deviceId, classCode, dmaMask, coherentDmaMask, busDmaLimit,
                minAlignMask, segmentBoundaryMask, driver, bar0Size, rmrrs, t);
    }
}
