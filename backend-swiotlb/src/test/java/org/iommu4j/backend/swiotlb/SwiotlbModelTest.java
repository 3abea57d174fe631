package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.Errno;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.testsupport.DmaApiModel;
import org.iommu4j.testsupport.DmaApiModel.Count;
import org.iommu4j.testsupport.Seeded;
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

    @Test
    void theDmaApiAgreesWithTheModelAfterEveryStep() {
        Map<Count, Long> totals = new EnumMap<>(Count.class);
        Seeded.forEach("SwiotlbModelTest.dma", SEQUENCES, r -> {
            DmaApiModel model = run(r::nextInt, STEPS, r.nextBoolean(), r.nextInt(4) == 0);
            for (Count k : Count.values()) {
                totals.merge(k, model.count(k), Long::sum);
            }
        });
        // every path was taken, and only those the backend has
        assertThat(totals).as("what the sequences did").containsEntry(Count.MAP_REFUSED, 0L)
                .allSatisfy((k, v) -> assertThat(k == Count.MAP_REFUSED || v > 0).as("%s: %d", k, v).isTrue());
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
        return model;
    }
}
