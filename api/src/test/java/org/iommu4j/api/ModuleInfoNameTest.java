package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

/** A module's name: lower case letters, digits, '-' and '_', starting with a letter or a digit, as modprobe's. */
class ModuleInfoNameTest {
    private static ModuleInfo named(String name) {
        return ModuleInfo.builder(name).version("1.0").description("d").author("a").license("GPL").build();
    }

    @Test
    void namesOfLettersDigitsDashesAndUnderscoresAreAccepted() {
        for (String name : new String[] {"swiotlb", "xen-swiotlb", "vfio_iommu_type1", "9p", "a", "a-_9"}) {
            assertThat(named(name).name()).isEqualTo(name);
        }
    }

    @Test
    void anyOtherNameIsRefusedWithWhatWouldBeValid() {
        for (String name : new String[] {"", "-swiotlb", "_x", "Swiotlb", "xen swiotlb", "noiommu.ko", "é", "a/b"}) {
            assertThatThrownBy(() -> named(name)).as("'%s'", name).isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("module name '" + name + "' is invalid: use lower case letters, digits, '-' and '_',"
                            + " starting with a letter or digit");
        }
        assertThatThrownBy(() -> named(null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("module name 'null' is invalid: use lower case letters, digits, '-' and '_', starting"
                        + " with a letter or digit");
    }
}
