package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Locale;

/**
 * Coverage-guided fuzz targets for the api's parsers. In {@code mvn verify} each runs once per input of its
 * committed regression corpus (the files are the text itself, UTF-8) ({@code src/test/resources/org/iommu4j/api/ParserFuzzTestInputs/<method>/});
 * with {@code -Pfuzz} ({@code JAZZER_FUZZ=1}) Jazzer mutates inputs for the {@code maxDuration} given here.
 * Every target checks that bad text gets the documented error type with a message naming the text, and that
 * good text survives a round trip through {@code toString}.
 */
class ParserFuzzTest {

    @FuzzTest(maxDuration = "60s")
    void pciAddress(byte[] input) {
        String text = new String(input, StandardCharsets.UTF_8);
        PciAddress a;
        try {
            a = PciAddress.parse(text);
        } catch (IllegalArgumentException e) {
            assertThat(e).hasMessageStartingWith("invalid PCI address '" + text + "': ");
            return;
        }
        assertThat(a.toString()).isEqualTo(text.toLowerCase(Locale.ROOT));
        assertThat(PciAddress.parse(a.toString())).isEqualTo(a);
    }

    @FuzzTest(maxDuration = "60s")
    void pciSlotPattern(byte[] input) {
        String text = new String(input, StandardCharsets.UTF_8);
        PciSlotPattern p;
        try {
            p = PciSlotPattern.parse(text);
        } catch (IommuException e) {
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            assertThat(e).hasMessageStartingWith("invalid PCI slot '" + text + "': expected ");
            return;
        }
        assertThat(PciSlotPattern.parse(p.toString())).isEqualTo(p);
        if (p.slot() != PciSlotPattern.ANY && p.function() != PciSlotPattern.ANY) {
            PciAddress exact = new PciAddress(p.domain(), p.bus(), p.slot(), p.function());
            assertThat(p.matches(exact)).isTrue();
        }
    }

    @FuzzTest(maxDuration = "60s")
    void hideList(byte[] input) {
        String text = new String(input, StandardCharsets.UTF_8);
        List<PciSlotPattern> slots;
        try {
            slots = PciSlotPattern.parseList(text);
        } catch (IommuException e) {
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            assertThat(e.getMessage()).startsWith("Error parsing pci_devs_to_hide at \"").endsWith("\"");
            String rest = e.getMessage().substring("Error parsing pci_devs_to_hide at \"".length(),
                    e.getMessage().length() - 1);
            assertThat(text).endsWith(rest);
            return;
        }
        StringBuilder again = new StringBuilder();
        for (PciSlotPattern p : slots) {
            again.append('(').append(p).append(')');
        }
        assertThat(PciSlotPattern.parseList(again.toString())).isEqualTo(slots);
        // the list type the backends keep parses the same text the same way
        assertThat(new PciSlotList(text).snapshot()).isEqualTo(slots);
    }
}
