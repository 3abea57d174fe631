package org.iommu4j.cli;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciBridge;
import org.iommu4j.cli.ScenarioFile.BridgeSpec;
import org.iommu4j.cli.ScenarioFile.DeviceSpec;
import org.iommu4j.cli.ScenarioFile.HostSpec;
import org.iommu4j.cli.ScenarioFile.RmrrSpec;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.bus.DmaMasks;

/**
 * The PCI topology of a scenario's host: its {@code bridges} and what its devices say about where they sit
 * ({@code below}, {@code multifunction}, {@code acs}, {@code dmaAliases}, {@code rmrrs}). {@link #check} finds
 * every mistake before anything runs, at its JSON path; {@link #bridges} and {@link #spec} then build the
 * kernel's types, which would otherwise refuse the same mistakes with an IllegalArgumentException.
 */
final class Topology {
    private static final long PAGE = 4096;

    private Topology() {
    }

    /**
     * Checks the bridges of a host.
     *
     * @param h the host
     * @return the bridges by address, in order
     * @throws BadInput at the first mistake
     */
    static Map<PciAddress, BridgeSpec> checkBridges(HostSpec h) {
        Map<PciAddress, BridgeSpec> out = new LinkedHashMap<>();
        if (h == null || h.bridges() == null) {
            return out;
        }
        if (h.devices() == null) {
            throw new BadInput("host.bridges", "bridges need \"devices\": the embedded host's devices have a"
                    + " topology of their own");
        }
        List<BridgeSpec> bs = h.bridges();
        for (int i = 0; i < bs.size(); i++) {
            BridgeSpec b = bs.get(i);
            String at = "host.bridges[" + i + "]";
            if (b.secondaryBus() < 1 || b.secondaryBus() > 255) {
                throw new BadInput(at + ".secondaryBus", b.secondaryBus() + " is out of range: expected 1 to 255");
            }
            if (out.containsKey(b.bdf())) {
                throw new BadInput(at + ".bdf", b.bdf() + " is on the host twice: a PCI address is unique");
            }
            for (BridgeSpec o : out.values()) {
                if (o.bdf().domain() == b.bdf().domain() && o.secondaryBus().equals(b.secondaryBus())) {
                    throw new BadInput(at + ".secondaryBus", String.format("bus %02x is already below %s: a"
                            + " secondary bus belongs to one bridge", b.secondaryBus(), o.bdf()));
                }
            }
            if (b.parent() != null) {
                BridgeSpec p = out.get(b.parent());
                if (p == null) {
                    throw new BadInput(at + ".parent", b.parent() + " is not a bridge listed before this one:"
                            + " expected one of " + (out.isEmpty() ? "none (list the parent first)" : out.keySet()));
                }
                onBus(at + ".bdf", b.bdf(), p);
            }
            out.put(b.bdf(), b);
        }
        return out;
    }

    /**
     * Checks what a device says about its place in the topology.
     *
     * @param at the device's JSON path
     * @param d the device
     * @param bridges the host's bridges
     * @throws BadInput at the first mistake
     */
    static void checkDevice(String at, DeviceSpec d, Map<PciAddress, BridgeSpec> bridges) {
        if (bridges.containsKey(d.bdf())) {
            throw new BadInput(at + ".bdf", d.bdf() + " is a bridge of host.bridges: a PCI address is unique");
        }
        if (d.below() != null) {
            BridgeSpec b = bridges.get(d.below());
            if (b == null) {
                throw new BadInput(at + ".below", d.below() + " is not one of host.bridges: expected one of "
                        + (bridges.isEmpty() ? "none (list it under host.bridges)" : bridges.keySet()));
            }
            onBus(at + ".bdf", d.bdf(), b);
        }
        if (d.acs() != null && !Boolean.TRUE.equals(d.multifunction())) {
            throw new BadInput(at + ".acs", "ACS bits of a single-function device have no effect: set"
                    + " \"multifunction\": true or drop \"acs\"");
        }
        List<Values.Devfn> aliases = d.dmaAliases() == null ? List.of() : d.dmaAliases();
        int own = d.bdf().device() << 3 | d.bdf().function();
        for (int i = 0; i < aliases.size(); i++) {
            if (aliases.get(i).value() == own) {
                throw new BadInput(at + ".dmaAliases[" + i + "]", String.format("%02x.%d is the device itself:"
                        + " expected another device and function on bus %02x", own >> 3, own & 7, d.bdf().bus()));
            }
        }
        List<RmrrSpec> rmrrs = d.rmrrs() == null ? List.of() : d.rmrrs();
        for (int i = 0; i < rmrrs.size(); i++) {
            RmrrSpec r = rmrrs.get(i);
            String rat = at + ".rmrrs[" + i + "]";
            long start = r.start().value();
            long size = r.bytes().bytes();
            if (!AddressRange.isAligned(start, PAGE)) {
                throw new BadInput(rat + ".start", "0x" + Long.toHexString(start) + " is not page-aligned: expected"
                        + " a multiple of 4096");
            }
            if (size == 0 || !AddressRange.isAligned(size, PAGE)) {
                throw new BadInput(rat + ".bytes", size + " is not a page-aligned, non-empty size: expected a"
                        + " multiple of 4096, not 0");
            }
            if (AddressRange.wraps(start, size)) {
                throw new BadInput(rat + ".bytes", size + " bytes from 0x" + Long.toHexString(start) + " run past"
                        + " 2^64: expected a region below 2^64");
            }
        }
    }

    private static void onBus(String at, PciAddress a, BridgeSpec above) {
        if (a.domain() != above.bdf().domain() || a.bus() != above.secondaryBus()) {
            throw new BadInput(at, String.format("%s is not on the secondary bus %02x of %s: expected"
                    + " %04x:%02x:DD.F", a, above.secondaryBus(), above.bdf(), above.bdf().domain(),
                    above.secondaryBus()));
        }
    }

    /**
     * @param h a checked host
     * @return its bridges by address, each with its parent
     */
    static Map<PciAddress, PciBridge> bridges(HostSpec h) {
        Map<PciAddress, PciBridge> out = new LinkedHashMap<>();
        if (h == null || h.bridges() == null) {
            return out;
        }
        for (BridgeSpec b : h.bridges()) {
            PciBridge bridge = new PciBridge(b.bdf(), b.type().type(), b.secondaryBus(), 0, 0, false,
                    b.parent() == null ? null : out.get(b.parent()));
            int acs = Values.AcsBit.bits(b.acs());
            out.put(b.bdf(), acs == 0 ? bridge : bridge.withAcs(acs));
        }
        return out;
    }

    /**
     * @param d a checked device
     * @param bridges the host's bridges ({@link #bridges})
     * @return the kernel's description of it
     */
    static PciDeviceSpec spec(DeviceSpec d, Map<PciAddress, PciBridge> bridges) {
        PciDeviceSpec spec = PciDeviceSpec.of(d.bdf().toString()).withDmaMask(DmaMasks.bits(
                d.dmaMaskBits() == null ? 64 : d.dmaMaskBits()));
        if (d.driver() != null) {
            spec = spec.withDriver(d.driver());
        }
        if (d.below() != null) {
            spec = spec.below(bridges.get(d.below()));
        }
        if (Boolean.TRUE.equals(d.multifunction())) {
            spec = spec.multifunction(Values.AcsBit.bits(d.acs()));
        }
        for (Values.Devfn a : d.dmaAliases() == null ? List.<Values.Devfn>of() : d.dmaAliases()) {
            spec = spec.withDmaAlias(a.value());
        }
        for (RmrrSpec r : d.rmrrs() == null ? List.<RmrrSpec>of() : d.rmrrs()) {
            spec = spec.withRmrr(r.start().value(), r.bytes().bytes());
        }
        return spec;
    }
}
