package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaAttrs;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.ScatterList;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.junit.jupiter.api.Test;

/** Issue 12: dma_map_sg and friends, DMA attributes, and the device-side argument checks of issue 11 #15. */
class DmaSgAndAttrsTest {
    private final Host host = Host.builder().memory(8L << 30).dmaApiDebug(true)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDmaMask(DmaMasks.bits(32)).withDriver("e1000e"))
            .build();
    private final PciDevice nic = host.pci("0000:06:0d.0");
    private final DmaApi dma = host.dma();

    /** 1.1-style ops (no attrs, no sg methods) that log what they are asked: the defaults must carry them. */
    static final class OldOps implements DmaOps {
        final List<String> calls = new ArrayList<>();
        long failAt = -1;

        @Override
        public long map(Device device, long phys, long size, DmaDirection direction) {
            if (phys == failAt) {
                throw new DmaMappingException(Errno.ENOMEM, "no room for 0x" + Long.toHexString(phys));
            }
            calls.add(String.format("map %x+%x", phys, size));
            return phys + 0x1000_0000L;
        }

        @Override
        public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
            calls.add(String.format("unmap %x+%x", dmaAddress, size));
        }

        @Override
        public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
            calls.add(String.format("cpu %x+%x", dmaAddress, size));
        }

        @Override
        public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
            calls.add(String.format("dev %x+%x", dmaAddress, size));
        }

        @Override
        public CoherentBuffer allocateCoherent(Device device, long size) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void freeCoherent(Device device, CoherentBuffer buffer) {
            throw new UnsupportedOperationException();
        }
    }

    @Test
    void dmaDirectMapsEverySegmentOnItsOwnWithoutMergingAndUnmapsThemAll() {
        ScatterList sg = ScatterList.of(0x10_0000, 4096, 0x10_1000, 4096, 0x20_0800, 100);
        assertThat(dma.mapSg(nic, sg, DmaDirection.TO_DEVICE, DmaAttrs.NONE)).isEqualTo(3);
        assertThat(sg.mappedCount()).isEqualTo(3);
        // adjacent segments stay two entries: dma_direct_map_sg does not merge
        assertThat(List.of(sg.dmaAddress(0), sg.dmaAddress(1), sg.dmaAddress(2)))
                .containsExactly(0x10_0000L, 0x10_1000L, 0x20_0800L);
        assertThat(sg.dmaLength(2)).isEqualTo(100);
        assertThat(dma.liveMappings(ModuleRef.KERNEL)).isEqualTo(3);
        assertThat(dma.debug().orElseThrow().activeEntries()).isEqualTo(3);
        dma.syncSgForCpu(nic, sg, DmaDirection.TO_DEVICE);
        dma.syncSgForDevice(nic, sg, DmaDirection.TO_DEVICE);

        dma.unmapSg(nic, sg, DmaDirection.TO_DEVICE, DmaAttrs.NONE);
        assertThat(sg.mappedCount()).isZero();
        assertThat(dma.liveMappings(ModuleRef.KERNEL)).isZero();
        assertThat(dma.debug().orElseThrow().activeEntries()).isZero();
        assertThat(dma.debug().orElseThrow().errorCount()).isZero();
    }

    @Test
    void aSegmentTheDeviceCannotReachFailsTheWholeListAndLeavesNothingMapped() {
        ScatterList sg = ScatterList.of(0x10_0000, 4096, 0x1_0000_0000L, 4096);
        assertThatThrownBy(() -> dma.mapSg(nic, sg, DmaDirection.FROM_DEVICE, DmaAttrs.NONE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("DMA addr 0x0000000100000000+4096 overflow (mask ffffffff, bus limit 0).")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(sg.mappedCount()).isZero();
        assertThat(dma.liveMappings(ModuleRef.KERNEL)).isZero();
        assertThat(dma.debug().orElseThrow().activeEntries()).isZero();
    }

    @Test
    void aOneDotOneBackendGetsScatterlistsAndAttributesThroughTheDefaultMethods() {
        OldOps ops = new OldOps();
        dma.view(ModuleRef.KERNEL).setDeviceOps(nic, ops);
        ScatterList sg = ScatterList.of(0x10_0000, 512, 0x30_0000, 1024);
        assertThat(dma.mapSg(nic, sg, DmaDirection.BIDIRECTIONAL, DmaAttrs.SKIP_CPU_SYNC)).isEqualTo(2);
        assertThat(sg.dmaAddress(1)).isEqualTo(0x1030_0000L);
        dma.syncSgForCpu(nic, sg, DmaDirection.BIDIRECTIONAL);
        dma.unmapSg(nic, sg, DmaDirection.BIDIRECTIONAL, DmaAttrs.NONE);
        long single = dma.map(nic, 0x40_0000, 64, DmaDirection.TO_DEVICE, DmaAttrs.NO_WARN);
        dma.unmap(nic, single, 64, DmaDirection.TO_DEVICE, DmaAttrs.SKIP_CPU_SYNC.with(DmaAttrs.NO_WARN));
        assertThat(ops.calls).containsExactly("map 100000+200", "map 300000+400", "cpu 10100000+200",
                "cpu 10300000+400", "unmap 10100000+200", "unmap 10300000+400", "map 400000+40", "unmap 10400000+40");
        assertThat(dma.liveMappings(ModuleRef.KERNEL)).isZero();

        ops.calls.clear();
        ops.failAt = 0x30_0000;
        ScatterList half = ScatterList.of(0x10_0000, 512, 0x30_0000, 1024);
        assertThatThrownBy(() -> dma.mapSg(nic, half, DmaDirection.TO_DEVICE, DmaAttrs.NONE))
                .hasMessage("no room for 0x300000");
        assertThat(ops.calls).as("the mapped segment is unmapped again").containsExactly("map 100000+200",
                "unmap 10100000+200");
        assertThat(half.mappedCount()).isZero();
        assertThat(dma.liveMappings(ModuleRef.KERNEL)).isZero();
    }

    @Test
    void badScatterlistsAndAttributesAreRefusedByName() {
        assertThatThrownBy(() -> ScatterList.of())
                .hasMessage("scatterlist of 0 numbers is invalid: expected at least one (phys, length) pair");
        assertThatThrownBy(() -> ScatterList.of(0x1000, 0))
                .hasMessage("scatterlist segment 0 length 0x0 is invalid: expected 1 to 0xffffffff bytes");
        assertThatThrownBy(() -> ScatterList.of(0x1000, 1L << 32))
                .hasMessage("scatterlist segment 0 length 0x100000000 is invalid: expected 1 to 0xffffffff bytes");
        assertThatThrownBy(() -> ScatterList.of(-4096L, 8192))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> DmaAttrs.of(1L << 2))
                .hasMessage("DMA attributes 0x4 are invalid: this model implements DMA_ATTR_SKIP_CPU_SYNC (0x20)"
                        + " and DMA_ATTR_NO_WARN (0x100) only");
        assertThat(DmaAttrs.SKIP_CPU_SYNC.with(DmaAttrs.NO_WARN)).hasToString(
                "DMA_ATTR_SKIP_CPU_SYNC|DMA_ATTR_NO_WARN");
        ScatterList sg = ScatterList.of(0x10_0000, 64);
        assertThatThrownBy(() -> dma.unmapSg(nic, sg, DmaDirection.TO_DEVICE, DmaAttrs.NONE))
                .hasMessage("scatterlist is not mapped: map it with dma_map_sg first");
        dma.mapSg(nic, sg, DmaDirection.TO_DEVICE, DmaAttrs.NONE);
        assertThatThrownBy(() -> dma.mapSg(nic, sg, DmaDirection.TO_DEVICE, DmaAttrs.NONE))
                .hasMessage("scatterlist is already mapped (1 entries): unmap it first");
        assertThatThrownBy(() -> sg.dmaAddress(1))
                .hasMessage("scatterlist entry 1 is not mapped: 1 of 1 entries are");
        assertThatThrownBy(() -> dma.mapSg(nic, ScatterList.of(0x2_0000_0000L - 64, 128), DmaDirection.TO_DEVICE,
                DmaAttrs.NONE)).extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        dma.unmapSg(nic, sg, DmaDirection.TO_DEVICE, DmaAttrs.NONE);
        assertThat(dma.liveMappings(ModuleRef.KERNEL)).isZero();
    }

    @Test
    void deviceAccessesWithANegativeLengthOrABadSliceAreTypedErrors() {
        assertThatThrownBy(() -> nic.dmaRead(0x10_0000, -1))
                .hasMessage("DMA read length -1 is invalid: expected 0 to 2147483639 bytes")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> nic.dmaWrite(0x10_0000, new byte[8], 0, -1))
                .hasMessage("buffer slice offset 0 length -1 is invalid: expected 0 <= offset, 0 <= length,"
                        + " offset + length <= 8 (the buffer's length)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> nic.dmaRead(0x10_0000, new byte[8], 4, 8))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(host.deviceDma().faultCount()).isZero();
    }

    @Test
    void nullsAreTypedErrorsNamingWhatWasExpected() {
        assertThatThrownBy(() -> dma.map(null, 0x10_0000, 64, DmaDirection.TO_DEVICE))
                .hasMessage("device null is invalid: expected a device of this host's buses")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> dma.freeCoherent(nic, null))
                .hasMessage("coherent buffer null is invalid: expected one allocateCoherent returned");
        assertThatThrownBy(() -> dma.mapSg(nic, null, DmaDirection.TO_DEVICE, DmaAttrs.NONE))
                .hasMessage("scatterlist null is invalid: expected a ScatterList");
        assertThat(dma.liveMappings(ModuleRef.KERNEL)).isZero();
    }
}
