package org.iommu4j.cli;

import java.math.BigInteger;
import java.util.Arrays;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.fault.FaultInjection;

/**
 * The value kinds of a scenario file and of the command line, each with the one parser it has. Every parser
 * takes the text (or number) as the user wrote it and throws {@link BadValue} saying what is accepted.
 */
final class Values {
    private Values() {
    }

    /** A value that its kind's parser refuses; the message says what is accepted, the caller adds where. */
    static final class BadValue extends IllegalArgumentException {
        private static final long serialVersionUID = 1L;

        BadValue(String message) {
            super(message);
        }
    }

    private static final BigInteger TWO_64 = BigInteger.ONE.shiftLeft(64);

    /** How {@link Size} values are written, for messages and the documentation. */
    static final String SIZE_FORM = "a whole number of bytes, decimal or 0x hex, optionally with a unit K, M, G or T"
            + " (KiB, MiB, GiB, TiB: powers of 1024), as a JSON number or string: 4096, \"0x4000\", \"16K\","
            + " \"1 MiB\"";

    private static final Pattern SIZE = Pattern.compile("(0[xX][0-9a-fA-F]+|[0-9]+) ?(?:([kKmMgGtT])(?:iB)?)?");

    /** A byte count. */
    record Size(long bytes) {
        /**
         * @param text as written
         * @return the size
         * @throws BadValue if it is not a size or does not fit 63 bits
         */
        static Size parse(String text) {
            Matcher m = SIZE.matcher(text);
            if (!m.matches()) {
                throw new BadValue(quote(text) + " is not a size: expected " + SIZE_FORM);
            }
            BigInteger n = number(m.group(1));
            if (m.group(2) != null) {
                n = n.shiftLeft(10 * ("KMGT".indexOf(Character.toUpperCase(m.group(2).charAt(0))) + 1));
            }
            return of(n, quote(text));
        }

        static Size of(BigInteger n, String shown) {
            if (n.bitLength() > 63) {
                throw new BadValue(shown + " is too large: a size is at most 2^63 - 1 bytes");
            }
            return new Size(n.longValueExact());
        }

        @Override
        public String toString() {
            return Long.toString(bytes);
        }
    }

    /** How {@link Address} values are written. */
    static final String ADDRESS_FORM = "an unsigned 64-bit address, 0 to 0xffffffffffffffff, as a JSON string in"
            + " hex (\"0x40000000\") or decimal, or a JSON number";

    /** A 64-bit unsigned bus or IO virtual address, held in a long's bits. */
    record Address(long value) {
        static Address parse(String text) {
            String t = text.strip();
            if (!t.matches("0[xX][0-9a-fA-F]+|[0-9]+")) {
                throw new BadValue(quote(text) + " is not an address: expected " + ADDRESS_FORM);
            }
            return of(number(t), quote(text));
        }

        static Address of(BigInteger n, String shown) {
            if (n.signum() < 0 || n.compareTo(TWO_64) >= 0) {
                throw new BadValue(shown + " is not an address: expected " + ADDRESS_FORM);
            }
            return new Address(n.longValue());
        }

        @Override
        public String toString() {
            return String.format("0x%x", value);
        }
    }

    /** How {@link Iova} values are written. */
    static final String IOVA_FORM = "\"any\" (the backend picks), \"phys\" (the buffer's physical address, for"
            + " noiommu) or " + ADDRESS_FORM;

    /**
     * Where a map puts its buffer in the device's address space.
     *
     * @param keyword {@code any}, {@code phys}, or null for {@link #address}
     * @param address the IO virtual address when no keyword
     */
    record Iova(String keyword, Address address) {
        static Iova parse(String text) {
            if (text.equals("any") || text.equals("phys")) {
                return new Iova(text, null);
            }
            try {
                return new Iova(null, Address.parse(text));
            } catch (BadValue e) {
                throw new BadValue(quote(text) + " is not an iova: expected " + IOVA_FORM);
            }
        }

        @Override
        public String toString() {
            return keyword != null ? keyword : address.toString();
        }
    }

    /** How {@link Prot} values are written. */
    static final String PROT_FORM = "\"r\" (the device may read), \"w\" (the device may write) or \"rw\"";

    /** A mapping's protection, {@link IommuProt} bits. */
    record Prot(int bits) {
        static Prot parse(String text) {
            return switch (text) {
                case "r" -> new Prot(IommuProt.READ);
                case "w" -> new Prot(IommuProt.WRITE);
                case "rw" -> new Prot(IommuProt.READ | IommuProt.WRITE);
                default -> throw new BadValue(quote(text) + " is not a protection: expected " + PROT_FORM);
            };
        }
    }

    /** How {@link Memlock} values are written. */
    static final String MEMLOCK_FORM = "\"unlimited\" or a size: " + SIZE_FORM;

    /** An RLIMIT_MEMLOCK value: bytes, or {@code unlimited} (RLIM_INFINITY). */
    record Memlock(long bytes) {
        static Memlock parse(String text) {
            if (text.equals("unlimited")) {
                return new Memlock(-1);
            }
            try {
                return new Memlock(Size.parse(text).bytes());
            } catch (BadValue e) {
                throw new BadValue(quote(text) + " is not a memlock limit: expected " + MEMLOCK_FORM);
            }
        }

        boolean unlimited() {
            return bytes < 0;
        }

        @Override
        public String toString() {
            return unlimited() ? "unlimited" : Long.toString(bytes);
        }
    }

    /** The iommu types by name, in the order the documentation lists them. */
    static final String TYPE_FORM = "\"TYPE1\", \"TYPE1v2\", \"NOIOMMU\", \"SWIOTLB\" or \"ANY\" (the best the"
            + " container offers: TYPE1v2, then SWIOTLB, then NOIOMMU)";

    /** A VFIO iommu type, 0 for any. */
    record IommuType(int value) {
        static IommuType parse(String text) {
            return switch (text) {
                case "TYPE1" -> new IommuType(Vfio.TYPE1_IOMMU);
                case "TYPE1v2" -> new IommuType(Vfio.TYPE1v2_IOMMU);
                case "NOIOMMU" -> new IommuType(Vfio.NOIOMMU_IOMMU);
                case "SWIOTLB" -> new IommuType(Vfio.SWIOTLB_IOMMU);
                case "ANY" -> new IommuType(0);
                default -> throw new BadValue(quote(text) + " is not an iommu type: expected " + TYPE_FORM);
            };
        }

        /**
         * Version 1's reading: any case, with or without {@code VFIO_} and {@code _IOMMU}, or the number.
         *
         * @param text as a version 1 file wrote it
         * @return the canonical name, or the text unchanged if it names no known type
         */
        static String canonical(String text) {
            String t = text.toUpperCase(Locale.ROOT).replace("VFIO_", "").replace("_IOMMU", "");
            try {
                int n = Integer.decode(t);
                t = n == Vfio.TYPE1_IOMMU ? "TYPE1" : n == Vfio.TYPE1v2_IOMMU ? "TYPE1V2" : n == Vfio.NOIOMMU_IOMMU
                        ? "NOIOMMU" : n == Vfio.SWIOTLB_IOMMU ? "SWIOTLB" : t;
            } catch (NumberFormatException e) {
                // a name
            }
            return switch (t) {
                case "TYPE1", "NOIOMMU", "SWIOTLB", "ANY" -> t;
                case "TYPE1V2" -> "TYPE1v2";
                default -> text;
            };
        }

        @Override
        public String toString() {
            return value == 0 ? "ANY" : Vfio.typeName(value);
        }
    }

    /** The fault-injection capabilities by name. */
    static final String FAULT_FORM = "\"" + FaultInjection.FAIL_PAGE_ALLOC + "\", \"" + FaultInjection.FAILSLAB
            + "\" or \"" + FaultInjection.FAIL_IOMMU + "\"";

    /** A fault-injection capability's name. */
    record FaultName(String name) {
        static FaultName parse(String text) {
            if (text.equals(FaultInjection.FAIL_PAGE_ALLOC) || text.equals(FaultInjection.FAILSLAB)
                    || text.equals(FaultInjection.FAIL_IOMMU)) {
                return new FaultName(text);
            }
            throw new BadValue(quote(text) + " is not a fault-injection capability: expected " + FAULT_FORM);
        }
    }

    /** A sync's direction: for the CPU (device to memory) or for the device (memory to device). */
    enum SyncFor {
        /** {@code VFIO_IOMMU_SYNC_FOR_CPU}: the CPU may read what the device wrote. */
        CPU,
        /** For the device: the device may read what the CPU wrote. */
        DEVICE;

        static final String FORM = "\"cpu\" or \"device\"";

        static SyncFor parse(String text) {
            return switch (text) {
                case "cpu" -> CPU;
                case "device" -> DEVICE;
                default -> throw new BadValue(quote(text) + " is not a sync direction: expected " + FORM);
            };
        }

        @Override
        public String toString() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** The errno names a scenario may expect, for messages and the documentation. */
    static String errnoNames() {
        return String.join(", ", Arrays.stream(Errno.values()).map(Enum::name).toList());
    }

    static Errno errno(String text) {
        for (Errno e : Errno.values()) {
            if (e.name().equals(text)) {
                return e;
            }
        }
        throw new BadValue(quote(text) + " is not an errno name: expected one of " + errnoNames());
    }

    /** The capability names, for messages and the documentation. */
    static String capabilityNames() {
        return String.join(", ", Arrays.stream(Capability.values()).map(Enum::name).toList());
    }

    static Capability capability(String text) {
        for (Capability c : Capability.values()) {
            if (c.name().equals(text)) {
                return c;
            }
        }
        throw new BadValue(quote(text) + " is not a capability: expected one of " + capabilityNames());
    }

    /**
     * The one B:D.F check: {@link PciAddress#parse}.
     *
     * @param text as written
     * @return the address
     */
    static PciAddress pciAddress(String text) {
        try {
            return PciAddress.parse(text);
        } catch (IllegalArgumentException e) {
            throw new BadValue(e.getMessage());
        }
    }

    private static BigInteger number(String digits) {
        return digits.startsWith("0x") || digits.startsWith("0X") ? new BigInteger(digits.substring(2), 16)
                : new BigInteger(digits);
    }

    /**
     * @param text a value as written
     * @return it in double quotes, JSON-escaped, as a message shows a string value
     */
    static String quote(String text) {
        return Json.write(text).strip();
    }
}
