package org.iommu4j.kernel.params;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.ParameterType;
import org.junit.jupiter.api.Test;

class ModuleParameterSetTest {
    private static final List<ParameterSpec> SPECS = List.of(
            new ParameterSpec("enable_unsafe_noiommu_mode", ParameterType.BOOL, "N",
                    "Enable UNSAFE, no-IOMMU mode", true),
            new ParameterSpec("nslabs", ParameterType.ULONG, "32768", "slots in the pool", false));

    @Test
    void defaultsThenCommandLineThenTheCallInNormalForm() {
        ModuleParameterSet p = new ModuleParameterSet("noiommu", SPECS, Map.of("enable_unsafe_noiommu_mode", "1"),
                Map.of("nslabs", "0x100"));
        assertThat(p.values()).containsExactly(Map.entry("enable_unsafe_noiommu_mode", "Y"),
                Map.entry("nslabs", "256"));
        assertThat(p.getBool("enable_unsafe_noiommu_mode")).isTrue();
        assertThat(p.getLong("nslabs")).isEqualTo(256);

        ModuleParameterSet overridden = new ModuleParameterSet("noiommu", SPECS,
                Map.of("enable_unsafe_noiommu_mode", "1"), Map.of("enable_unsafe_noiommu_mode", "off"));
        assertThat(overridden.getBool("enable_unsafe_noiommu_mode")).isFalse();
        ModuleParameterSet bare = new ModuleParameterSet("noiommu", SPECS,
                java.util.Collections.singletonMap("enable_unsafe_noiommu_mode", null), Map.of());
        assertThat(bare.get("enable_unsafe_noiommu_mode")).isEqualTo("Y");
    }

    @Test
    void dashesAndUnderscoresInANameAreTheSameAsTheKernelMatchesThem() {
        ModuleParameterSet p = new ModuleParameterSet("noiommu", SPECS, Map.of("enable-unsafe-noiommu-mode", "1"),
                Map.of());
        assertThat(p.values()).containsEntry("enable_unsafe_noiommu_mode", "Y");
        assertThat(p.getBool("enable-unsafe_noiommu-mode")).isTrue();
        p.set("enable-unsafe-noiommu-mode", "0");
        assertThat(p.values()).containsExactly(Map.entry("enable_unsafe_noiommu_mode", "N"),
                Map.entry("nslabs", "32768"));
    }

    @Test
    void anUnsignedLongAboveLongMaxComesBackAsTheSame64Bits() {
        ModuleParameterSet p = new ModuleParameterSet("swiotlb", SPECS, Map.of(),
                Map.of("nslabs", "0xffffffffffffffff"));
        assertThat(p.get("nslabs")).isEqualTo("18446744073709551615");
        assertThat(p.getLong("nslabs")).isEqualTo(-1L);
        assertThat(Long.toUnsignedString(p.getLong("nslabs"))).isEqualTo("18446744073709551615");
    }

    @Test
    void runTimeChangesReachListenersWhoMayRefuseThem() {
        ModuleParameterSet p = new ModuleParameterSet("noiommu", SPECS, Map.of(), Map.of());
        List<String> seen = new ArrayList<>();
        p.addListener((name, old, now) -> seen.add(name + ":" + old + "->" + now));
        p.set("enable_unsafe_noiommu_mode", "y");
        assertThat(seen).containsExactly("enable_unsafe_noiommu_mode:N->Y");

        p.addListener((name, old, now) -> {
            throw new IommuException(Errno.EBUSY, "noiommu: groups exist");
        });
        assertThatThrownBy(() -> p.set("enable_unsafe_noiommu_mode", "n")).hasMessage("noiommu: groups exist");
        assertThat(p.get("enable_unsafe_noiommu_mode")).isEqualTo("Y");
    }

    @Test
    void readOnlyAndUnknownParametersAreRefusedByName() {
        ModuleParameterSet p = new ModuleParameterSet("swiotlb", SPECS, Map.of(), Map.of());
        assertThatThrownBy(() -> p.set("nslabs", "1024"))
                .isInstanceOf(InvalidParameterException.class)
                .hasMessage("parameter swiotlb.nslabs is read-only after load (sysfs mode 0444): give it on the"
                        + " command line or at load")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> p.get("force"))
                .hasMessage("swiotlb: Unknown parameter `force'; valid parameters: [enable_unsafe_noiommu_mode,"
                        + " nslabs]");
        assertThatThrownBy(() -> new ModuleParameterSet("plain", List.of(), Map.of("x", "1"), Map.of()))
                .hasMessage("plain: Unknown parameter `x'; valid parameters: none");
        assertThat(p.get("nslabs")).isEqualTo("32768");
    }
}
