package org.iommu4j.kernel.params;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class CommandLineTest {
    @Test
    void wordsQuotesParenthesesAndDashes() {
        CommandLine line = CommandLine.parse("  quiet noiommu.enable_unsafe_noiommu_mode=1 "
                + "xen-pciback.hide=(0000:06:0d.0)(07:00.*) swiotlb=force console=\"ttyS0 115200\" "
                + "-- single init=/bin/sh");

        assertThat(line.words()).containsExactly("quiet", "noiommu.enable_unsafe_noiommu_mode=1",
                "xen-pciback.hide=(0000:06:0d.0)(07:00.*)", "swiotlb=force", "console=ttyS0 115200");
        assertThat(line.initArguments()).containsExactly("single", "init=/bin/sh");
        assertThat(line.get("quiet")).hasValue("");
        assertThat(line.get("swiotlb")).hasValue("force");
        assertThat(line.get("xen_pciback.hide")).hasValue("(0000:06:0d.0)(07:00.*)");
        assertThat(line.get("init")).isEmpty();
        assertThat(line).hasToString("quiet noiommu.enable_unsafe_noiommu_mode=1 "
                + "xen-pciback.hide=(0000:06:0d.0)(07:00.*) swiotlb=force console=\"ttyS0 115200\" -- single "
                + "init=/bin/sh");
        assertThat(CommandLine.parse(line.toString()).words()).isEqualTo(line.words());
    }

    @Test
    void spacesInsideParenthesesAndQuotedValuesStayInOneWord() {
        CommandLine line = CommandLine.parse("xen-pciback.hide=( 0000:06:0d.0 )( 07:00.* ) "
                + "xen-pciback.permissive=\"1\"");
        assertThat(line.words()).containsExactly("xen-pciback.hide=( 0000:06:0d.0 )( 07:00.* )",
                "xen-pciback.permissive=1");
    }

    @Test
    void moduleParametersMatchDashesAndUnderscoresAndTheLastWins() {
        CommandLine line = CommandLine.parse("xen_pciback.hide=(00:01.0) noiommu.verbose xen-pciback.hide=(06:0d.0)"
                + " xen-pciback.permissive=1");
        Map<String, String> expected = new LinkedHashMap<>();
        expected.put("hide", "(06:0d.0)");
        expected.put("permissive", "1");
        assertThat(line.moduleParameters("xen-pciback")).containsExactlyEntriesOf(expected);
        Map<String, String> bare = new LinkedHashMap<>();
        bare.put("verbose", null);
        assertThat(line.moduleParameters("noiommu")).containsExactlyEntriesOf(bare);
        assertThat(line.moduleParameters("swiotlb")).isEmpty();
        assertThat(CommandLine.parse(null).words()).isEmpty();
    }

    @Test
    void isDecimalAcceptsOneToMaxDigitsAndNothingElse() {
        assertThat(CommandLine.isDecimal("0", 1)).isTrue();
        assertThat(CommandLine.isDecimal("4294967295", 10)).isTrue();
        assertThat(CommandLine.isDecimal("00012", 5)).isTrue();
        assertThat(CommandLine.isDecimal("", 10)).isFalse();
        assertThat(CommandLine.isDecimal("12345678901", 10)).isFalse();
        assertThat(CommandLine.isDecimal("-1", 10)).isFalse();
        assertThat(CommandLine.isDecimal("+1", 10)).isFalse();
        assertThat(CommandLine.isDecimal("1 ", 10)).isFalse();
        assertThat(CommandLine.isDecimal("0x10", 10)).isFalse();
        assertThat(CommandLine.isDecimal("\u0661", 10)).as("a non-ASCII digit").isFalse();
    }
}
