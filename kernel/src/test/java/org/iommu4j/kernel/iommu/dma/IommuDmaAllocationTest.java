package org.iommu4j.kernel.iommu.dma;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.management.ManagementFactory;
import org.iommu4j.api.BusType;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The DMA API's map and unmap through iommu-dma allocate nothing once the IOVA caches, flush queues and page
 * tables have grown: measured with the JVM's per-thread allocation counter, not timed.
 */
class IommuDmaAllocationTest {

    @ParameterizedTest
    @ValueSource(strings = {"iommu.strict=1", ""})
    void mapAndUnmapOfFourKilobytesAllocateNothingInTheSteadyState(String cmdline) {
        Host host = Host.builder().clock(() -> 0).commandLine(cmdline).pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
                .build();
        host.iommu().registerOps(BusType.PCI, new PageTableIommu().deferredFlush(), ModuleRef.KERNEL);
        PciDevice nic = host.pci("0000:06:0d.0");
        long buffer = host.pageAllocator().allocatePages(0, Long.MAX_VALUE);
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().getId();
        cycle(host, nic, buffer, 20_000);

        // The least of five rounds: a JIT recompilation in one round can allocate a little, while any per-call
        // allocation (16 bytes or more, 10000 times) shows in every round.
        long allocated = Long.MAX_VALUE;
        for (int round = 0; round < 5 && allocated >= 1024; round++) {
            long before = threads.getThreadAllocatedBytes(tid);
            cycle(host, nic, buffer, 10_000);
            allocated = Math.min(allocated, threads.getThreadAllocatedBytes(tid) - before);
        }

        assertThat(allocated).as("bytes allocated by 10000 map+unmap pairs (%s)", cmdline).isLessThan(1024);
    }

    private static void cycle(Host host, PciDevice nic, long buffer, int n) {
        for (int i = 0; i < n; i++) {
            long dma = host.dma().map(nic, buffer, 4096, DmaDirection.TO_DEVICE);
            host.dma().unmap(nic, dma, 4096, DmaDirection.TO_DEVICE);
        }
    }
}
