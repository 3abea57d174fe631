package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

class DmaApiTest {
    private final Host host = Host.builder().memory(8L << 30)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32)))
            .build();
    private final PciDevice dev = host.pci("0000:06:0d.0");

    @Test
    void directMappingIsIdentityWithinTheMask() {
        assertThat(host.dma().map(dev, 0x1000_0000L, 4096, DmaDirection.TO_DEVICE)).isEqualTo(0x1000_0000L);
        assertThat(host.dma().opsFor(dev)).isInstanceOf(DirectDmaOps.class);
    }

    @Test
    void directMappingBeyondTheMaskIsRefusedWithTheKernelsMessageLoggedOnce() {
        String message = "DMA addr 0x0000000100000000+4096 overflow (mask ffffffff, bus limit 0).";
        assertThatThrownBy(() -> host.dma().map(dev, 0x1_0000_0000L, 4096, DmaDirection.FROM_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage(message)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EIO);
        assertThatThrownBy(() -> host.dma().map(dev, 0xffff_f000L, 8192, DmaDirection.FROM_DEVICE))
                .isInstanceOf(DmaMappingException.class);
        assertThat(host.log().messages()).filteredOn(m -> m.contains("overflow"))
                .containsExactly("pci 0000:06:0d.0: " + message);
    }

    @Test
    void argumentsAreCheckedBeforeAnyBackendSeesThem() {
        assertThatThrownBy(() -> host.dma().map(dev, 0, 4096, DmaDirection.NONE))
                .hasMessage("DMA direction NONE is invalid for a mapping: use TO_DEVICE, FROM_DEVICE or"
                        + " BIDIRECTIONAL");
        assertThatThrownBy(() -> host.dma().map(dev, 0, 0, DmaDirection.TO_DEVICE))
                .hasMessage("DMA size 0 is invalid: expected at least 1 byte");
        host.buses().remove(dev.name());
        assertThatThrownBy(() -> host.dma().map(dev, 0, 1, DmaDirection.TO_DEVICE))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENODEV);
    }

    @Test
    void coherentMemoryIsZeroedAndWithinTheCoherentMask() {
        long taken = host.pageAllocator().allocateContiguous(1024, 1L << 32); // dirty low memory first
        host.memory().fill(taken, 4L << 20, (byte) 0x5a);
        host.pageAllocator().freeContiguous(taken, 1024);

        CoherentBuffer buffer = host.dma().allocateCoherent(dev, 10_000);
        assertThat(buffer.size()).isEqualTo(3 * 4096);
        assertThat(buffer.dmaAddress()).isEqualTo(buffer.phys());
        assertThat(buffer.phys() + buffer.size()).isLessThanOrEqualTo(1L << 32);
        byte[] content = new byte[(int) buffer.size()];
        host.memory().read(buffer.phys(), content, 0, content.length);
        assertThat(content).containsOnly(0);
        long free = host.pageAllocator().freePageCount();
        host.dma().freeCoherent(dev, buffer);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free + 3);
    }
}
