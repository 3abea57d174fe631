package org.iommu4j.kernel;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.testsupport.DmaApiModel;
import org.iommu4j.testsupport.PathCounts;
import org.iommu4j.testsupport.Seeded;
import org.iommu4j.testsupport.VfioModel;
import org.junit.jupiter.api.Test;

/**
 * The backends' model-based tests run on the kernel alone, so that its own tests cover what they check: the
 * DMA API over dma-direct (a 28-bit device cannot reach the high buffers: ENOMEM, the DMA_MAPPING_ERROR of dma-direct), with and without DMA-API
 * debugging and its CPU-touch check, and VFIO type 1 v2 over a page-table IOMMU the kernel's tests provide.
 */
class KernelModelTest {
    private static final int SEQUENCES = Seeded.count("iommu4j.model.sequences", 200) / 2;
    private static final int STEPS = Seeded.count("iommu4j.model.steps", 500);
    private static final String NIC = "0000:06:0d.0";

    @Test
    void dmaDirectAgreesWithTheModelAfterEveryStep() {
        Map<DmaApiModel.Count, Long> totals = DmaApiModel.runSequences("KernelModelTest.dma", SEQUENCES,
                r -> runDma(r::nextInt, STEPS, r.nextBoolean()));
        PathCounts.requireEveryPathBut(totals, DmaApiModel.Count.BOUNCED); // dma-direct bounces nothing
    }

    private static DmaApiModel runDma(DmaApiModel.Choices choices, int steps, boolean debug) {
        Host host = Host.builder().memory(512L << 20).dmaApiDebug(debug)
                .pciDevice(PciDeviceSpec.of(NIC))
                .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(28)))
                .build();
        DmaApiModel model = new DmaApiModel(host, ModuleRef.KERNEL, new DmaApiModel.Backend() {
            @Override
            public Errno mapOutcome(PciDevice device, long phys, long size) {
                return Long.compareUnsigned(phys + size - 1, device.reachLimit()) > 0 ? Errno.ENOMEM : null;
            }

            @Override
            public boolean bounced(long dmaAddress) {
                return false;
            }

            @Override
            public long slotsInUse() {
                return 0;
            }
        }, List.of(host.pci(NIC), host.pci("0000:07:00.0")));
        for (int i = 0; i < steps; i++) {
            model.step(choices);
        }
        model.teardown();
        return model;
    }

    @Test
    void vfioType1AgreesWithTheModelAfterEveryStep() {
        Map<VfioModel.Count, Long> totals = VfioModel.runSequences("KernelModelTest.vfio", SEQUENCES,
                r -> runVfio(r::nextInt, STEPS))
                .counts();
        PathCounts.requireEveryPathBut(totals, VfioModel.Count.BOUNCED); // type 1 on a page-table IOMMU bounces nothing
    }

    private static VfioModel runVfio(DmaApiModel.Choices choices, int steps) {
        Host host = Host.builder().memory(256L << 20).pciDevice(PciDeviceSpec.of(NIC)).build();
        long freeAtBoot = host.pageAllocator().freePageCount();
        PageTableIommu iommu = new PageTableIommu();
        host.iommu().registerOps(BusType.PCI, iommu, ModuleRef.KERNEL);
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        host.vfio().bind(NIC);
        long base = qemu.mmap(VfioModel.PAGES * 4096L);
        VfioContainer container = host.vfio().openContainer(qemu);
        VfioGroupFile group = host.vfio().openGroup(qemu, host.pci(NIC).group().id());
        group.setContainer(qemu, container);
        container.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        group.getDevice(qemu, NIC);
        VfioModel model = new VfioModel(qemu, container, host.pci(NIC), base, new VfioModel.Backend() {
            @Override
            public long iova(UserProcess process, long vaddr, long size, DmaApiModel.Choices c) {
                return 0x4000_0000L + c.pick(96) * 4096L;
            }

            @Override
            public boolean bounced(long iova) {
                return false;
            }

            @Override
            public long slotsInUse() {
                return 0;
            }
        });
        for (int i = 0; i < steps; i++) {
            model.step(choices);
        }
        model.teardown();
        group.close(qemu);
        container.close(qemu);
        assertThat(qemu.lockedPages()).isZero();
        qemu.exit();
        host.vfio().unbind(NIC);
        host.iommu().unregisterOps(BusType.PCI, iommu);
        // the container's domain and the group's default one are both gone with the driver
        assertThat(iommu.domains()).hasSizeGreaterThanOrEqualTo(2).allMatch(PageTableIommu.PageTableDomain::isFreed);
        DmaApiModel.requireClean(host, freeAtBoot);
        return model;
    }
}
