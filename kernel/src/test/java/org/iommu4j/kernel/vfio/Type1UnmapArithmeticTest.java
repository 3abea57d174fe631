package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Issue 12 #1: iova and size are unsigned 64-bit numbers in VFIO, checked as {@code vfio_dma_do_unmap} and
 * {@code vfio_dma_do_map} check them (Linux v6.12), and {@code VFIO_DMA_UNMAP_FLAG_ALL}.
 */
class Type1UnmapArithmeticTest {
    private static final int RW = IommuProt.READ | IommuProt.WRITE;
    private final Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
    private final UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
    private PciDevice nic;
    private VfioContainer container;
    private long va;

    @BeforeEach
    void mapAtZeroInTheMiddleAndAtTheTop() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        nic = host.pci("0000:06:0d.0");
        host.vfio().bind(nic.name());
        container = host.vfio().openContainer(qemu);
        host.vfio().openGroup(qemu, nic.group().id()).setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        va = qemu.mmap(4 * 4096);
        container.mapDma(qemu, va, 4096, 0, RW);
        container.mapDma(qemu, va + 4096, 4096, 0x7fff_ffff_f000_0000L, RW);
        container.mapDma(qemu, va + 2 * 4096, 4096, 0x8000_0000_0000_0000L, RW);
        container.mapDma(qemu, va + 3 * 4096, 4096, 0xffff_ffff_ffff_f000L, RW);
    }

    @Test
    void mappingsAreOrderedAsUnsignedAddressesAndTheTopPageWorks() {
        assertThat(container.mappings()).extracting(VfioDmaMapping::iova).containsExactly(0L,
                0x7fff_ffff_f000_0000L, 0x8000_0000_0000_0000L, 0xffff_ffff_ffff_f000L);
        qemu.write(va + 4096 + 10, new byte[] {1, 2, 3, 4, 5, 6});
        assertThat(nic.dmaRead(0x7fff_ffff_f000_000aL, 6)).containsExactly(1, 2, 3, 4, 5, 6);
        assertThatThrownBy(() -> container.mapDma(qemu, va, 0x2000, 0xffff_ffff_ffff_f000L, RW))
                .isInstanceOf(IommuException.class)
                .hasMessage("VFIO_IOMMU_MAP_DMA: iova 0xfffffffffffff000 + size 0x2000 wraps past 2^64: expected a"
                        + " size of at most 0x1000")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> container.mapDma(qemu, va, 0x1000, 0x8000_0000_0000_0000L, RW))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EEXIST);
        assertThat(qemu.lockedPages()).isEqualTo(4);
    }

    @Test
    void anUnmapThatWrapsIsEinvalAndLeavesTheMappingAtZero() {
        assertThatThrownBy(() -> container.unmapDma(qemu, 0xffff_ffff_ffff_e000L, 0x3000))
                .isInstanceOf(IommuException.class)
                .hasMessage("VFIO_IOMMU_UNMAP_DMA: iova 0xffffffffffffe000 + size 0x3000 wraps past 2^64: expected a"
                        + " size of at most 0x2000")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(container.mappings()).hasSize(4);
        assertThat(nic.dmaRead(0, 1)).hasSize(1);
    }

    @Test
    void aRangeEndingAt2To64UnmapsTheTopPage() {
        var domain = nic.group().currentDomain();
        assertThat(domain.translate(0xffff_ffff_ffff_f000L, IommuProt.READ)).isEqualTo(qemu.virtToPhys(va + 3 * 4096));
        assertThat(container.unmapDma(qemu, 0xffff_ffff_ffff_e000L, 0x2000)).isEqualTo(0x1000);
        assertThat(domain.translate(0xffff_ffff_ffff_f000L, IommuProt.READ))
                .isEqualTo(org.iommu4j.api.IommuDomain.FAULT_NOT_MAPPED);
        assertThat(container.mappings()).hasSize(3);
    }

    @Test
    void hugeUnsignedSizesRemoveEveryMappingInRange() {
        assertThat(container.unmapDma(qemu, 0, 1L << 63)).isEqualTo(0x2000);
        assertThat(container.mappings()).extracting(VfioDmaMapping::iova).containsExactly(0x8000_0000_0000_0000L,
                0xffff_ffff_ffff_f000L);
        assertThat(container.unmapDma(qemu, 0, 0xffff_ffff_ffff_f000L)).isEqualTo(0x1000);
        assertThat(container.mappings()).extracting(VfioDmaMapping::iova).containsExactly(0xffff_ffff_ffff_f000L);
        assertThat(qemu.lockedPages()).isEqualTo(1);
    }

    @Test
    void anUnmapAcross2To63IsAnOrdinaryRangeAndReturnsZeroWhereNothingIsMapped() {
        // [0x7ffffffffffff000, 0x8000000000000fff] holds the page at 2^63
        assertThat(container.unmapDma(qemu, 0x7fff_ffff_ffff_f000L, 0x2000)).isEqualTo(0x1000);
        assertThat(container.unmapDma(qemu, 0x7fff_ffff_ffff_f000L, 0x2000)).isZero();
        assertThat(container.mappings()).hasSize(3);
    }

    @Test
    void unmapAllTakesEverythingAndWantsIovaAndSizeZero() {
        assertThat(container.checkExtension(qemu, Vfio.UNMAP_ALL)).isEqualTo(1);
        assertThatThrownBy(() -> container.unmapDma(qemu, 0x1000, 0, Vfio.DMA_UNMAP_FLAG_ALL))
                .hasMessage("VFIO_IOMMU_UNMAP_DMA: iova 0x1000 size 0x0 with VFIO_DMA_UNMAP_FLAG_ALL: expected both 0")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> container.unmapDma(qemu, 0, 0x1000, 0x8))
                .hasMessage("VFIO_IOMMU_UNMAP_DMA: flags 0x8 are invalid: expected 0, VFIO_DMA_UNMAP_FLAG_ALL (0x2) or"
                        + " VFIO_DMA_UNMAP_FLAG_VADDR (0x4), alone or together")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(container.mappings()).hasSize(4);
        assertThat(container.unmapDma(qemu, 0, 0, Vfio.DMA_UNMAP_FLAG_ALL)).isEqualTo(0x4000);
        assertThat(container.mappings()).isEmpty();
        assertThat(qemu.lockedPages()).isZero();
    }

    @Test
    void v2RefusesASplitEvenAtTheTopOfTheSpace() {
        container.mapDma(qemu, qemu.mmap(0x2000), 0x2000, 0xffff_ffff_0000_0000L, RW);
        assertThatThrownBy(() -> container.unmapDma(qemu, 0xffff_ffff_0000_1000L, 0x1000))
                .hasMessage("VFIO_IOMMU_UNMAP_DMA: iova 0xffffffff00001000+0x1000 would split the mapping at"
                        + " 0xffffffff00000000+0x2000; unmap whole mappings");
        assertThatThrownBy(() -> container.unmapDma(qemu, 0x8000_0000_0000_0000L, 0x7fff_ffff_0000_1000L))
                .hasMessageContaining("would split the mapping at 0xffffffff00000000+0x2000");
        assertThat(container.mappings()).hasSize(5);
        assertThat(container.unmapDma(qemu, 0x8000_0000_0000_0000L, 0x8000_0000_0000_0000L)).isEqualTo(0x4000);
    }

    @Test
    void aMapOfATebibyteOverASmallBufferIsEfaultAndPinsNothing() {
        assertThatThrownBy(() -> container.mapDma(qemu, va, 1L << 40, 0x1_0000_0000L, RW))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("address 0x%x is not mapped in qemu:%d", va + 4 * 4096, qemu.pid()))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThat(qemu.lockedPages()).isEqualTo(4);
        assertThat(container.mappings()).hasSize(4);
    }
}
