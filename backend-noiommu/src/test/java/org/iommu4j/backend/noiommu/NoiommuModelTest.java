package org.iommu4j.backend.noiommu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.testsupport.DmaApiModel;
import org.iommu4j.testsupport.DmaApiModel.Count;
import org.iommu4j.testsupport.PathCounts;
import org.iommu4j.testsupport.Seeded;
import org.iommu4j.testsupport.VfioModel;
import org.junit.jupiter.api.Test;

/**
 * The model-based stateful test of noiommu's DMA ops ({@link DmaApiModel}): seeded sequences of maps, unmaps,
 * syncs, device and CPU accesses, coherent buffers and refused calls on a host with a 64-bit and a 28-bit
 * device, every step checked against the model; with and without DMA-API debugging. {@code -Pstress} raises the
 * number of sequences ({@code iommu4j.model.sequences}).
 */
class NoiommuModelTest {
    static final int SEQUENCES = Seeded.count("iommu4j.model.sequences", 200);
    static final int STEPS = Seeded.count("iommu4j.model.steps", 500);
    private static final String NIC = "0000:06:0d.0";

    @Test
    void theDmaApiAgreesWithTheModelAfterEveryStep() {
        Map<DmaApiModel.Count, Long> totals = DmaApiModel.runSequences("NoiommuModelTest.dma", SEQUENCES,
                r -> run(r::nextInt, STEPS, r.nextBoolean()));
        PathCounts.requireEveryPathBut(totals, Count.BOUNCED);
    }

    /**
     * One sequence, also the Jazzer op-sequence target's body.
     *
     * @return the model, with what the sequence did
     * @param choices where the steps come from
     * @param steps how many
     * @param debug whether the host runs with DMA-API debugging
     */
    static DmaApiModel run(DmaApiModel.Choices choices, int steps, boolean debug) {
        Host host = Host.builder().memory(512L << 20).dmaApiDebug(debug)
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
                .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(28)))
                .build();
        long freeAtBoot = host.pageAllocator().freePageCount();
        LoadedModule module = host.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, "1"),
                "class path");
        DmaApiModel model = new DmaApiModel(host, module, new DmaApiModel.Backend() {
            @Override
            public Errno mapOutcome(PciDevice device, long phys, long size) {
                return Long.compareUnsigned(phys + size - 1, device.dmaMask()) > 0 ? Errno.EIO : null;
            }

            @Override
            public boolean bounced(long dmaAddress) {
                return false;
            }

            @Override
            public long slotsInUse() {
                return 0;
            }
        }, List.of(host.pci("0000:06:0d.0"), host.pci("0000:07:00.0")));
        for (int i = 0; i < steps; i++) {
            model.step(choices);
        }
        model.teardown();
        host.modules().remove("noiommu");
        DmaApiModel.requireClean(host, freeAtBoot);
        return model;
    }

    @Test
    void vfioAgreesWithTheModelAfterEveryStep() {
        VfioModel.Totals run = VfioModel.runSequences("NoiommuModelTest.vfio", SEQUENCES,
                r -> runVfio(r::nextInt, STEPS));
        Map<VfioModel.Count, Long> totals = run.counts();
        assertThat(run.checkedBytes()).as("bytes the device and the process read").isGreaterThan(1L << 20);
        PathCounts.requireEveryPathBut(totals, VfioModel.Count.BOUNCED);
    }

    /**
     * One VFIO sequence: a root process with its container on noiommu (iova = phys of a contiguous buffer).
     *
     * @param choices where the steps come from
     * @param steps how many
     * @return the model
     */
    static VfioModel runVfio(DmaApiModel.Choices choices, int steps) {
        Host host = Host.builder().memory(512L << 20).pciDevice(PciDeviceSpec.of(NIC)).build();
        long freeAtBoot = host.pageAllocator().freePageCount();
        host.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, "1"), "class path");
        UserProcess p = host.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
        host.vfio().bind(NIC);
        long base = p.mmapContiguous(VfioModel.PAGES * 4096L);
        VfioContainer container = host.vfio().openContainer(p);
        VfioGroupFile group = host.vfio().openGroup(p, host.pci(NIC).group().id());
        group.setContainer(p, container);
        container.setIommu(p, Vfio.NOIOMMU_IOMMU);
        group.getDevice(p, NIC);
        VfioModel model = new VfioModel(p, container, host.pci(NIC), base, new VfioModel.Backend() {
            @Override
            public long iova(UserProcess process, long vaddr, long size, DmaApiModel.Choices c) {
                return process.virtToPhys(vaddr);
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
        group.close(p);
        container.close(p);
        p.exit();
        host.vfio().unbind(NIC);
        host.modules().remove("noiommu");
        DmaApiModel.requireClean(host, freeAtBoot);
        return model;
    }
}
