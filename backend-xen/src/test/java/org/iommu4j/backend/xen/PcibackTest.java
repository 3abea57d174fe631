package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.LoadedModule;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Giving devices to the guest the pciback way: hide= at load, new_slot/remove_slot and bind/unbind after. */
class PcibackTest {
    private static final List<String> DEVICES = List.of("0000:06:0d.0", "0000:07:00.0", "0000:07:00.1",
            "0000:07:01.0", "0001:07:00.0", "0000:08:00.0");

    private static Host host(String cmdline) {
        Host.Builder b = Host.builder().commandLine(cmdline);
        DEVICES.forEach(d -> b.pciDevice(PciDeviceSpec.of(d)));
        Host host = b.build();
        host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"), "class path");
        return host;
    }

    private static LoadedModule loadXen(Host host) {
        return host.modules().insert(new XenProvider(), Map.of("p2m", "contiguous"), "class path");
    }

    private static List<String> assigned(Host host) {
        return host.iommu().groups().stream().flatMap(g -> g.busDevices().stream()).map(d -> d.name()).sorted()
                .toList();
    }

    static Stream<Arguments> goodHideLists() {
        return Stream.of(
                Arguments.of("(0000:06:0d.0)", List.of("0000:06:0d.0")),
                Arguments.of("(0000:07:00.*)", List.of("0000:07:00.0", "0000:07:00.1")),
                Arguments.of("(0000:07:*.*)", List.of("0000:07:00.0", "0000:07:00.1", "0000:07:01.0")),
                Arguments.of("(06:0d.0)", List.of("0000:06:0d.0")),
                Arguments.of("(07:00.*)", List.of("0000:07:00.0", "0000:07:00.1")),
                Arguments.of("(07:*.*)", List.of("0000:07:00.0", "0000:07:00.1", "0000:07:01.0")),
                Arguments.of("(0001:07:00.0)", List.of("0001:07:00.0")),
                Arguments.of(" (06:0d.0) ( 0000:08:00.0 )", List.of("0000:06:0d.0", "0000:08:00.0")));
    }

    @ParameterizedTest(name = "xen.hide={0}")
    @MethodSource("goodHideLists")
    void everyFormTheKernelAcceptsGivesTheGuestExactlyThoseDevices(String hide, List<String> expected) {
        Host host = host("xen.hide=\"" + hide + "\"");
        loadXen(host);
        assertThat(assigned(host)).containsExactlyElementsOf(expected);
        assertThat(host.iommu().groups()).allMatch(Group::isolated);
    }

    static Stream<Arguments> badHideLists() {
        return Stream.of(
                Arguments.of("(0000:06:0d.0)junk", "junk"),
                Arguments.of("(0000:06:0d)", "(0000:06:0d)"),
                Arguments.of("0000:06:0d.0", "0000:06:0d.0"),
                Arguments.of("(0000:06:20.0)", "(0000:06:20.0)"),
                Arguments.of("(06:*.3)", "(06:*.3)"),
                Arguments.of("(06:0d.0)(", "("));
    }

    @ParameterizedTest(name = "xen.hide={0}")
    @MethodSource("badHideLists")
    void aBadEntryFailsTheLoadWithTheKernelsMessageAndNothingIsAssigned(String hide, String rest) {
        Host host = host("xen.hide=\"" + hide + "\"");
        assertThatThrownBy(() -> loadXen(host))
                .isInstanceOf(IommuException.class)
                .hasMessage("Error parsing pci_devs_to_hide at \"" + rest + "\"")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.modules().find("xen")).isEmpty();
        assertThat(host.iommu().groups()).isEmpty();
    }

    private static ModuleAttribute attribute(LoadedModule xen, String name) {
        return xen.backend().attributes().stream().filter(a -> a.name().equals(name)).findFirst().orElseThrow();
    }

    @Test
    void bindAndUnbindGiveAndTakeOneDeviceAndNewSlotTakesWildcards() {
        Host host = host("");
        LoadedModule xen = loadXen(host);
        attribute(xen, "bind").write("0000:08:00.0");
        attribute(xen, "new_slot").write("0000:07:00.*");
        assertThat(assigned(host)).containsExactly("0000:07:00.0", "0000:07:00.1", "0000:08:00.0");
        assertThat(attribute(xen, "slots").read()).isEqualTo("0000:08:00.0\n0000:07:00.*\n");

        attribute(xen, "unbind").write("0000:08:00.0");
        attribute(xen, "remove_slot").write("0000:07:00.*");
        assertThat(assigned(host)).isEmpty();
        assertThatThrownBy(() -> attribute(xen, "bind").write("0000:07:00.*"))
                .hasMessage("bind takes one device, DDDD:BB:SS.F without wildcards; use new_slot for 0000:07:00.*");
        assertThatThrownBy(() -> attribute(xen, "unbind").write("0000:06:0d.0"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
        assertThatThrownBy(() -> attribute(xen, "new_slot").write("banana"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
    }

    @Test
    void aHotAddedDeviceOnTheListIsGivenToTheGuest() {
        Host host = host("xen.hide=(0000:09:00.*)");
        loadXen(host);
        host.buses().addPci(PciDeviceSpec.of("0000:09:00.0"));
        assertThat(assigned(host)).containsExactly("0000:09:00.0");
    }
}
