package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

class PciSlotPatternTest {
    @Test
    void theSixFormsOfTheHideListParse() {
        assertThat(PciSlotPattern.parseList("(0000:06:0d.0)(0001:07:00.*) ( 0000:08:*.*) (09:01.2)(0a:03.*)(0b:*.*)"))
                .extracting(PciSlotPattern::toString)
                .containsExactly("0000:06:0d.0", "0001:07:00.*", "0000:08:*.*", "0000:09:01.2", "0000:0a:03.*",
                        "0000:0b:*.*");
        assertThat(PciSlotPattern.parseList("")).isEmpty();
    }

    static Stream<Arguments> matching() {
        return Stream.of(
                Arguments.of("0000:06:0d.0", "0000:06:0d.0", true),
                Arguments.of("0000:06:0d.0", "0000:06:0d.1", false),
                Arguments.of("0000:07:00.*", "0000:07:00.5", true),
                Arguments.of("0000:07:00.*", "0000:07:01.0", false),
                Arguments.of("0000:07:*.*", "0000:07:1f.7", true),
                Arguments.of("0000:07:*.*", "0000:08:00.0", false),
                Arguments.of("07:00.*", "0001:07:00.0", false),
                Arguments.of("07:00.*", "0000:07:00.3", true));
    }

    @ParameterizedTest(name = "{0} matches {1}: {2}")
    @MethodSource("matching")
    void wildcardsMatchWhatTheyShould(String pattern, String address, boolean matches) {
        assertThat(PciSlotPattern.parse(pattern).matches(PciAddress.parse(address))).isEqualTo(matches);
    }

    static Stream<Arguments> badLists() {
        return Stream.of(
                Arguments.of("(0000:06:0d.0)junk", "junk"),
                Arguments.of("(0000:06:0d.0)(0000:06:0d)", "(0000:06:0d)"),
                Arguments.of("0000:06:0d.0", "0000:06:0d.0"),
                // sscanf's format has no space before ')': "(06:0d.0 )" is refused, as the kernel refuses it
                Arguments.of("(06:0d.0 )", "(06:0d.0 )"),
                Arguments.of("(06:0d.0)( 0000:08:*.* )", "( 0000:08:*.* )"),
                Arguments.of("(0000:06:*.1)", "(0000:06:*.1)"),
                Arguments.of("(0000:06:0d.0", "(0000:06:0d.0"),
                Arguments.of("()", "()"),
                Arguments.of("   ", "   "));
    }

    @ParameterizedTest(name = "[{index}] \"{0}\"")
    @MethodSource("badLists")
    void aBadEntryStopsTheParseWithTheKernelsMessage(String list, String rest) {
        assertThatThrownBy(() -> PciSlotPattern.parseList(list))
                .isInstanceOf(IommuException.class)
                .hasMessage("Error parsing pci_devs_to_hide at \"" + rest + "\"")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"(0000:06:20.0)", "(0000:06:0d.8)", "(10000:06:0d.0)",
        "(100:0d.0)"})
    void anOutOfRangeEntryIsEinvalWithoutTheParseErrorAsPcistubDeviceIdAddRefusesIt(String list) {
        assertThatThrownBy(() -> PciSlotPattern.parseList("(06:0d.0) " + list))
                .isInstanceOf(IommuException.class)
                .hasMessage("xen-pciback: cannot hide " + list + ": domain 0-ffff, bus 0-ff, device 0-1f, function 0-7"
                        + " (pcistub_device_id_add refuses it, EINVAL)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
    }

    @Test
    void whiteSpaceBeforeANumberIsSkippedAsPercentXSkipsIt() {
        assertThat(PciSlotPattern.parseList(" ( 0000: 06: 0d. 0) ")).extracting(PciSlotPattern::toString)
                .containsExactly("0000:06:0d.0");
    }

    @Test
    void aSingleBadSlotNamesTheValidForms() {
        assertThatThrownBy(() -> PciSlotPattern.parse("06:0d"))
                .hasMessage("invalid PCI slot '06:0d': expected DDDD:BB:SS.F or BB:SS.F in hex, with * for the"
                        + " device and function (DDDD:BB:SS.*, DDDD:BB:*.*)");
    }
}
