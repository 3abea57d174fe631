package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.log.Warnings;
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
    void directMappingBeyondTheMaskIsAMappingErrorWarnedOnceFromDmaDirectMapPageTaintingW() {
        String message = "DMA addr 0x0000000100000000+4096 overflow (mask ffffffff, bus limit 0).";
        assertThatThrownBy(() -> host.dma().map(dev, 0x1_0000_0000L, 4096, DmaDirection.FROM_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage(message)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThatThrownBy(() -> host.dma().map(dev, 0xffff_f000L, 8192, DmaDirection.FROM_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("DMA addr 0x00000000fffff000+8192 overflow (mask ffffffff, bus limit 0).");
        // dev_WARN_ONCE: one warning per call site and host, whichever device and buffer
        assertThat(host.log().messages()).containsSubsequence(Warnings.CUT_HERE, "pci 0000:06:0d.0: " + message);
        assertThat(host.log().messages()).filteredOn(m -> m.startsWith("WARNING: CPU: "))
                .singleElement().asString().endsWith(" PID: 1 at kernel/dma/direct.h dma_direct_map_page");
        assertThat(host.log().messages()).filteredOn(m -> m.contains("overflow")).hasSize(1);
        assertThat(host.taint().isSet(TaintFlag.WARN)).isTrue();
        assertThat(host.warnings().hasWarnedOnce(DirectDmaOps.OVERFLOW_SITE)).isTrue();
    }

    @Test
    void theNonBouncingPathRefusesMemoryThatDoesNotExistAndBuffersThatWrap() {
        Host wide = Host.builder().pciDevice(PciDeviceSpec.of("0000:07:00.0")).build();
        PciDevice dev64 = wide.pci("0000:07:00.0");
        assertThatThrownBy(() -> wide.dma().map(dev64, 0x7fff_ffff_ffff_f000L, 4096, DmaDirection.TO_DEVICE))
                .hasMessage("DMA buffer phys 0x7ffffffffffff000 is outside memory: expected an address below"
                        + " 0x40000000")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThatThrownBy(() -> wide.dma().map(dev64, 0x3fff_f000L, 8192, DmaDirection.TO_DEVICE))
                .hasMessage("DMA buffer phys 0x3ffff000 + size 0x2000 is outside memory: expected a buffer below"
                        + " 0x40000000")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThatThrownBy(() -> host.dma().map(dev, -4096L, 8192, DmaDirection.TO_DEVICE))
                .hasMessage("DMA buffer phys 0xfffffffffffff000 + size 0x2000 wraps past 2^64: expected a size of at"
                        + " most 0x1000")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        // dma-direct itself, asked directly, checks memory and the mask without wrapping
        assertThatThrownBy(() -> host.dma().opsFor(dev).map(dev, -4096L, 8192, DmaDirection.TO_DEVICE))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThatThrownBy(() -> host.dma().opsFor(dev).map(dev, 0xffff_f000L, 8192, DmaDirection.TO_DEVICE))
                .isInstanceOf(DmaMappingException.class);
        assertThat(host.dma().liveMappings(org.iommu4j.kernel.module.ModuleRef.KERNEL)).isZero();
    }

    @Test
    void reachIsTheUnsignedSmallerOfMaskAndBusLimitSoA64BitDeviceBehindA32BitBusIsRefusedHighMemory() {
        Host h = Host.builder().memory(16L << 30).pciDevice(PciDeviceSpec.of("0000:08:00.0")
                .withDmaMask(-1L).withBusDmaLimit(0xffff_ffffL)).build();
        PciDevice d = h.pci("0000:08:00.0");
        assertThat(d.reachLimit()).isEqualTo(0xffff_ffffL);
        assertThatThrownBy(() -> h.dma().map(d, 0x1_ffff_f000L, 4096, DmaDirection.TO_DEVICE))
                .hasMessage("DMA addr 0x00000001fffff000+4096 overflow (mask ffffffffffffffff, bus limit ffffffff).");
        assertThat(h.dma().map(d, 0xffff_f000L, 4096, DmaDirection.TO_DEVICE)).isEqualTo(0xffff_f000L);
    }

    @Test
    void maxAndOptMappingSizeOfDmaDirectAreSizeMax() {
        assertThat(host.dma().maxMappingSize(dev)).isEqualTo(-1L);
        assertThat(Long.toUnsignedString(host.dma().optMappingSize(dev))).isEqualTo("18446744073709551615");
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
