package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** What the kernel's {@code swiotlb=} word means to xen-swiotlb: {@code force} bounces, {@code noforce} cannot load. */
class XenSwiotlbCommandLineTest {
    private static final String NIC = "0000:06:0d.0";
    private static final long BUFFER = 0x10_0000;

    /** A guest with the NIC, booted with the command line. */
    private static XenDomain guest(String cmdline) {
        XenPlatform platform = Machines.platform("xen-pciback.hide=(" + NIC + ")", PciDeviceSpec.of(NIC));
        XenDomain guest = platform.createGuest("guest", 256L << 20, cmdline);
        platform.attach(NIC, guest);
        return guest;
    }

    @ParameterizedTest(name = "{0}: bounced {1}")
    @CsvSource(delimiter = '|', value = {
        "swiotlb=force           | true",
        "swiotlb=1024,force      | true",
        "swiotlb=1024,1,force    | true",
        "swiotlb=1024            | false",
        "''                      | false"})
    void swiotlbForceOnTheCommandLineBouncesEvenADirectlyMappableBuffer(String cmdline, boolean bounced) {
        XenDomain guest = guest(cmdline);
        Host host = guest.host();
        host.modules().insert(new SwiotlbProvider(), Map.of(), "class path");
        host.modules().insert(new XenProvider(), Map.of(), "class path");
        BounceBufferPool pool = host.symbols().view(host.modules().require("xen")).lookup(BounceBufferPool.class);
        PciDevice nic = host.pci(NIC);

        long dma = host.dma().map(nic, BUFFER, 4096, DmaDirection.TO_DEVICE);
        long direct = guest.mfn(BUFFER >>> 12) << 12;
        assertThat(dma != direct).isEqualTo(bounced);
        assertThat(pool.stats().usedSlots() > 0).isEqualTo(bounced);
        host.dma().unmap(nic, dma, 4096, DmaDirection.TO_DEVICE);
        assertThat(pool.stats().usedSlots()).isZero();
    }

    @ParameterizedTest
    @ValueSource(strings = {"swiotlb=noforce", "swiotlb=1024,noforce"})
    void withSwiotlbNoforceXenSaysItNeedsThePoolAndHowToGetIt(String cmdline) {
        Host host = guest(cmdline).host();
        host.modules().insert(new SwiotlbProvider(), Map.of(), "class path");
        assertThatThrownBy(() -> host.modules().insert(new XenProvider(), Map.of(), "class path"))
                .isInstanceOf(IommuException.class)
                .hasMessage("xen: xen-swiotlb needs the swiotlb bounce pool, but swiotlb=noforce on the kernel"
                        + " command line left swiotlb without one: remove swiotlb=noforce")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);
        assertThat(host.modules().find("xen")).isEmpty();
        assertThat(host.iommu().groups()).isEmpty();
        assertThat(host.log().messages()).contains("xen: xen-swiotlb needs the swiotlb bounce pool, but"
                + " swiotlb=noforce on the kernel command line left swiotlb without one: remove swiotlb=noforce");
    }
}
