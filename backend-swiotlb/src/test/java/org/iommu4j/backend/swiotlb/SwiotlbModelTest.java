package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.BounceBufferPool;
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
 * The model-based stateful test of swiotlb's DMA ops ({@link DmaApiModel}): a 28-bit device's buffers above
 * 256 MiB bounce, a 64-bit device's never do (or every mapping does, with {@code force}); the slots in use must
 * equal the live bounces' after every step, and the bytes each side sees must be the model's. {@code -Pstress}
 * raises the number of sequences ({@code iommu4j.model.sequences}).
 */
class SwiotlbModelTest {
    static final int SEQUENCES = Seeded.count("iommu4j.model.sequences", 200);
    static final int STEPS = Seeded.count("iommu4j.model.steps", 500);
    private static final String NIC = "0000:06:0d.0";
    /** swiotlb exports its pool and, like a Linux module, leaves the export for unload to remove. */
    private static final String SWIOTLB_EXPORT = "swiotlb: left 1 registrations behind at exit; removed them";

    @Test
    void theDmaApiAgreesWithTheModelAfterEveryStep() {
        Map<DmaApiModel.Count, Long> totals = DmaApiModel.runSequences("SwiotlbModelTest.dma", SEQUENCES,
                r -> run(r::nextInt, STEPS, r.nextBoolean(), r.nextInt(4) == 0));
        PathCounts.requireEveryPathBut(totals, Count.MAP_REFUSED);
    }

    /**
     * One sequence, also the Jazzer op-sequence target's body.
     *
     * @return the model, with what the sequence did
     * @param choices where the steps come from
     * @param steps how many
     * @param debug whether the host runs with DMA-API debugging
     * @param force whether every mapping bounces
     */
    static DmaApiModel run(DmaApiModel.Choices choices, int steps, boolean debug, boolean force) {
        Host host = Host.builder().memory(512L << 20).dmaApiDebug(debug)
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
                .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(28)))
                .build();
        long freeAtBoot = host.pageAllocator().freePageCount();
        LoadedModule module = host.modules().insert(new SwiotlbProvider(),
                Map.of("nslabs", "4096", "force", force ? "1" : "0"), "class path");
        BounceBufferPool pool = ((SwiotlbBackend) module.backend()).pool();
        DmaApiModel model = new DmaApiModel(host, module, new DmaApiModel.Backend() {
            @Override
            public Errno mapOutcome(PciDevice device, long phys, long size) {
                return null; // the pool (8 MiB) holds every buffer the model maps at once
            }

            @Override
            public boolean bounced(long dmaAddress) {
                return pool.contains(dmaAddress);
            }

            @Override
            public long slotsInUse() {
                return pool.stats().usedSlots();
            }
        }, List.of(host.pci("0000:06:0d.0"), host.pci("0000:07:00.0")));
        for (int i = 0; i < steps; i++) {
            model.step(choices);
        }
        model.teardown();
        host.modules().remove("swiotlb");
        DmaApiModel.requireClean(host, freeAtBoot, SWIOTLB_EXPORT);
        return model;
    }

    @Test
    void vfioAgreesWithTheModelAfterEveryStep() {
        VfioModel.Totals run = VfioModel.runSequences("SwiotlbModelTest.vfio", SEQUENCES,
                r -> runVfio(r::nextInt, STEPS));
        Map<VfioModel.Count, Long> totals = run.counts();
        assertThat(run.checkedBytes()).as("bytes the device and the process read").isGreaterThan(1L << 20);
        PathCounts.requireEveryPathBut(totals, VfioModel.Count.CLASHES);
    }

    /**
     * One VFIO sequence: a root process with its container on the SWIOTLB-IOMMU (a 28-bit device, scattered pages above its reach: every mapping is a bounce window).
     *
     * @param choices where the steps come from
     * @param steps how many
     * @return the model
     */
    static VfioModel runVfio(DmaApiModel.Choices choices, int steps) {
        Host host = Host.builder().memory(512L << 20)
                .pciDevice(PciDeviceSpec.of(NIC).withDmaMask(DmaMasks.bits(28))).build();
        long freeAtBoot = host.pageAllocator().freePageCount();
        LoadedModule module = host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "4096",
                SwiotlbProvider.ENABLE_IOMMU, "1", "hide", "(" + NIC + ")"), "class path");
        BounceBufferPool pool = ((SwiotlbBackend) module.backend()).pool();
        UserProcess p = host.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
        host.vfio().bind(NIC);
        long base = p.mmap(VfioModel.PAGES * 4096L);
        VfioContainer container = host.vfio().openContainer(p);
        VfioGroupFile group = host.vfio().openGroup(p, host.pci(NIC).group().id());
        group.setContainer(p, container);
        container.setIommu(p, Vfio.SWIOTLB_IOMMU);
        group.getDevice(p, NIC);
        VfioModel model = new VfioModel(p, container, host.pci(NIC), base, new VfioModel.Backend() {
            @Override
            public long iova(UserProcess process, long vaddr, long size, DmaApiModel.Choices c) {
                return Vfio.ANY_IOVA;
            }

            @Override
            public boolean bounced(long iova) {
                return pool.contains(iova);
            }

            @Override
            public long slotsInUse() {
                return pool.stats().usedSlots();
            }

            @Override
            public boolean bounces() {
                return true;
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
        host.modules().remove("swiotlb");
        DmaApiModel.requireClean(host, freeAtBoot, SWIOTLB_EXPORT);
        return model;
    }
}
