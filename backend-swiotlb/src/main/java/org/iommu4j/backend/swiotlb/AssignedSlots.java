package org.iommu4j.backend.swiotlb;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.Device;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PciSlotPattern;

/**
 * The devices assigned to the SWIOTLB-IOMMU, kept the way xen-pciback keeps its slot list: from the
 * {@code hide=} parameter at load and {@code new_slot} / {@code remove_slot} afterwards.
 */
final class AssignedSlots {
    private final List<PciSlotPattern> slots = new CopyOnWriteArrayList<>();

    AssignedSlots(String hide) {
        slots.addAll(PciSlotPattern.parseList(hide));
    }

    boolean covers(Device device) {
        return device.pciAddress().map(a -> slots.stream().anyMatch(p -> p.matches(a))).orElse(false);
    }

    void add(PciSlotPattern slot) {
        if (slots.contains(slot)) {
            throw new IommuException(Errno.EEXIST, "slot " + slot + " is already assigned");
        }
        slots.add(slot);
    }

    void remove(PciSlotPattern slot) {
        if (!slots.remove(slot)) {
            throw new IommuException(Errno.ENOENT, "slot " + slot + " is not assigned; assigned: " + slots);
        }
    }

    List<PciSlotPattern> snapshot() {
        return List.copyOf(slots);
    }

    void restore(List<PciSlotPattern> saved) {
        slots.clear();
        slots.addAll(saved);
    }

    /** @return one slot per line, as pciback's {@code slots} attribute shows them */
    String show() {
        StringBuilder sb = new StringBuilder();
        for (PciSlotPattern p : new ArrayList<>(slots)) {
            sb.append(p).append('\n');
        }
        return sb.toString();
    }
}
