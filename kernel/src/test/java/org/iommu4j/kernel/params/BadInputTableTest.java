package org.iommu4j.kernel.params;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.ParameterType;
import org.iommu4j.api.PciAddress;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every kind of bad input a user can type before anything runs: PCI addresses, kernel command-line words and
 * module parameter values. Each gets its own typed error with a message naming the input and the valid form.
 */
class BadInputTableTest {
    private static final String PCI_FORM = "expected DDDD:BB:DD.F in hex, for example 0000:06:0d.0";

    enum Kind { PCI_ADDRESS, COMMAND_LINE, PARAMETER }

    static Stream<Arguments> badInputs() {
        return Stream.of(
                pci("", "invalid PCI address '': " + PCI_FORM),
                pci("0000:06:0d", "invalid PCI address '0000:06:0d': " + PCI_FORM),
                pci("06:0d.0", "invalid PCI address '06:0d.0': " + PCI_FORM),
                pci("0000:06:20.0", "invalid PCI address '0000:06:20.0': device must be 00 to 1f and function 0 to 7"
                        + " (DDDD:BB:DD.F in hex, for example 0000:06:0d.0)"),
                pci("0000:06:0d.8", "invalid PCI address '0000:06:0d.8': device must be 00 to 1f and function 0 to 7"
                        + " (DDDD:BB:DD.F in hex, for example 0000:06:0d.0)"),
                pci("10000:06:0d.0", "invalid PCI address '10000:06:0d.0': " + PCI_FORM),
                pci("0000:6:0d.0", "invalid PCI address '0000:6:0d.0': " + PCI_FORM),
                pci("g000:06:0d.0", "invalid PCI address 'g000:06:0d.0': " + PCI_FORM),
                pci("0000-06-0d.0", "invalid PCI address '0000-06-0d.0': " + PCI_FORM),
                pci(" 0000:06:0d.0", "invalid PCI address ' 0000:06:0d.0': " + PCI_FORM),
                pci("0000:06:0d.0 ", "invalid PCI address '0000:06:0d.0 ': " + PCI_FORM),
                pci(null, "invalid PCI address 'null': " + PCI_FORM),
                cmd("console=\"ttyS0", "invalid kernel command line word 'console=\"ttyS0': a quote is not closed"),
                cmd("xen-pciback.hide=(0000:06:0d.0", "invalid kernel command line word"
                        + " 'xen-pciback.hide=(0000:06:0d.0': a '(' is not closed"),
                cmd("xen-pciback.hide=0000:06:0d.0)", "invalid kernel command line word"
                        + " 'xen-pciback.hide=0000:06:0d.0)': a ')' closes no '('"),
                cmd("=1", "invalid kernel command line word '=1': the parameter name is empty; expected name=value or"
                        + " module.param=value"),
                cmd(".enable=1", "invalid kernel command line word '.enable=1': the module name is empty; expected"
                        + " module.param=value"),
                cmd("noiommu.=1", "invalid kernel command line word 'noiommu.=1': the parameter name after the '.'"
                        + " is empty; expected module.param=value"),
                cmd("no$iommu=1", "invalid kernel command line word 'no$iommu=1': '$' is not allowed in a parameter"
                        + " name; use letters, digits, '_', '-' and '.' (as in module.param)"),
                cmd("quiet \"=x", "invalid kernel command line word '\"=x': a quote is not closed"),
                cmd("a b\"c", "invalid kernel command line word 'b\"c': a quote is not closed"),
                cmd("swiötlb=force", "invalid kernel command line word 'swiötlb=force': 'ö' is not allowed in a"
                        + " parameter name; use letters, digits, '_', '-' and '.' (as in module.param)"),
                param(ParameterType.BOOL, "yes please", "invalid value 'yes please' for bool parameter m.p:"
                        + " expected one of y, n, 1, 0, on, off"),
                param(ParameterType.BOOL, "2", "invalid value '2' for bool parameter m.p: expected one of y, n, 1,"
                        + " 0, on, off"),
                param(ParameterType.BOOL, "", "invalid value '' for bool parameter m.p: expected one of y, n, 1, 0,"
                        + " on, off"),
                param(ParameterType.BOOL, "ox", "invalid value 'ox' for bool parameter m.p: expected one of y, n, 1,"
                        + " 0, on, off"),
                param(ParameterType.INT, "0x", "invalid value '0x' for int parameter m.p: expected a signed 32-bit"
                        + " integer (decimal, 0x hex or 0 octal)"),
                param(ParameterType.INT, "12abc", "invalid value '12abc' for int parameter m.p: expected a signed"
                        + " 32-bit integer (decimal, 0x hex or 0 octal)"),
                param(ParameterType.INT, "2147483648", "value '2147483648' is out of range for int parameter m.p:"
                        + " expected -2147483648 to 2147483647"),
                param(ParameterType.INT, "-2147483649", "value '-2147483649' is out of range for int parameter m.p:"
                        + " expected -2147483648 to 2147483647"),
                param(ParameterType.INT, "", "parameter m.p needs a value: expected a signed 32-bit integer"
                        + " (decimal, 0x hex or 0 octal)"),
                param(ParameterType.INT, "09", "invalid value '09' for int parameter m.p: expected a signed 32-bit"
                        + " integer (decimal, 0x hex or 0 octal)"),
                param(ParameterType.UINT, "-1", "invalid value '-1' for uint parameter m.p: expected an unsigned"
                        + " 32-bit integer (decimal, 0x hex or 0 octal)"),
                param(ParameterType.UINT, "4294967296", "value '4294967296' is out of range for uint parameter m.p:"
                        + " expected 0 to 4294967295"),
                param(ParameterType.LONG, "9223372036854775808", "value '9223372036854775808' is out of range for"
                        + " long parameter m.p: expected -9223372036854775808 to 9223372036854775807"),
                param(ParameterType.ULONG, "0x10000000000000000", "value '0x10000000000000000' is out of range for"
                        + " ulong parameter m.p: expected 0 to 18446744073709551615"),
                param(ParameterType.ULONG, "--5", "invalid value '--5' for ulong parameter m.p: expected an unsigned"
                        + " 64-bit integer (decimal, 0x hex or 0 octal)"),
                param(ParameterType.STRING, null, "parameter m.p needs a value: write m.p=<text>"),
                Arguments.of(Kind.PARAMETER, "m.speed=9", InvalidParameterException.class, Errno.ENOENT,
                        "m: Unknown parameter `speed'; valid parameters: [p]"));
    }

    private static Arguments pci(String text, String message) {
        return Arguments.of(Kind.PCI_ADDRESS, text, IllegalArgumentException.class, null, message);
    }

    private static Arguments cmd(String text, String message) {
        return Arguments.of(Kind.COMMAND_LINE, text, InvalidParameterException.class, Errno.EINVAL, message);
    }

    private static Arguments param(ParameterType type, String value, String message) {
        return Arguments.of(Kind.PARAMETER, type + ":" + value, InvalidParameterException.class, Errno.EINVAL,
                message);
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("badInputs")
    void eachBadInputGetsItsTypedErrorAndExactMessage(Kind kind, String input, Class<? extends Throwable> type,
            Errno errno, String message) {
        Throwable thrown = catchThrowable(() -> feed(kind, input));
        assertThat(thrown).isInstanceOf(type).hasMessage(message);
        if (errno != null) {
            assertThat(((IommuException) thrown).errno()).isEqualTo(errno);
        }
    }

    @org.junit.jupiter.api.Test
    void theTableIsLargeEnoughAndCoversEveryKind() {
        List<Arguments> rows = badInputs().toList();
        assertThat(rows).hasSizeGreaterThanOrEqualTo(30);
        assertThat(rows.stream().map(a -> a.get()[0]).distinct()).containsExactlyInAnyOrder((Object[]) Kind.values());
    }

    private static void feed(Kind kind, String input) {
        switch (kind) {
            case PCI_ADDRESS -> PciAddress.parse(input);
            case COMMAND_LINE -> CommandLine.parse(input);
            default -> {
                if (input.startsWith("m.")) {
                    new ModuleParameterSet("m", List.of(new ParameterSpec("p", ParameterType.INT, "0", "p", true)),
                            Map.of(), Map.of(input.substring(2, input.indexOf('=')), "9"));
                    return;
                }
                int colon = input.indexOf(':');
                String value = input.substring(colon + 1);
                ParameterType.valueOf(input.substring(0, colon)).normalize("m.p", value.equals("null") ? null : value);
            }
        }
    }

    @org.junit.jupiter.api.Test
    void everyValidPciAddressSurvivesARoundTrip() {
        Seeded.forEach("BadInputTableTest.pciRoundTrip", 1000, r -> {
            PciAddress a = new PciAddress(r.nextInt(0x10000), r.nextInt(0x100), r.nextInt(0x20), r.nextInt(8));
            assertThat(PciAddress.parse(a.toString())).isEqualTo(a);
            assertThat(PciAddress.parse(a.toString().toUpperCase(java.util.Locale.ROOT))).isEqualTo(a);
        });
        // the corners
        for (int[] c : new int[][] {{0, 0, 0, 0}, {0xffff, 0xff, 0x1f, 7}}) {
            PciAddress a = new PciAddress(c[0], c[1], c[2], c[3]);
            assertThat(PciAddress.parse(a.toString())).isEqualTo(a);
        }
    }
}
