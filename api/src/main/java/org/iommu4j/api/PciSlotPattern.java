package org.iommu4j.api;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A PCI address with optional wildcards, as xen-pciback's {@code hide} parameter and its {@code new_slot}
 * attribute take them: {@code 0000:06:0d.0}, {@code 0000:07:00.*} (any function), {@code 0000:07:*.*} (any
 * device on the bus), and the same three without the domain, which then means 0000. Backends that are handed
 * devices by address (pciback, the SWIOTLB-IOMMU driver) share this one parser.
 *
 * @param domain PCI segment, 0 to 0xffff
 * @param bus 0 to 0xff
 * @param slot device number 0 to 0x1f, or {@link #ANY}
 * @param function 0 to 7, or {@link #ANY}; {@link #ANY} whenever {@code slot} is
 */
public record PciSlotPattern(int domain, int bus, int slot, int function) {

    /** A wildcard field. */
    public static final int ANY = -1;

    private static final String HEX = "([0-9a-fA-F]+)";
    private static final Pattern FULL = Pattern.compile(
            "\\s*" + HEX + ":" + HEX + ":(?:" + HEX + "|\\*)\\.(?:" + HEX + "|\\*)\\s*");
    private static final Pattern SHORT = Pattern.compile(
            "\\s*" + HEX + ":(?:" + HEX + "|\\*)\\.(?:" + HEX + "|\\*)\\s*");
    /*
     * One hide= entry as pcistub_init's sscanf formats " (%x:%x:%x.%x) %n" and their wildcard variants take it:
     * white space around the entry and before each number (%x skips it), none before ')' or around '*'.
     */
    private static final String HIDE_HEX = "\\s*([0-9a-fA-F]+)";
    private static final Pattern FULL_ENTRY = Pattern.compile("\\s*\\(" + HIDE_HEX + ":" + HIDE_HEX + ":(?:"
            + HIDE_HEX + "|\\*)\\.(?:" + HIDE_HEX + "|\\*)\\)\\s*");
    private static final Pattern SHORT_ENTRY = Pattern.compile("\\s*\\(" + HIDE_HEX + ":(?:" + HIDE_HEX
            + "|\\*)\\.(?:" + HIDE_HEX + "|\\*)\\)\\s*");

    /**
     * Checks ranges and wildcard order.
     *
     * @param domain see the record description
     * @param bus see the record description
     * @param slot see the record description
     * @param function see the record description
     * @throws IllegalArgumentException naming the field and its range
     */
    public PciSlotPattern {
        if (domain < 0 || domain > 0xffff || bus < 0 || bus > 0xff || slot < ANY || slot > 0x1f
                || function < ANY || function > 7 || slot == ANY && function != ANY) {
            throw new IllegalArgumentException("PCI slot " + text(domain, bus, slot, function) + " is invalid:"
                    + " domain 0-ffff, bus 0-ff, device 0-1f or *, function 0-7 or * (* when the device is *)");
        }
    }

    /**
     * Parses one slot, as {@code new_slot} and {@code remove_slot} take it.
     *
     * @param text {@code DDDD:BB:SS.F}, {@code BB:SS.F}, with {@code *} for the device and/or function
     * @return the pattern
     * @throws IommuException {@link Errno#EINVAL} naming the text and the valid forms
     */
    public static PciSlotPattern parse(String text) {
        PciSlotPattern p = text == null ? null : tryParse(text);
        if (p == null) {
            throw new IommuException(Errno.EINVAL, "invalid PCI slot '" + text + "': expected DDDD:BB:SS.F or"
                    + " BB:SS.F in hex, with * for the device and function (DDDD:BB:SS.*, DDDD:BB:*.*)");
        }
        return p;
    }

    private static PciSlotPattern tryParse(String text) {
        Matcher m = FULL.matcher(text);
        int domain;
        int first;
        if (m.matches()) {
            domain = hex(m.group(1));
            first = 2;
        } else {
            m = SHORT.matcher(text);
            if (!m.matches()) {
                return null;
            }
            domain = 0;
            first = 1;
        }
        String slot = m.group(first + 1);
        String function = m.group(first + 2);
        if (slot == null && function != null) {
            return null;
        }
        try {
            return new PciSlotPattern(domain, hex(m.group(first)), slot == null ? ANY : hex(slot),
                    function == null ? ANY : hex(function));
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    private static int hex(String digits) {
        return digits.length() > 8 ? Integer.MAX_VALUE : (int) Math.min(Integer.MAX_VALUE, Long.parseLong(digits, 16));
    }

    /**
     * Parses xen-pciback's {@code hide} list: parenthesised slots, white space allowed around each, for
     * example {@code (0000:06:0d.0)(07:00.*)}.
     *
     * @param text the list; empty for none
     * @return the patterns in order
     * @throws IommuException {@link Errno#EINVAL} with the kernel's message
     *     {@code Error parsing pci_devs_to_hide at "<rest of the text from the bad entry>"} for an entry the
     *     kernel's {@code sscanf} does not take (white space before {@code )} included); {@link Errno#EINVAL}
     *     without that message for a well-formed entry whose numbers are out of range, which
     *     {@code pcistub_device_id_add} refuses without a word (Linux v6.12
     *     {@code drivers/xen/xen-pciback/pci_stub.c})
     */
    public static List<PciSlotPattern> parseList(String text) {
        List<PciSlotPattern> out = new ArrayList<>();
        int pos = 0;
        while (pos < text.length()) {
            Matcher m = FULL_ENTRY.matcher(text).region(pos, text.length());
            boolean full = m.lookingAt();
            if (!full) {
                m = SHORT_ENTRY.matcher(text).region(pos, text.length());
            }
            PciSlotPattern p = full || m.lookingAt() ? hideEntry(m, full) : null;
            if (p == null) {
                if (text.substring(pos).isBlank() && !out.isEmpty()) {
                    break;
                }
                throw new IommuException(Errno.EINVAL,
                        "Error parsing pci_devs_to_hide at \"" + text.substring(pos) + "\"");
            }
            out.add(p);
            pos = m.end();
        }
        return out;
    }

    /** The pattern a matched hide= entry names; its numbers out of range are EINVAL, not a parse error. */
    private static PciSlotPattern hideEntry(Matcher m, boolean withDomain) {
        int g = withDomain ? 2 : 1;
        long domain = withDomain ? hexLong(m.group(1)) : 0;
        long bus = hexLong(m.group(g));
        String slotText = m.group(g + 1);
        String fnText = m.group(g + 2);
        if (slotText == null && fnText != null) {
            return null;
        }
        long slot = slotText == null ? ANY : hexLong(slotText);
        long function = fnText == null ? ANY : hexLong(fnText);
        if (domain > 0xffff || bus > 0xff || slot > 0x1f || function > 7) {
            throw new IommuException(Errno.EINVAL, String.format("xen-pciback: cannot hide %s: domain 0-ffff, bus"
                    + " 0-ff, device 0-1f, function 0-7 (pcistub_device_id_add refuses it, EINVAL)",
                    m.group(0).strip()));
        }
        return new PciSlotPattern((int) domain, (int) bus, (int) slot, (int) function);
    }

    private static long hexLong(String digits) {
        return digits.length() > 15 ? Long.MAX_VALUE : Long.parseLong(digits, 16);
    }

    /**
     * @param address a device's address
     * @return whether this pattern covers it
     */
    public boolean matches(PciAddress address) {
        return address.domain() == domain && address.bus() == bus && (slot == ANY || address.device() == slot)
                && (function == ANY || address.function() == function);
    }

    /** @return {@code DDDD:BB:SS.F} with {@code *} for wildcards, as pciback's {@code slots} lists it */
    @Override
    public String toString() {
        return text(domain, bus, slot, function);
    }

    private static String text(int domain, int bus, int slot, int function) {
        return String.format("%04x:%02x:%s.%s", domain, bus, slot == ANY ? "*" : String.format("%02x", slot),
                function == ANY ? "*" : Integer.toString(function));
    }
}
