package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.module.ModuleState;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;
import org.junit.jupiter.api.Test;

/**
 * Issue 11 #3, #4, #5 and #7 through xen in a guest: its DMA ops stay exactly as long as a mapping made through
 * them, and a refused load leaves no holder behind.
 */
class XenDmaLifetimeTest {
    private static final String NIC = "0000:06:0d.0";
    private final XenPlatform platform = Machines.platform("xen-pciback.hide=(06:0d.0)",
            PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(32)));
    private final XenDomain guest = platform.createGuest("guest", 64L << 20, "");
    private final Host host = guest.host();
    private final LoadedModule swiotlb = host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"),
            "class path");

    private LoadedModule xen() {
        LoadedModule xen = host.modules().insert(new XenProvider(), Map.of("force", "1"), "class path");
        platform.attach(NIC, guest);
        return xen;
    }

    private PciDevice nic() {
        return host.pci(NIC);
    }

    private String ioTlbUsed() {
        return Machines.attribute(swiotlb, "io_tlb_used").read();
    }

    @Test
    void aBogusUnmapDoesNotLetXenGoUnderALiveBouncedMapping() {
        LoadedModule xen = xen();
        PciDevice nic = nic();
        long a = host.dma().map(nic, 0x200_0000, 512, DmaDirection.FROM_DEVICE);
        assertThat(ioTlbUsed()).isEqualTo("1");
        host.dma().unmap(nic, 0xdead000L, 64, DmaDirection.FROM_DEVICE);

        assertThatThrownBy(() -> host.modules().remove("xen")).hasMessage("Module xen is in use")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        assertThat(xen.state()).isEqualTo(ModuleState.LIVE);
        assertThat(ioTlbUsed()).isEqualTo("1");
        host.dma().unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
        host.modules().remove("xen");
        assertThat(ioTlbUsed()).isEqualTo("0");
    }

    @Test
    void aHotRemovedDevicesBouncedMappingKeepsXenUntilItIsUnmapped() {
        LoadedModule xen = xen();
        PciDevice nic = nic();
        long a = host.dma().map(nic, 0x200_0000, 512, DmaDirection.FROM_DEVICE);
        host.buses().remove(NIC);
        assertThat(host.dma().liveMappings(xen)).isEqualTo(1);
        assertThatThrownBy(() -> host.modules().remove("xen")).hasMessage("Module xen is in use");
        assertThat(xen.state()).isEqualTo(ModuleState.LIVE);
        host.dma().unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
        host.modules().remove("xen");
        assertThat(ioTlbUsed()).isEqualTo("0");
    }

    @Test
    void aCoherentBufferAllocatedBeforeXenLoadedIsFreedByDmaDirect() {
        platform.attach(NIC, guest);
        CoherentBuffer ring = host.dma().allocateCoherent(nic(), 8192);
        LoadedModule xen = host.modules().insert(new XenProvider(), Map.of(), "class path");
        long afterLoad = host.pageAllocator().freePageCount();
        host.dma().freeCoherent(nic(), ring);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(afterLoad + 2);
        assertThat(host.dma().liveMappings(ModuleRef.KERNEL)).isZero();
        assertThat(host.dma().liveMappings(xen)).isZero();
    }

    @Test
    void aRefusedXenLoadLeavesNoHolderOnSwiotlb() {
        XenDomain other = platform.createGuest("other", 64L << 20, "");
        LoadedModule unsafe = other.host().modules().insert(new SwiotlbProvider(),
                Map.of("nslabs", "512", SwiotlbProvider.ENABLE_IOMMU, "1"), "class path");
        for (int i = 0; i < 3; i++) {
            assertThatThrownBy(() -> other.host().modules().insert(new XenProvider(), Map.of(), "class path"))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EBUSY);
        }
        assertThat(unsafe.holders()).isEmpty();
        other.host().modules().remove("swiotlb");
        assertThat(unsafe.state()).isEqualTo(ModuleState.UNLOADED);
    }
}
