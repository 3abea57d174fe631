package org.iommu4j.kernel.vfio;

import java.util.concurrent.atomic.AtomicLong;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.PciConfigSpace;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.proc.FileObject;
import org.iommu4j.kernel.proc.UserProcess;

/**
 * An open VFIO device, what {@code VFIO_GROUP_GET_DEVICE_FD} returns. It is a file: the process that got it
 * holds it, and only a holder (by fork, or {@link #passTo}) may use it; any other gets {@link Errno#EBADF}.
 * It keeps its group file open until its last descriptor is closed. Configuration space is virtualised as
 * vfio-pci does it:
 * <ul>
 * <li>the BARs, the expansion ROM BAR and the interrupt line live in a virtual copy taken when the device is
 *     opened: the user reads and writes the copy, never the host's registers, and a BAR keeps the hardware's
 *     size mask, so writing all ones and reading back sizes it as on real hardware; a BAR the host never
 *     assigned (and the ROM BAR, which no simulated device has) reads as not implemented;</li>
 * <li>writes reach the device only for the command register's I/O, memory, bus-master, parity, SERR and
 *     INTx-disable bits, the cache line size and the latency timer;</li>
 * <li>anything else written is dropped silently and counted ({@link #filteredWrites}); other reads pass
 *     through.</li>
 * </ul>
 */
public final class VfioDeviceFile extends FileObject {
    private static final byte[] USER_WRITABLE = userWritableMask();
    private static final int ROM_BAR = 0x30;

    private final Vfio vfio;
    private final VfioGroupFile groupFile;
    private final BusDevice device;
    private final UserProcess opener;
    private final AtomicLong filtered = new AtomicLong();
    private final byte[] virt = new byte[PciConfigSpace.SIZE];
    private final byte[] sizeMask = new byte[PciConfigSpace.SIZE];
    private volatile String revoked;
    private volatile boolean closed;

    VfioDeviceFile(Vfio vfio, VfioGroupFile groupFile, BusDevice device, UserProcess opener) {
        this.vfio = vfio;
        this.groupFile = groupFile;
        this.device = device;
        this.opener = opener;
        if (device instanceof PciDevice pci) {
            PciConfigSpace config = pci.config();
            synchronized (config) {
                for (int bar = 0; bar < 6; bar++) {
                    int at = PciConfigSpace.BAR0 + 4 * bar;
                    // vfio_bar_fixup: a BAR the host never assigned reads as not implemented
                    boolean assigned = (config.read(at, 4) & ~0xf) != 0;
                    for (int i = at; i < at + 4; i++) {
                        virt[i] = assigned ? (byte) config.read(i, 1) : 0;
                        sizeMask[i] = assigned ? (byte) config.writableBits(i) : 0;
                    }
                }
                virt[PciConfigSpace.INTERRUPT_LINE] = (byte) config.read(PciConfigSpace.INTERRUPT_LINE, 1);
                sizeMask[PciConfigSpace.INTERRUPT_LINE] = (byte) 0xff;
            }
        }
    }

    private static byte[] userWritableMask() {
        byte[] m = new byte[PciConfigSpace.SIZE];
        m[PciConfigSpace.COMMAND] = (byte) 0x47;
        m[PciConfigSpace.COMMAND + 1] = (byte) 0x05;
        m[PciConfigSpace.CACHE_LINE_SIZE] = (byte) 0xff;
        m[PciConfigSpace.LATENCY_TIMER] = (byte) 0xff;
        return m;
    }

    /** Bytes of the virtual copy: BAR0-5, the ROM BAR and the interrupt line. */
    private static boolean virtualised(int offset) {
        return offset >= PciConfigSpace.BAR0 && offset < PciConfigSpace.BAR0 + 24
                || offset >= ROM_BAR && offset < ROM_BAR + 4 || offset == PciConfigSpace.INTERRUPT_LINE;
    }

    /** Installs the file in its opener's descriptor table. */
    void open() {
        openBy(opener);
    }

    @Override
    public String fileName() {
        return "[vfio-device] " + device.name();
    }

    /** @return the device */
    public BusDevice device() {
        return device;
    }

    /** @return the device's name */
    public String name() {
        return device.name();
    }

    /**
     * Reads configuration space ({@code pread} on the config region).
     *
     * @param caller who asks
     * @param offset byte offset
     * @param size 1, 2 or 4
     * @return the value
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the file, {@link Errno#ENODEV}
     *     once the device is removed or unbound, {@link Errno#EPERM}
     *     without the group's capability, {@link Errno#EINVAL} for a bad access
     */
    public int configRead(UserProcess caller, int offset, int size) {
        PciConfigSpace config = config(caller);
        synchronized (config) {
            int value = config.read(offset, size);
            for (int i = 0; i < size; i++) {
                if (virtualised(offset + i)) {
                    value = (value & ~(0xff << (8 * i))) | ((virt[offset + i] & 0xff) << (8 * i));
                }
            }
            return value;
        }
    }

    /**
     * Writes configuration space; fields a user must not change keep their value.
     *
     * @param caller who asks
     * @param offset byte offset
     * @param size 1, 2 or 4
     * @param value the value
     */
    public void configWrite(UserProcess caller, int offset, int size, int value) {
        PciConfigSpace config = config(caller);
        synchronized (config) {
            int current = config.read(offset, size);
            int allowed = 0;
            int virtual = 0;
            for (int i = 0; i < size; i++) {
                int at = offset + i;
                if (virtualised(at)) {
                    int m = sizeMask[at] & 0xff;
                    virt[at] = (byte) ((virt[at] & ~m) | ((value >>> (8 * i)) & m));
                    virtual |= 0xff << (8 * i);
                } else {
                    allowed |= (USER_WRITABLE[at] & 0xff) << (8 * i);
                }
            }
            int merged = (current & ~allowed) | (value & allowed);
            if (((value ^ current) & ~allowed & ~virtual & (size == 4 ? -1 : (1 << (8 * size)) - 1)) != 0) {
                filtered.incrementAndGet();
            }
            if (allowed != 0) {
                config.write(offset, size, merged);
            }
        }
    }

    /** @return how many writes had bits dropped because the user may not change them */
    public long filteredWrites() {
        return filtered.get();
    }

    private PciConfigSpace config(UserProcess caller) {
        requireHeld(caller);
        requireUsable();
        VfioAccess.checkGroup(caller, groupFile.group(), VfioAccess.Step.DEVICE_ACCESS);
        if (!(device instanceof PciDevice pci)) {
            throw new IommuException(Errno.EINVAL, device.name() + " is a platform device: it has no PCI"
                    + " configuration space");
        }
        return pci.config();
    }

    private void requireUsable() {
        if (revoked != null) {
            throw new IommuException(Errno.ENODEV, "device " + device.name() + " " + revoked);
        }
        if (closed) {
            throw new IommuException(Errno.EBADF, "device " + device.name() + " is closed");
        }
    }

    /** @return the process that got the device from its group */
    public UserProcess opener() {
        return opener;
    }

    /** @return whether calls can still succeed: held, not revoked, the device still present */
    public boolean usable() {
        return revoked == null && !closed && device.isPresent();
    }

    void revoke(String why) {
        revoked = why;
    }

    /** The last descriptor went: the device is closed, and its group file may go with it. */
    @Override
    protected void lastClose() {
        if (!closed) {
            closed = true;
            groupFile.deviceClosed(this);
        }
    }
}
