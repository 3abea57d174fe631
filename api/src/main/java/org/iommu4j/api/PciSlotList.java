package org.iommu4j.api;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A list of {@link PciSlotPattern}s naming the devices a backend takes over, kept the way xen-pciback keeps its
 * slot list: from a {@code hide=} parameter at load, then {@code new_slot} / {@code remove_slot} writes.
 * Safe for concurrent reads while it changes.
 */
public final class PciSlotList {
    private final List<PciSlotPattern> slots = new CopyOnWriteArrayList<>();

    /**
     * @param hide the initial list in {@code hide=} syntax, possibly empty
     * @throws IommuException {@link Errno#EINVAL} "Error parsing pci_devs_to_hide at ..." for a bad list
     */
    public PciSlotList(String hide) {
        slots.addAll(PciSlotPattern.parseList(hide));
    }

    /**
     * @param device a device
     * @return whether a slot on the list covers it (never for a device that is not on PCI)
     */
    public boolean covers(Device device) {
        return device.pciAddress().map(a -> slots.stream().anyMatch(p -> p.matches(a))).orElse(false);
    }

    /**
     * @param slot a slot to add
     * @throws IommuException {@link Errno#EEXIST} if it is on the list already
     */
    public void add(PciSlotPattern slot) {
        if (slots.contains(slot)) {
            throw new IommuException(Errno.EEXIST, "slot " + slot + " is already on the list");
        }
        slots.add(slot);
    }

    /**
     * @param slot a slot to remove
     * @throws IommuException {@link Errno#ENOENT} naming the slots on the list if it is not one of them
     */
    public void remove(PciSlotPattern slot) {
        if (!slots.remove(slot)) {
            throw new IommuException(Errno.ENOENT, "slot " + slot + " is not on the list; listed: " + slots);
        }
    }

    /** @return the slots, in order */
    public List<PciSlotPattern> snapshot() {
        return List.copyOf(slots);
    }

    /**
     * Puts back a list {@link #snapshot()} took, as when a change must be undone.
     *
     * @param saved the slots
     */
    public void restore(List<PciSlotPattern> saved) {
        slots.clear();
        slots.addAll(saved);
    }

    /**
     * Changes the list and asks the iommu core to probe every present PCI device the slot covers again, so that
     * devices join or leave their groups; if the core refuses (a user holds one, {@link Errno#EBUSY}), the list
     * is put back and the devices probed again, and the refusal is thrown.
     *
     * @param kernel the module's services
     * @param slot the slot being added or removed
     * @param change the change, for example {@code list -> list.add(slot)}
     * @param reprobe whether devices should be probed again (false while the backend claims none)
     */
    public void update(KernelServices kernel, PciSlotPattern slot, java.util.function.Consumer<PciSlotList> change,
            boolean reprobe) {
        List<PciSlotPattern> before = snapshot();
        change.accept(this);
        if (!reprobe) {
            return;
        }
        try {
            reprobe(kernel, slot);
        } catch (RuntimeException e) {
            restore(before);
            reprobe(kernel, slot);
            throw e;
        }
    }

    private static void reprobe(KernelServices kernel, PciSlotPattern slot) {
        for (Device d : kernel.devices().devices(BusType.PCI)) {
            if (d.pciAddress().filter(slot::matches).isPresent()) {
                kernel.iommu().reprobe(d);
            }
        }
    }

    /** @return one slot per line, as pciback's {@code slots} attribute shows them */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (PciSlotPattern p : slots) {
            sb.append(p).append('\n');
        }
        return sb.toString();
    }
}
