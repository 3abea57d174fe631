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
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Allocation failures in the middle of VFIO calls, made with the host's fault injection. */
class VfioFaultInjectionTest {
    private static final int RW = IommuProt.READ | IommuProt.WRITE;
    private static final long IOVA = 0x10_0000L;
    private final Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
    private final UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
    private PciDevice nic;
    private VfioContainer container;
    private long buffer;

    @BeforeEach
    void openAContainerWithAScatteredBuffer() {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        nic = host.pci("0000:06:0d.0");
        host.vfio().bind(nic.name());
        container = host.vfio().openContainer(qemu);
        host.vfio().openGroup(qemu, nic.group().id()).setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        buffer = qemu.mmap(4 * 4096);
        long[] frames = qemu.pagemap(buffer, 4 * 4096);
        for (int i = 1; i < frames.length; i++) {
            assertThat(frames[i]).isNotEqualTo(frames[i - 1] + 4096); // four runs, four iommu_map calls
        }
    }

    private void assertNothingMapped() {
        assertThat(container.mappings()).isEmpty();
        assertThat(qemu.lockedPages()).isZero();
        for (int page = 0; page < 4; page++) {
            long at = IOVA + page * 4096L;
            assertThatThrownBy(() -> nic.dmaWrite(at, new byte[] {1})).isInstanceOf(IommuFaultException.class);
        }
        assertThat(qemu.read(buffer, 4 * 4096)).containsOnly(0);
    }

    @Test
    void whenTheMappingsRecordCannotBeAllocatedNothingIsPinnedOrMapped() {
        host.faults().slab().configure(1, 100, 0, 1);
        assertThatThrownBy(() -> container.mapDma(qemu, buffer, 4 * 4096, IOVA, RW))
                .isInstanceOf(IommuException.class)
                .hasMessage("VFIO_IOMMU_MAP_DMA: cannot allocate the mapping's record: out of memory")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertNothingMapped();
        assertThat(host.log().messages()).contains("FAULT_INJECTION: forcing a failure.\nname failslab, interval 1,"
                + " probability 100, space 0, times 1");

        container.mapDma(qemu, buffer, 4 * 4096, IOVA, RW);
        nic.dmaWrite(IOVA + 3 * 4096 + 10, new byte[] {42});
        assertThat(qemu.read(buffer + 3 * 4096 + 10, 1)).containsExactly(42);
    }

    @Test
    void anIommuMapThatFailsOnTheThirdRunIsUndoneWholeAndTheRetryWorks() {
        host.faults().pageAlloc().configure(3, 100, 0, 1);
        assertThatThrownBy(() -> container.mapDma(qemu, buffer, 4 * 4096, IOVA, RW))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("iommu_map: no memory for the page tables of iova 0x%x size 0x1000",
                        IOVA + 2 * 4096))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertNothingMapped();

        container.mapDma(qemu, buffer, 4 * 4096, IOVA, RW);
        byte[] packet = new byte[4 * 4096];
        java.util.Arrays.fill(packet, (byte) 0x5a);
        nic.dmaWrite(IOVA, packet);
        assertThat(qemu.read(buffer, 4 * 4096)).containsOnly(0x5a);
        assertThat(qemu.lockedPages()).isEqualTo(4);
    }

    @Test
    void aContainerThatCannotBeAllocatedIsNotOpened() {
        int hooks = qemu.openFileCount();
        host.faults().slab().configure(1, 100, 0, 1);
        assertThatThrownBy(() -> host.vfio().openContainer(qemu))
                .hasMessage("/dev/vfio/vfio: cannot allocate a container: out of memory")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(qemu.openFileCount()).isEqualTo(hooks);
        assertThat(host.vfio().openContainer(qemu).groupIds()).isEmpty();
        assertThat(qemu.openFileCount()).isEqualTo(hooks + 1);
    }
}
