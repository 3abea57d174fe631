package org.iommu4j.kernel.vfio;

import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PciAddress;
import org.iommu4j.kernel.proc.UserProcess;

/**
 * A virtual machine's PCI bus as its device model (QEMU, in the seed thread) presents it: assigned devices
 * appear at guest-chosen addresses, and the guest's configuration cycles are trapped and remapped to the host
 * device behind each, through its VFIO device file. An address with no device, or whose device was closed,
 * revoked or removed, reads all ones and takes no writes, as an empty slot or a surprise-removed device does.
 */
public final class GuestPciBus {
    private final UserProcess vmm;
    private final Map<PciAddress, VfioDeviceFile> slots = new ConcurrentHashMap<>();

    /**
     * @param vmm the device-model process whose VFIO files back the bus
     */
    public GuestPciBus(UserProcess vmm) {
        this.vmm = vmm;
    }

    /**
     * Places an assigned device at a guest address.
     *
     * @param guest the address the guest will see, for example {@code 0000:00:03.0}
     * @param device an open VFIO device
     * @throws IommuException {@link Errno#EEXIST} if the guest address is taken or the device already sits at
     *     another one, {@link Errno#EINVAL} for a device without PCI configuration space, {@link Errno#EBADF}
     *     for a device file the bus's device model does not hold
     */
    public synchronized void attach(PciAddress guest, VfioDeviceFile device) {
        if (device.device().pciAddress().isEmpty()) {
            throw new IommuException(Errno.EINVAL, device.name() + " is not a PCI device");
        }
        device.requireHeld(vmm);
        VfioDeviceFile previous = slots.get(guest);
        if (previous != null) {
            throw new IommuException(Errno.EEXIST, "guest address " + guest + " already holds host device "
                    + previous.name());
        }
        for (Map.Entry<PciAddress, VfioDeviceFile> e : slots.entrySet()) {
            if (e.getValue() == device) {
                throw new IommuException(Errno.EEXIST, "host device " + device.name() + " is already at guest"
                        + " address " + e.getKey() + ": detach it first");
            }
        }
        slots.put(guest, device);
    }

    /**
     * Takes a device off the guest's bus (a hot-unplug); its VFIO file stays open.
     *
     * @param guest the guest address
     * @return the device file that was there
     * @throws IommuException {@link Errno#ENOENT} if the address is empty
     */
    public synchronized VfioDeviceFile detach(PciAddress guest) {
        VfioDeviceFile f = slots.remove(guest);
        if (f == null) {
            throw new IommuException(Errno.ENOENT, "guest address " + guest + " holds no device");
        }
        return f;
    }

    /**
     * @param guest a guest address
     * @return the host device behind it
     */
    public Optional<PciAddress> hostAddress(PciAddress guest) {
        VfioDeviceFile f = slots.get(guest);
        return f == null ? Optional.empty() : f.device().pciAddress();
    }

    /**
     * A guest configuration read: remapped to the host device, or all ones for an empty slot.
     *
     * @param guest the guest address
     * @param offset byte offset
     * @param size 1, 2 or 4
     * @return the value
     */
    public int configRead(PciAddress guest, int offset, int size) {
        VfioDeviceFile f = slots.get(guest);
        if (f != null && f.usable()) {
            try {
                return f.configRead(vmm, offset, size);
            } catch (IommuException e) {
                if (e.errno() != Errno.ENODEV && e.errno() != Errno.EBADF) {
                    throw e;
                }
                // revoked or closed between the check and the read: the device is gone
            }
        }
        return size == 4 ? -1 : (1 << (8 * size)) - 1;
    }

    /**
     * A guest configuration write: remapped to the host device through VFIO's filter; dropped for an empty
     * slot.
     *
     * @param guest the guest address
     * @param offset byte offset
     * @param size 1, 2 or 4
     * @param value the value
     */
    public void configWrite(PciAddress guest, int offset, int size, int value) {
        VfioDeviceFile f = slots.get(guest);
        if (f != null && f.usable()) {
            try {
                f.configWrite(vmm, offset, size, value);
            } catch (IommuException e) {
                if (e.errno() != Errno.ENODEV && e.errno() != Errno.EBADF) {
                    throw e;
                }
            }
        }
    }
}
