package org.iommu4j.kernel.bus;

import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;

/**
 * A type-0 PCI configuration header as the hardware implements it: little-endian registers, some bits
 * writable, the rest fixed. Writes to fixed bits are ignored as a device ignores them. What a VFIO user may
 * change is decided above this, by the VFIO layer's virtualisation.
 */
public final class PciConfigSpace {
    /** Conventional PCI configuration space size. */
    public static final int SIZE = 256;

    /** Register offsets. */
    public static final int VENDOR_ID = 0x00;
    /** Device id register. */
    public static final int DEVICE_ID = 0x02;
    /** Command register. */
    public static final int COMMAND = 0x04;
    /** Status register. */
    public static final int STATUS = 0x06;
    /** Revision id register. */
    public static final int REVISION_ID = 0x08;
    /** Class code (prog-if, subclass, class), three bytes. */
    public static final int CLASS_PROG = 0x09;
    /** Cache line size register. */
    public static final int CACHE_LINE_SIZE = 0x0c;
    /** Latency timer register. */
    public static final int LATENCY_TIMER = 0x0d;
    /** Header type register. */
    public static final int HEADER_TYPE = 0x0e;
    /** BAR 0. */
    public static final int BAR0 = 0x10;
    /** Subsystem vendor id register. */
    public static final int SUBSYSTEM_VENDOR_ID = 0x2c;
    /** Subsystem id register. */
    public static final int SUBSYSTEM_ID = 0x2e;
    /** Interrupt line register. */
    public static final int INTERRUPT_LINE = 0x3c;
    /** Interrupt pin register. */
    public static final int INTERRUPT_PIN = 0x3d;

    /** Command register bits: I/O space, memory space, bus master, ..., INTx disable. */
    public static final int COMMAND_MEMORY = 1 << 1;
    /** Bus master enable. */
    public static final int COMMAND_MASTER = 1 << 2;
    /** INTx disable. */
    public static final int COMMAND_INTX_DISABLE = 1 << 10;

    private final byte[] data = new byte[SIZE];
    private final byte[] writable = new byte[SIZE];

    /**
     * @param spec the device whose header this is
     */
    public PciConfigSpace(PciDeviceSpec spec) {
        put(VENDOR_ID, 2, spec.vendorId());
        put(DEVICE_ID, 2, spec.deviceId());
        put(CLASS_PROG, 3, spec.classCode());
        put(SUBSYSTEM_VENDOR_ID, 2, spec.vendorId());
        put(SUBSYSTEM_ID, 2, spec.deviceId());
        put(INTERRUPT_PIN, 1, 1);
        mask(COMMAND, 2, 0x0000_057f);
        mask(CACHE_LINE_SIZE, 1, 0xff);
        mask(LATENCY_TIMER, 1, 0xff);
        mask(INTERRUPT_LINE, 1, 0xff);
        if (spec.bar0Size() != 0) {
            mask(BAR0, 4, ~(spec.bar0Size() - 1) & 0xffff_fff0);
        }
    }

    /**
     * Firmware's assignment of BAR 0: the address, kept within the BAR's size mask, with the flag bits as they
     * are.
     *
     * @param address where the BAR's region lives, aligned to its size
     */
    synchronized void assignBar0(long address) {
        int sizeMask = (writable[BAR0] & 0xff) | (writable[BAR0 + 1] & 0xff) << 8
                | (writable[BAR0 + 2] & 0xff) << 16 | (writable[BAR0 + 3] & 0xff) << 24;
        put(BAR0, 4, (read(BAR0, 4) & ~sizeMask) | ((int) address & sizeMask));
    }

    private void put(int offset, int size, int value) {
        for (int i = 0; i < size; i++) {
            data[offset + i] = (byte) (value >>> (8 * i));
        }
    }

    private void mask(int offset, int size, int bits) {
        for (int i = 0; i < size; i++) {
            writable[offset + i] = (byte) (bits >>> (8 * i));
        }
    }

    /**
     * Reads a register.
     *
     * @param offset byte offset, aligned to {@code size}
     * @param size 1, 2 or 4
     * @return the value, zero-extended
     * @throws IommuException {@link Errno#EINVAL} for a bad size, an unaligned or out-of-range offset
     */
    public synchronized int read(int offset, int size) {
        check(offset, size);
        int value = 0;
        for (int i = 0; i < size; i++) {
            value |= (data[offset + i] & 0xff) << (8 * i);
        }
        return value;
    }

    /**
     * Writes a register; bits the hardware does not implement as writable keep their value.
     *
     * @param offset byte offset, aligned to {@code size}
     * @param size 1, 2 or 4
     * @param value the value (low {@code size} bytes used)
     * @throws IommuException {@link Errno#EINVAL} for a bad size, an unaligned or out-of-range offset
     */
    public synchronized void write(int offset, int size, int value) {
        check(offset, size);
        for (int i = 0; i < size; i++) {
            int m = writable[offset + i];
            int b = (byte) (value >>> (8 * i));
            data[offset + i] = (byte) ((data[offset + i] & ~m) | (b & m));
        }
    }

    /**
     * @param offset a byte offset
     * @return the hardware's writable bits of that byte
     */
    public int writableBits(int offset) {
        return writable[offset] & 0xff;
    }

    static void check(int offset, int size) {
        if (size != 1 && size != 2 && size != 4) {
            throw new IommuException(Errno.EINVAL,
                    "config access size " + size + " is invalid: expected 1, 2 or 4 bytes");
        }
        if (offset < 0 || offset + size > SIZE || offset % size != 0) {
            throw new IommuException(Errno.EINVAL, String.format(
                    "config access at offset 0x%x size %d is invalid: expected an offset aligned to the size"
                            + " within 0x0-0x%x", offset, size, SIZE - 1));
        }
    }
}
