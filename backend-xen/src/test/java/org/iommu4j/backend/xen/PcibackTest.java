package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Holding devices for guests the pciback way, in Domain-0: {@code xen-pciback.hide=} (or this module's
 * {@code hide}) at load; after it, {@code new_slot}/{@code remove_slot} edit the slot list and
 * {@code bind}/{@code unbind} seize and release one listed device. A seized device is quarantined by the
 * hypervisor (blocked in Domain-0) until the toolstack gives it to a guest; the rest are Domain-0's own.
 */
class PcibackTest {
    private static final List<String> DEVICES = List.of("0000:06:0d.0", "0000:07:00.0", "0000:07:00.1",
            "0000:07:01.0", "0001:07:00.0", "0000:08:00.0");

    /** Domain-0 of a platform with the devices, booted with the command line, swiotlb loaded. */
    private static Host host(String cmdline) {
        XenPlatform.Builder b = XenPlatform.builder().machineMemory(4L << 30).dom0Memory(256L << 20)
                .dom0CommandLine(cmdline);
        DEVICES.forEach(d -> b.pciDevice(PciDeviceSpec.of(d)));
        Host host = b.build().dom0().host();
        host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"), "class path");
        return host;
    }

    private static LoadedModule loadXen(Host host) {
        return host.modules().insert(new XenProvider(), Map.of(), "class path");
    }

    /** The devices pciback holds for guests: quarantined by the hypervisor, so blocked in Domain-0. */
    private static List<String> assigned(Host host) {
        return host.iommu().groups().stream().filter(g -> g.sysfsType().equals("blocked"))
                .flatMap(g -> g.busDevices().stream()).map(d -> d.name()).sorted().toList();
    }

    /** The other devices: Domain-0's own, each in a DMA domain. */
    private static List<String> blocked(Host host) {
        return host.iommu().groups().stream().filter(g -> g.sysfsType().equals("DMA"))
                .flatMap(g -> g.busDevices().stream()).map(d -> d.name()).sorted().toList();
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
                Arguments.of(" (06:0d.0) ( 0000:08:00.0)", List.of("0000:06:0d.0", "0000:08:00.0")),
                // %x skips white space before each number, so this is one device too
                Arguments.of("(0000: 08: 00. 0)", List.of("0000:08:00.0")));
    }

    static Stream<Arguments> goodHideListsBothSpellings() {
        return goodHideLists().flatMap(a -> Stream.of("xen.hide", "xen-pciback.hide")
                .map(key -> Arguments.of(key, a.get()[0], a.get()[1])));
    }

    @ParameterizedTest(name = "{0}={1}")
    @MethodSource("goodHideListsBothSpellings")
    void everyFormTheKernelAcceptsGivesTheGuestExactlyThoseDevices(String key, String hide, List<String> expected) {
        Host host = host(key + "=\"" + hide + "\"");
        loadXen(host);
        assertThat(assigned(host)).containsExactlyElementsOf(expected);
        assertThat(blocked(host)).containsExactlyElementsOf(DEVICES.stream().filter(d -> !expected.contains(d))
                .sorted().toList());
        assertThat(host.iommu().groups()).allMatch(Group::isolated);
    }

    static Stream<Arguments> badHideLists() {
        return Stream.of(
                Arguments.of("(0000:06:0d.0)junk", "junk"),
                Arguments.of("(0000:06:0d)", "(0000:06:0d)"),
                Arguments.of("0000:06:0d.0", "0000:06:0d.0"),
                Arguments.of("(06:0d.0 )", "(06:0d.0 )"),
                Arguments.of(" (06:0d.0) ( 0000:08:00.0 )", "( 0000:08:00.0 )"),
                Arguments.of("(06: *.*)", "(06: *.*)"),
                Arguments.of("(06:*.3)", "(06:*.3)"),
                Arguments.of("(06:0d.0)(", "("));
    }

    static Stream<Arguments> badHideListsBothSpellings() {
        return badHideLists().flatMap(a -> Stream.of("xen.hide", "xen-pciback.hide")
                .map(key -> Arguments.of(key, a.get()[0], a.get()[1])));
    }

    @ParameterizedTest(name = "{0}={1}")
    @MethodSource("badHideListsBothSpellings")
    void aBadEntryFailsTheLoadWithTheKernelsMessageAndNothingIsAssigned(String key, String hide, String rest) {
        Host host = host(key + "=\"" + hide + "\"");
        assertThatThrownBy(() -> loadXen(host))
                .isInstanceOf(IommuException.class)
                .hasMessage("Error parsing pci_devs_to_hide at \"" + rest + "\"")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.modules().find("xen")).isEmpty();
        assertThat(host.iommu().groups()).isEmpty();
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"(0000:06:20.0)", "(06:0d.8)", "(10000:06:0d.0)",
        "(100:00.0)", "(06:0d.0)(07:20.*)"})
    void anOutOfRangeEntryIsEinvalWithoutTheParseErrorLineAsPcistubDeviceIdAddRefusesIt(String hide) {
        Host host = host("xen-pciback.hide=" + hide);
        String bad = hide.substring(hide.lastIndexOf('('));
        assertThatThrownBy(() -> loadXen(host))
                .isInstanceOf(IommuException.class)
                .hasMessage("xen-pciback: cannot hide " + bad + ": domain 0-ffff, bus 0-ff, device 0-1f, function 0-7"
                        + " (pcistub_device_id_add refuses it, EINVAL)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.log().messages()).noneMatch(l -> l.contains("Error parsing"));
        assertThat(host.modules().find("xen")).isEmpty();
        assertThat(host.iommu().groups()).isEmpty();
    }

    @Test
    void bothSpellingsTogetherGiveTheGuestTheDevicesOfBoth() {
        Host host = host("xen-pciback.hide=(0000:06:0d.0) xen.hide=(08:00.0)");
        LoadedModule xen = loadXen(host);
        assertThat(assigned(host)).containsExactly("0000:06:0d.0", "0000:08:00.0");
        assertThat(attribute(xen, "slots").read()).isEqualTo("0000:06:0d.0\n0000:08:00.0\n");
    }

    private static ModuleAttribute attribute(LoadedModule xen, String name) {
        return xen.backend().attributes().stream().filter(a -> a.name().equals(name)).findFirst().orElseThrow();
    }

    private static String functions(String slot, int from, int to) {
        return IntStream.rangeClosed(from, to).mapToObj(f -> slot + "." + f + "\n").collect(Collectors.joining());
    }

    @Test
    void aWildcardIsListedOneFunctionPerLineAndOneFunctionCanBeUnboundAndRemoved() {
        Host host = host("xen-pciback.hide=(0000:07:00.*)");
        LoadedModule xen = loadXen(host);
        assertThat(attribute(xen, "slots").read()).isEqualTo(functions("0000:07:00", 0, 7));
        assertThat(assigned(host)).containsExactly("0000:07:00.0", "0000:07:00.1");

        attribute(xen, "unbind").write("0000:07:00.1");
        assertThat(assigned(host)).containsExactly("0000:07:00.0");
        assertThat(host.pci("0000:07:00.1").group().sysfsType()).isEqualTo("DMA");
        attribute(xen, "remove_slot").write("0000:07:00.1");
        assertThat(attribute(xen, "slots").read()).isEqualTo("0000:07:00.0\n" + functions("0000:07:00", 2, 7));
        assertThatThrownBy(() -> attribute(xen, "remove_slot").write("0000:07:00.1"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);

        // an entry already listed is not listed twice, as pcistub_device_id_add_list skips it
        attribute(xen, "new_slot").write("07:00.*");
        assertThat(attribute(xen, "slots").read()).isEqualTo("0000:07:00.0\n" + functions("0000:07:00", 2, 7)
                + "0000:07:00.1\n");
        attribute(xen, "remove_slot").write("0000:07:00.*");
        assertThat(attribute(xen, "slots").read()).isEmpty();
        assertThat(assigned(host)).containsExactly("0000:07:00.0");
    }

    @Test
    void aBusWildcardIsListedAsEveryDeviceAndFunctionOnTheBus() {
        Host host = host("xen-pciback.hide=(07:*.*)");
        LoadedModule xen = loadXen(host);
        String slots = attribute(xen, "slots").read();
        assertThat(slots.lines()).hasSize(256).allMatch(l -> l.matches("0000:07:[01][0-9a-f]\\.[0-7]"));
        assertThat(slots).startsWith("0000:07:00.0\n0000:07:00.1\n").endsWith("0000:07:1f.7\n");
    }

    /*
     * The state every bind/unbind row starts from: 0000:07:00.1 hidden at load (listed and bound); 0000:08:00.0
     * and 0000:0a:00.0 written to new_slot (listed, not bound; the second is not present); every other device
     * neither listed nor bound.
     */
    private static final String SLOTS_BEFORE = "0000:07:00.1\n0000:08:00.0\n0000:0a:00.0\n";

    private static LoadedModule listedAndBound(Host host) {
        LoadedModule xen = host.modules().insert(new XenProvider(), Map.of("hide", "(0000:07:00.1)"), "class path");
        attribute(xen, "new_slot").write("0000:08:00.0");
        attribute(xen, "new_slot").write("0000:0a:00.0");
        assertThat(attribute(xen, "slots").read()).isEqualTo(SLOTS_BEFORE);
        assertThat(assigned(host)).containsExactly("0000:07:00.1");
        return xen;
    }

    private static final String BAD_FORM = " takes one device, DDDD:BB:SS.F or BB:SS.F in hex without wildcards; '";

    static Stream<Arguments> bindTable() {
        List<String> before = List.of("0000:07:00.1");
        List<String> bound = List.of("0000:07:00.1", "0000:08:00.0");
        return Stream.of(
                // good: one present device on the slot list, in each form the PCI core's bind takes
                Arguments.of("0000:08:00.0", null, null, bound),
                Arguments.of("08:00.0", null, null, bound),
                Arguments.of("0000:08:00.0\n", null, null, bound),
                Arguments.of(" 08:00.0 ", null, null, bound),
                // malformed
                Arguments.of("banana", "bind" + BAD_FORM + "banana' is not one", Errno.EINVAL, before),
                Arguments.of("0000:08:00", "bind" + BAD_FORM + "0000:08:00' is not one", Errno.EINVAL, before),
                Arguments.of("0000:08:20.0", "bind" + BAD_FORM + "0000:08:20.0' is not one", Errno.EINVAL, before),
                Arguments.of("0000:08:00.8", "bind" + BAD_FORM + "0000:08:00.8' is not one", Errno.EINVAL, before),
                Arguments.of("", "bind" + BAD_FORM + "' is not one", Errno.EINVAL, before),
                // wildcards
                Arguments.of("0000:08:00.*", "bind takes one device, DDDD:BB:SS.F without wildcards; use new_slot"
                        + " for 0000:08:00.*", Errno.EINVAL, before),
                Arguments.of("07:*.*", "bind takes one device, DDDD:BB:SS.F without wildcards; use new_slot for"
                        + " 0000:07:*.*", Errno.EINVAL, before),
                // listed, but no such device
                Arguments.of("0000:0a:00.0", "pciback: no PCI device at 0000:0a:00.0", Errno.ENODEV, before),
                // present, but not listed
                Arguments.of("0000:06:0d.0", "pciback: 0000:06:0d.0 is not on the slot list: write it to new_slot"
                        + " first", Errno.ENODEV, before),
                Arguments.of("0001:07:00.0", "pciback: 0001:07:00.0 is not on the slot list: write it to new_slot"
                        + " first", Errno.ENODEV, before),
                // already bound
                Arguments.of("0000:07:00.1", "pciback: 0000:07:00.1 is already bound to pciback", Errno.EBUSY,
                        before),
                Arguments.of("07:00.1", "pciback: 0000:07:00.1 is already bound to pciback", Errno.EBUSY, before));
    }

    @ParameterizedTest(name = "bind \"{0}\" -> {2}")
    @MethodSource("bindTable")
    void bindTakesOneListedPresentUnboundDeviceAndRefusesAnythingElseChangingNothing(String text, String message,
            Errno errno, List<String> assignedAfter) {
        Host host = host("");
        LoadedModule xen = listedAndBound(host);
        if (message == null) {
            attribute(xen, "bind").write(text);
        } else {
            assertThatThrownBy(() -> attribute(xen, "bind").write(text))
                    .isInstanceOf(IommuException.class)
                    .hasMessage(message)
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(errno);
        }
        assertState(host, xen, assignedAfter);
    }

    static Stream<Arguments> unbindTable() {
        List<String> before = List.of("0000:07:00.1");
        return Stream.of(
                // good: the bound device, in each form
                Arguments.of("0000:07:00.1", null, null, List.of()),
                Arguments.of("07:00.1", null, null, List.of()),
                Arguments.of("0000:07:00.1\n", null, null, List.of()),
                // malformed
                Arguments.of("banana", "unbind" + BAD_FORM + "banana' is not one", Errno.EINVAL, before),
                Arguments.of("0000:07:00", "unbind" + BAD_FORM + "0000:07:00' is not one", Errno.EINVAL, before),
                Arguments.of("0000:07:00.1.0", "unbind" + BAD_FORM + "0000:07:00.1.0' is not one", Errno.EINVAL,
                        before),
                Arguments.of("10000:07:00.1", "unbind" + BAD_FORM + "10000:07:00.1' is not one", Errno.EINVAL,
                        before),
                // wildcards: unbinding is one function at a time, and new_slot is no answer to it
                Arguments.of("0000:07:00.*", "unbind takes one device, DDDD:BB:SS.F without wildcards; unbind the"
                        + " devices 0000:07:00.* covers one at a time", Errno.EINVAL, before),
                Arguments.of("07:*.*", "unbind takes one device, DDDD:BB:SS.F without wildcards; unbind the"
                        + " devices 0000:07:*.* covers one at a time", Errno.EINVAL, before),
                // listed, but no such device
                Arguments.of("0000:0a:00.0", "pciback: no PCI device at 0000:0a:00.0", Errno.ENODEV, before),
                // listed, present, not bound
                Arguments.of("0000:08:00.0", "pciback: 0000:08:00.0 is not bound to pciback", Errno.ENODEV, before),
                // present, neither listed nor bound
                Arguments.of("0000:06:0d.0", "pciback: 0000:06:0d.0 is not bound to pciback", Errno.ENODEV, before),
                Arguments.of("0000:07:00.0", "pciback: 0000:07:00.0 is not bound to pciback", Errno.ENODEV, before));
    }

    @ParameterizedTest(name = "unbind \"{0}\" -> {2}")
    @MethodSource("unbindTable")
    void unbindReleasesOneBoundDeviceKeepingItListedAndRefusesAnythingElseChangingNothing(String text,
            String message, Errno errno, List<String> assignedAfter) {
        Host host = host("");
        LoadedModule xen = listedAndBound(host);
        if (message == null) {
            attribute(xen, "unbind").write(text);
        } else {
            assertThatThrownBy(() -> attribute(xen, "unbind").write(text))
                    .isInstanceOf(IommuException.class)
                    .hasMessage(message)
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(errno);
        }
        assertState(host, xen, assignedAfter);
    }

    /** bind and unbind never change the slot list; the guest has exactly the bound devices, the rest are blocked. */
    private static void assertState(Host host, LoadedModule xen, List<String> assignedAfter) {
        assertThat(attribute(xen, "slots").read()).isEqualTo(SLOTS_BEFORE);
        assertThat(assigned(host)).containsExactlyElementsOf(assignedAfter);
        assertThat(blocked(host)).containsExactlyElementsOf(DEVICES.stream().filter(d -> !assignedAfter.contains(d))
                .sorted().toList());
        assertThat(host.iommu().groups()).allMatch(Group::isolated);
    }

    @Test
    void bindSeizesOnlyAListedDeviceAndNewSlotAndRemoveSlotChangeOnlyTheList() {
        Host host = host("");
        LoadedModule xen = loadXen(host);
        assertThat(assigned(host)).isEmpty();
        assertThat(blocked(host)).containsExactlyElementsOf(DEVICES.stream().sorted().toList());

        assertThatThrownBy(() -> attribute(xen, "bind").write("0000:08:00.0"))
                .hasMessage("pciback: 0000:08:00.0 is not on the slot list: write it to new_slot first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        attribute(xen, "new_slot").write("0000:08:00.0");
        assertThat(assigned(host)).isEmpty();
        attribute(xen, "bind").write("0000:08:00.0");
        assertThat(assigned(host)).containsExactly("0000:08:00.0");
        assertThatThrownBy(() -> attribute(xen, "bind").write("0000:08:00.0"))
                .hasMessage("pciback: 0000:08:00.0 is already bound to pciback")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);

        attribute(xen, "new_slot").write("0000:07:00.*");
        assertThat(attribute(xen, "slots").read()).isEqualTo("0000:08:00.0\n" + functions("0000:07:00", 0, 7));
        attribute(xen, "bind").write("0000:07:00.0");
        attribute(xen, "bind").write("07:00.1");
        assertThat(assigned(host)).containsExactly("0000:07:00.0", "0000:07:00.1", "0000:08:00.0");

        attribute(xen, "unbind").write("0000:08:00.0");
        assertThat(assigned(host)).containsExactly("0000:07:00.0", "0000:07:00.1");
        assertThat(attribute(xen, "slots").read()).startsWith("0000:08:00.0\n");
        attribute(xen, "remove_slot").write("0000:07:00.*");
        assertThat(attribute(xen, "slots").read()).isEqualTo("0000:08:00.0\n");
        assertThat(assigned(host)).containsExactly("0000:07:00.0", "0000:07:00.1");
        attribute(xen, "unbind").write("0000:07:00.0");
        attribute(xen, "unbind").write("0000:07:00.1");
        assertThat(assigned(host)).isEmpty();
        assertThat(host.iommu().groups()).hasSize(DEVICES.size());

        assertThatThrownBy(() -> attribute(xen, "bind").write("0000:07:00.*"))
                .hasMessage("bind takes one device, DDDD:BB:SS.F without wildcards; use new_slot for 0000:07:00.*")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> attribute(xen, "unbind").write("0000:06:0d.0"))
                .hasMessage("pciback: 0000:06:0d.0 is not bound to pciback")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        assertThatThrownBy(() -> attribute(xen, "bind").write("0000:0a:00.0"))
                .hasMessage("pciback: no PCI device at 0000:0a:00.0")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
        assertThatThrownBy(() -> attribute(xen, "new_slot").write("banana"))
                .isInstanceOf(IommuException.class)
                .hasMessage("invalid PCI slot 'banana': expected DDDD:BB:SS.F or BB:SS.F in hex, with * for the device"
                        + " and function (DDDD:BB:SS.*, DDDD:BB:*.*)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(attribute(xen, "slots").read()).isEqualTo("0000:08:00.0\n");
        assertThatThrownBy(() -> attribute(xen, "remove_slot").write("0000:09:00.0"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
    }

    @Test
    void bindIsRefusedWhileAVfioUserOfDomain0HoldsTheDeviceAndTheDeviceStaysDomain0s() {
        Host host = host("");
        LoadedModule xen = loadXen(host);
        host.vfio().bind("0000:06:0d.0");
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        VfioGroupFile group = host.vfio().openGroup(qemu, host.pci("0000:06:0d.0").group().id());
        group.setContainer(qemu, host.vfio().openContainer(qemu));
        attribute(xen, "new_slot").write("0000:06:0d.0");
        assertThatThrownBy(() -> attribute(xen, "bind").write("0000:06:0d.0"))
                .hasMessage("pciback: 0000:06:0d.0 is bound to vfio-pci: unbind vfio-pci first")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        assertThat(assigned(host)).isEmpty();
        assertThat(host.pci("0000:06:0d.0").driver()).isEqualTo("vfio-pci");
    }

    @Test
    void aHotAddedDeviceOnTheListIsHeldForGuestsAndAnotherIsDomain0s() {
        XenPlatform platform = XenPlatform.builder().machineMemory(4L << 30).dom0Memory(256L << 20)
                .dom0CommandLine("xen-pciback.hide=(0000:09:00.*)").build();
        Host host = platform.dom0().host();
        Machines.loadDriver(host, Map.of());
        platform.hotAdd(PciDeviceSpec.of("0000:09:00.0"));
        platform.hotAdd(PciDeviceSpec.of("0000:0a:00.0"));
        assertThat(assigned(host)).containsExactly("0000:09:00.0");
        assertThat(host.pci("0000:0a:00.0").group().sysfsType()).isEqualTo("DMA");
    }
}
