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
import org.junit.jupiter.api.Test;

/** Issue 11 #3, #4, #5 and #7 through xen: its DMA ops stay exactly as long as a mapping made through them. */
class XenDmaLifetimeTest {
    private static final String NIC = "0000:06:0d.0";
    private final Host host = Host.builder().memory(64L << 20)
            .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(32))).build();
    private final PciDevice nic = host.pci(NIC);
    private final LoadedModule swiotlb = host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "512"),
            "class path");

    private LoadedModule xen() {
        return host.modules().insert(new XenProvider(), Map.of("hide", "(" + NIC + ")", "force", "1"), "class path");
    }

    private String ioTlbUsed() {
        return swiotlb.backend().attributes().stream().filter(a -> a.name().equals("io_tlb_used")).findFirst()
                .orElseThrow().read();
    }

    @Test
    void aBogusUnmapDoesNotLetXenGoUnderALiveBouncedMapping() {
        LoadedModule xen = xen();
        long a = host.dma().map(nic, 0x10_0000, 512, DmaDirection.FROM_DEVICE);
        assertThat(ioTlbUsed()).isEqualTo("1");
        host.dma().unmap(nic, 0xdead000L, 64, DmaDirection.FROM_DEVICE);

        assertThatThrownBy(() -> host.modules().remove("xen")).hasMessage("Module xen is in use")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        assertThat(xen.state()).isEqualTo(ModuleState.LIVE);
        host.dma().unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
        host.modules().remove("xen");
        assertThat(ioTlbUsed()).isEqualTo("0");
        host.modules().remove("swiotlb");
    }

    @Test
    void aHotRemovedDevicesBouncedMappingKeepsXenUntilItIsUnmapped() {
        LoadedModule xen = xen();
        long a = host.dma().map(nic, 0x10_0000, 512, DmaDirection.FROM_DEVICE);
        host.buses().remove(NIC);
        assertThatThrownBy(() -> host.modules().remove("xen")).hasMessage("Module xen is in use");
        assertThat(xen.state()).isEqualTo(ModuleState.LIVE);
        assertThat(host.dma().liveMappings(xen)).isEqualTo(1);
        host.dma().unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
        host.modules().remove("xen");
        assertThat(ioTlbUsed()).isEqualTo("0");
    }

    @Test
    void aCoherentBufferAllocatedBeforeXenLoadedIsFreedByDmaDirect() {
        CoherentBuffer ring = host.dma().allocateCoherent(nic, 8192);
        long free = host.pageAllocator().freePageCount();
        LoadedModule xen = xen();
        long afterLoad = host.pageAllocator().freePageCount();
        host.dma().freeCoherent(nic, ring);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(afterLoad + 2);
        assertThat(host.dma().liveMappings(ModuleRef.KERNEL)).isZero();
        assertThat(host.dma().liveMappings(xen)).isZero();
        assertThat(free).isLessThanOrEqualTo(afterLoad + 2);
    }

    @Test
    void aRefusedXenLoadLeavesNoHolderOnSwiotlb() {
        for (int i = 0; i < 3; i++) {
            assertThatThrownBy(() -> host.modules().insert(new XenProvider(), Map.of("p2m", "bogus"), "class path"))
                    .hasMessage("xen.p2m=bogus is invalid: expected scattered or contiguous");
        }
        assertThat(swiotlb.holders()).isEmpty();
        host.modules().remove("swiotlb");
        assertThat(swiotlb.state()).isEqualTo(ModuleState.UNLOADED);
    }
}
