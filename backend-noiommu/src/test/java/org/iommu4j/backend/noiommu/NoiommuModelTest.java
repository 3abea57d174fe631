package org.iommu4j.backend.noiommu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.EnumMap;
import java.util.List;
import java.util.Map;
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
 * The model-based stateful test of noiommu's DMA ops ({@link DmaApiModel}): seeded sequences of maps, unmaps,
 * syncs, device and CPU accesses, coherent buffers and refused calls on a host with a 64-bit and a 28-bit
 * device, every step checked against the model; with and without DMA-API debugging. {@code -Pstress} raises the
 * number of sequences ({@code iommu4j.model.sequences}).
 */
class NoiommuModelTest {
    static final int SEQUENCES = Seeded.count("iommu4j.model.sequences", 200);
    static final int STEPS = Seeded.count("iommu4j.model.steps", 500);

    @Test
    void theDmaApiAgreesWithTheModelAfterEveryStep() {
        Map<Count, Long> totals = new EnumMap<>(Count.class);
        Seeded.forEach("NoiommuModelTest.dma", SEQUENCES, r -> {
            DmaApiModel model = run(r::nextInt, STEPS, r.nextBoolean());
            for (Count k : Count.values()) {
                totals.merge(k, model.count(k), Long::sum);
            }
        });
        // every path was taken, and only those the backend has
        assertThat(totals).as("what the sequences did").containsEntry(Count.BOUNCED, 0L)
                .allSatisfy((k, v) -> assertThat(k == Count.BOUNCED || v > 0).as("%s: %d", k, v).isTrue());
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
        return model;
    }
}
