package org.iommu4j.kernel.iommu;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.PciAcs;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciBridge;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.PciDevice;

/**
 * The kernel's {@code pci_device_group} ({@code drivers/iommu/iommu.c}, Linux v6.12) over the host's PCI tree:
 *
 * <ol>
 *   <li>walk the device's DMA aliases ({@code pci_for_each_dma_alias}: itself, its quirk aliases, then every
 *       PCIe-to-PCI or conventional bridge above it); the first of those with a group gives it;</li>
 *   <li>from the last of them, go up while the bridge above does not have ACS on its whole path to the root
 *       ({@code pci_acs_path_enabled} with SV, RR, CR, UF); a bridge on the way with a group gives it;</li>
 *   <li>a device on the same bus that is a DMA alias of the one reached, or a function of its slot that ACS
 *       does not isolate (when the one reached is not isolated either), gives its group;</li>
 *   <li>else a new group.</li>
 * </ol>
 *
 * <p>In Linux bridges are devices with groups of their own. Here they are topology only (the IOMMU driver never
 * probes them), so the core remembers, for every bridge a walk stopped at or passed through, the group that walk
 * chose: that is the group the bridge would be in, and the next device whose walk reaches the bridge joins it.
 * The memory goes when the group does.
 */
final class PciDeviceGroups {
    private final Iommu core;
    private final Map<PciAddress, Group> bridgeGroups = new HashMap<>();

    PciDeviceGroups(Iommu core) {
        this.core = core;
    }

    /** Called under the configuration lock. */
    Group groupFor(PciDevice device, List<BusDevice> present) {
        List<PciBridge> passed = new ArrayList<>();
        Group group = find(device, present, passed);
        if (group == null) {
            group = core.allocateGroup(null, true);
        }
        for (PciBridge b : passed) {
            bridgeGroups.put(b.address(), group);
        }
        return group;
    }

    private Group find(PciDevice device, List<BusDevice> present, List<PciBridge> passed) {
        // 1. pci_for_each_dma_alias with get_pci_alias_or_group: the device, then aliasing bridges
        Group g = groupOf(device);
        if (g != null) {
            return g;
        }
        PciBridge reached = null;
        for (PciBridge b : device.upstreamBridges()) {
            if (b.type().conventionalBelow()) {
                reached = b;
                passed.add(b);
                g = groupOf(b);
                if (g != null) {
                    return g;
                }
            }
        }
        // 2. upstream from there to where ACS protects the path
        PciBridge above = reached == null ? device.upstreamBridges().stream().findFirst().orElse(null)
                : reached.parent();
        for (PciBridge b = above; b != null; b = b.parent()) {
            if (acsPathEnabled(b)) {
                break;
            }
            reached = b;
            passed.add(b);
            g = groupOf(b);
            if (g != null) {
                return g;
            }
        }
        if (reached != null) {
            return null; // a bridge's aliases and functions are not modelled: a new group for it
        }
        // 3. get_pci_alias_group, 4. get_pci_function_alias_group
        g = aliasGroup(device, present, new boolean[256]);
        if (g != null) {
            return g;
        }
        if (device.isMultifunction() && !device.acsIsolates()) {
            for (BusDevice d : present) {
                if (d instanceof PciDevice tmp && tmp != device && sameSlot(tmp, device) && !tmp.acsIsolates()) {
                    g = aliasGroup(tmp, present, new boolean[256]);
                    if (g != null) {
                        return g;
                    }
                }
            }
        }
        return null;
    }

    /** The kernel's {@code get_pci_alias_group}. */
    private Group aliasGroup(PciDevice device, List<BusDevice> present, boolean[] seen) {
        Group g = groupOf(device);
        if (g != null) {
            return g;
        }
        int devfn = device.address().requesterId() & 0xff;
        if (seen[devfn]) {
            return null;
        }
        seen[devfn] = true;
        for (BusDevice d : present) {
            if (d instanceof PciDevice tmp && tmp != device && sameBus(tmp, device) && areDmaAliases(tmp, device)) {
                g = aliasGroup(tmp, present, seen);
                if (g != null) {
                    return g;
                }
            }
        }
        return null;
    }

    /** The kernel's {@code pci_devs_are_dma_aliases}: either uses the other's devfn. */
    private static boolean areDmaAliases(PciDevice a, PciDevice b) {
        int da = a.address().requesterId() & 0xff;
        int db = b.address().requesterId() & 0xff;
        return a.topology().dmaAliasDevfns().contains(db) || b.topology().dmaAliasDevfns().contains(da);
    }

    /** The kernel's {@code pci_acs_path_enabled(start, NULL, REQ_ACS_FLAGS)}. */
    private static boolean acsPathEnabled(PciBridge start) {
        for (PciBridge b = start; b != null; b = b.parent()) {
            if (!b.acsEnabled(PciAcs.REQUIRED)) {
                return false;
            }
        }
        return true;
    }

    private Group groupOf(PciDevice device) {
        Group g = device.group();
        return core.isLive(g) ? g : null;
    }

    private Group groupOf(PciBridge bridge) {
        Group g = bridgeGroups.get(bridge.address());
        if (g != null && !core.isLive(g)) {
            bridgeGroups.remove(bridge.address());
            return null;
        }
        return g;
    }

    private static boolean sameBus(PciDevice a, PciDevice b) {
        return a.address().domain() == b.address().domain() && a.address().bus() == b.address().bus();
    }

    private static boolean sameSlot(PciDevice a, PciDevice b) {
        return sameBus(a, b) && a.address().device() == b.address().device();
    }
}
