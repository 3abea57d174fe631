package org.iommu4j.api;

/**
 * Types of module parameters, as the kernel's {@code module_param} knows them, with the kernel's parsing
 * rules. Values are kept as text in their normal form ({@link #normalize}), the way
 * {@code /sys/module/<m>/parameters/<p>} shows them.
 */
public enum ParameterType {
    /** A boolean: y/Y/t/T/1/on for true, n/N/f/F/0/off for false; a bare {@code name} means true. Shown as Y or N. */
    BOOL,
    /** A signed 32-bit integer, decimal, or hex with {@code 0x}, or octal with a leading 0. */
    INT,
    /** An unsigned 32-bit integer, in the same bases as {@link #INT}. */
    UINT,
    /** A signed 64-bit integer, in the same bases as {@link #INT}. */
    LONG,
    /** An unsigned 64-bit integer, in the same bases as {@link #INT}. */
    ULONG,
    /** Any text ({@code charp}). */
    STRING;

    /**
     * Parses and normalises a value.
     *
     * @param parameter the parameter's full name, for the message
     * @param raw the value as written, or null for a bare {@code name} with no {@code =}
     * @return the value in normal form: Y/N for BOOL, decimal for numbers, the text for STRING
     * @throws InvalidParameterException naming the parameter, the value and the valid forms
     */
    public String normalize(String parameter, String raw) {
        switch (this) {
            case BOOL:
                return parseBool(parameter, raw) ? "Y" : "N";
            case STRING:
                if (raw == null) {
                    throw new InvalidParameterException(parameter,
                            "parameter " + parameter + " needs a value: write " + parameter + "=<text>");
                }
                return raw;
            default:
                return parseNumber(parameter, raw);
        }
    }

    private static boolean parseBool(String parameter, String raw) {
        if (raw == null) {
            return true;
        }
        String v = raw;
        if (v.length() >= 1) {
            switch (v.charAt(0)) {
                case 'y': case 'Y': case 't': case 'T': case '1':
                    if (v.length() == 1 || v.equalsIgnoreCase("yes") || v.equalsIgnoreCase("true")) {
                        return true;
                    }
                    break;
                case 'n': case 'N': case 'f': case 'F': case '0':
                    if (v.length() == 1 || v.equalsIgnoreCase("no") || v.equalsIgnoreCase("false")) {
                        return false;
                    }
                    break;
                case 'o': case 'O':
                    if (v.equalsIgnoreCase("on")) {
                        return true;
                    }
                    if (v.equalsIgnoreCase("off")) {
                        return false;
                    }
                    break;
                default:
                    break;
            }
        }
        throw new InvalidParameterException(parameter, "invalid value '" + raw + "' for bool parameter "
                + parameter + ": expected one of y, n, 1, 0, on, off");
    }

    private String parseNumber(String parameter, String raw) {
        String kind = name().toLowerCase(java.util.Locale.ROOT);
        String expected = "expected " + (this == INT || this == LONG ? "a signed" : "an unsigned") + " "
                + (this == INT || this == UINT ? "32" : "64") + "-bit integer (decimal, 0x hex or 0 octal)";
        if (raw == null || raw.isEmpty()) {
            throw new InvalidParameterException(parameter,
                    "parameter " + parameter + " needs a value: " + expected);
        }
        String digits = raw;
        boolean negative = false;
        if (digits.startsWith("-") || digits.startsWith("+")) {
            negative = digits.charAt(0) == '-';
            digits = digits.substring(1);
        }
        int radix = 10;
        if (digits.length() > 2 && (digits.startsWith("0x") || digits.startsWith("0X"))) {
            radix = 16;
            digits = digits.substring(2);
        } else if (digits.length() > 1 && digits.startsWith("0")) {
            radix = 8;
            digits = digits.substring(1);
        }
        boolean signed = this == INT || this == LONG;
        try {
            if (digits.isEmpty() || digits.startsWith("+") || digits.startsWith("-")) {
                throw new NumberFormatException();
            }
            if (negative && !signed) {
                throw new NumberFormatException();
            }
            java.math.BigInteger value = new java.math.BigInteger(digits, radix);
            if (negative) {
                value = value.negate();
            }
            int bits = this == INT || this == UINT ? 32 : 64;
            java.math.BigInteger min = signed ? java.math.BigInteger.ONE.shiftLeft(bits - 1).negate()
                    : java.math.BigInteger.ZERO;
            java.math.BigInteger max = signed ? java.math.BigInteger.ONE.shiftLeft(bits - 1).subtract(
                    java.math.BigInteger.ONE) : java.math.BigInteger.ONE.shiftLeft(bits).subtract(
                    java.math.BigInteger.ONE);
            if (value.compareTo(min) < 0 || value.compareTo(max) > 0) {
                throw new InvalidParameterException(parameter, "value '" + raw + "' is out of range for " + kind
                        + " parameter " + parameter + ": expected " + min + " to " + max);
            }
            return value.toString();
        } catch (NumberFormatException e) {
            throw new InvalidParameterException(parameter,
                    "invalid value '" + raw + "' for " + kind + " parameter " + parameter + ": " + expected);
        }
    }
}
