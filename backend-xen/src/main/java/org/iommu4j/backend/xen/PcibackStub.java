package org.iommu4j.backend.xen;

import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.PciSlotPattern;

/**
 * xen-pciback's stub (Linux v6.12 {@code drivers/xen/xen-pciback/pci_stub.c}) as far as device ownership goes,
 * in Domain-0: its slot list ({@code pcistub_device_ids}) and the devices it has seized, which the hypervisor
 * holds for guests.
 *
 * <p>The list holds exact functions only: as {@code pcistub_device_id_add} does, a wildcard is expanded on the
 * way in to one entry per device and function it covers ({@code 07:00.*} is eight entries, {@code 07:*.*} 256),
 * an entry already listed is skipped, and {@link #slots()} prints one {@code %04x:%02x:%02x.%d} per line. Removal
 * ({@code pcistub_device_id_remove}) takes every entry a possibly wildcarded slot matches, so one function of
 * an expanded wildcard can be removed on its own.
 *
 * <p>Being listed and being seized are separate, as in the kernel: the stub seizes only listed devices, when
 * it is loaded or a listed device appears, or when the PCI core's {@code bind} asks for a listed device;
 * {@code new_slot} and {@code remove_slot} change the list and nothing else.
 */
final class PcibackStub {
    private static final int SLOTS = 32;
    private static final int FUNCTIONS = 8;

    private final List<PciSlotPattern> ids = new CopyOnWriteArrayList<>();
    private final Set<PciAddress> seized = ConcurrentHashMap.newKeySet();

    /**
     * @param hideLists {@code hide=} lists, each possibly empty, added in order
     * @throws IommuException {@link Errno#EINVAL} "Error parsing pci_devs_to_hide at ..." for a bad list
     */
    PcibackStub(String... hideLists) {
        for (String list : hideLists) {
            for (PciSlotPattern p : PciSlotPattern.parseList(list)) {
                add(p);
            }
        }
    }

    /**
     * {@code pcistub_device_id_add}: lists every function the slot covers that is not listed yet.
     *
     * @param slot a slot, possibly with wildcards
     */
    synchronized void add(PciSlotPattern slot) {
        int fromSlot = slot.slot() == PciSlotPattern.ANY ? 0 : slot.slot();
        int toSlot = slot.slot() == PciSlotPattern.ANY ? SLOTS - 1 : slot.slot();
        int fromFn = slot.function() == PciSlotPattern.ANY ? 0 : slot.function();
        int toFn = slot.function() == PciSlotPattern.ANY ? FUNCTIONS - 1 : slot.function();
        for (int s = fromSlot; s <= toSlot; s++) {
            for (int f = fromFn; f <= toFn; f++) {
                PciSlotPattern id = new PciSlotPattern(slot.domain(), slot.bus(), s, f);
                if (!ids.contains(id)) {
                    ids.add(id);
                }
            }
        }
    }

    /**
     * {@code pcistub_device_id_remove}: unlists every entry the slot matches.
     *
     * @param slot a slot, possibly with wildcards
     * @throws IommuException {@link Errno#ENOENT} if it matches no entry
     */
    synchronized void remove(PciSlotPattern slot) {
        if (!ids.removeIf(id -> slot.matches(address(id)))) {
            throw new IommuException(Errno.ENOENT, "pciback: " + slot + " matches no slot on the list; listed: "
                    + ids);
        }
    }

    /**
     * @param address a device's address
     * @return whether the slot list names it
     */
    boolean listed(PciAddress address) {
        for (PciSlotPattern id : ids) {
            if (id.matches(address)) {
                return true;
            }
        }
        return false;
    }

    /**
     * @param address a device's address
     * @return whether the stub holds the device for the guest
     */
    boolean isSeized(PciAddress address) {
        return seized.contains(address);
    }

    /** @param address a listed, present device the stub now holds */
    void seize(PciAddress address) {
        seized.add(address);
    }

    /** @param address a device the stub lets go of; nothing happens if it did not hold it */
    void release(PciAddress address) {
        seized.remove(address);
    }

    /** @return the {@code slots} attribute: one {@code %04x:%02x:%02x.%d} per line, in the order listed */
    String slots() {
        StringBuilder sb = new StringBuilder();
        for (PciSlotPattern id : ids) {
            sb.append(id).append('\n');
        }
        return sb.toString();
    }

    private static PciAddress address(PciSlotPattern exact) {
        return new PciAddress(exact.domain(), exact.bus(), exact.slot(), exact.function());
    }
}
