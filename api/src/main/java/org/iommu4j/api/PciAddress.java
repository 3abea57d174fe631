package org.iommu4j.api;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A PCI device's address, {@code DDDD:BB:DD.F} in hex as sysfs writes it: {@code 0000:06:0d.0} is domain 0,
 * bus 6, device 13, function 0.
 *
 * @param domain PCI segment, 0 to 0xffff
 * @param bus 0 to 0xff
 * @param device 0 to 0x1f
 * @param function 0 to 7
 */
public record PciAddress(int domain, int bus, int device, int function) implements Comparable<PciAddress> {

    /** The form {@link #parse} accepts, for messages. */
    public static final String FORM = "DDDD:BB:DD.F in hex, for example 0000:06:0d.0";

    private static final Pattern TEXT =
            Pattern.compile("([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\\.([0-9a-fA-F])");

    /**
     * Checks every field's range.
     *
     * @param domain see the record description
     * @param bus see the record description
     * @param device see the record description
     * @param function see the record description
     * @throws IllegalArgumentException naming the field, its value and its range
     */
    public PciAddress {
        check("domain", domain, 0xffff);
        check("bus", bus, 0xff);
        check("device", device, 0x1f);
        check("function", function, 7);
    }

    private static void check(String field, int value, int max) {
        if (value < 0 || value > max) {
            throw new IllegalArgumentException(
                    "PCI " + field + " " + value + " is out of range: expected 0 to " + max);
        }
    }

    /**
     * Parses {@code DDDD:BB:DD.F}.
     *
     * @param text for example {@code "0000:06:0d.0"}
     * @return the address
     * @throws IllegalArgumentException naming the text and {@link #FORM}
     */
    public static PciAddress parse(String text) {
        Matcher m = text == null ? null : TEXT.matcher(text);
        if (m == null || !m.matches()) {
            throw new IllegalArgumentException("invalid PCI address '" + text + "': expected " + FORM);
        }
        int device = Integer.parseInt(m.group(3), 16);
        int function = Integer.parseInt(m.group(4), 16);
        if (device > 0x1f || function > 7) {
            throw new IllegalArgumentException("invalid PCI address '" + text + "': device must be 00 to 1f and"
                    + " function 0 to 7 (" + FORM + ")");
        }
        return new PciAddress(Integer.parseInt(m.group(1), 16), Integer.parseInt(m.group(2), 16), device, function);
    }

    /**
     * The 16-bit requester id a device puts on the bus: {@code bus << 8 | device << 3 | function}.
     *
     * @return the requester id (without the domain)
     */
    public int requesterId() {
        return bus << 8 | device << 3 | function;
    }

    /** @return {@code BB:DD.F}, the short form the kernel prints in fault reports */
    public String toShortString() {
        return String.format("%02x:%02x.%x", bus, device, function);
    }

    /** @return {@code DDDD:BB:DD.F} in lower-case hex */
    @Override
    public String toString() {
        return String.format("%04x:%02x:%02x.%x", domain, bus, device, function);
    }

    @Override
    public int compareTo(PciAddress o) {
        return Long.compare(key(), o.key());
    }

    private long key() {
        return (long) domain << 16 | requesterId();
    }
}
