package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.lang.management.ManagementFactory;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

/** The exact live-mapping records cost no allocation per map, unmap or sync once a device's table has grown. */
class DmaApiSteadyStateTest {

    @Test
    void mapSyncUnmapAllocateNothingInTheSteadyState() {
        java.lang.management.ThreadMXBean bean = ManagementFactory.getThreadMXBean();
        assumeThat(bean).isInstanceOf(com.sun.management.ThreadMXBean.class);
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) bean;
        assumeThat(threads.isThreadAllocatedMemorySupported()).isTrue();
        threads.setThreadAllocatedMemoryEnabled(true);
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        PciDevice nic = host.pci("0000:06:0d.0");
        DmaApi dma = host.dma();
        long[] ring = new long[64];
        for (int round = 0; round < 300; round++) { // warm up: the table grows once, the JIT compiles
            cycle(dma, nic, ring);
        }
        long id = Thread.currentThread().getId();
        long before = threads.getThreadAllocatedBytes(id);
        for (int round = 0; round < 300; round++) {
            cycle(dma, nic, ring);
        }
        long allocated = threads.getThreadAllocatedBytes(id) - before;
        // 300 rounds of 64 maps, syncs and unmaps: even 8 bytes per call would be 450 KB
        assertThat(allocated).as("bytes allocated by 57600 DMA-API calls").isLessThan(16 * 1024);
    }

    private static void cycle(DmaApi dma, PciDevice nic, long[] ring) {
        for (int i = 0; i < ring.length; i++) {
            ring[i] = dma.map(nic, 0x10_0000L + 4096L * i, 1500, DmaDirection.FROM_DEVICE);
        }
        for (int i = 0; i < ring.length; i++) {
            dma.syncForCpu(nic, ring[i], 1500, DmaDirection.FROM_DEVICE);
            dma.unmap(nic, ring[i], 1500, DmaDirection.FROM_DEVICE);
        }
    }
}
