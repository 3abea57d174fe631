package org.iommu4j.kernel.iommu.dma;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
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
 * Two threads (two CPUs) map, DMA and unmap through one device's domain at once: no IOVA is live twice, and every
 * DMA lands in the buffer of the thread that mapped it.
 */
class IommuDmaConcurrencyTest {

    @ParameterizedTest
    @ValueSource(strings = {"", "iommu.strict=1"})
    void twoCpusNeverGetTheSameLiveIovaAndEachDmaReachesItsOwnBuffer(String cmdline) throws Exception {
        Host host = Host.builder().cpus(2).commandLine(cmdline).pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        host.iommu().registerOps(BusType.PCI, new PageTableIommu().deferredFlush(), ModuleRef.KERNEL);
        PciDevice nic = host.pci("0000:06:0d.0");
        Set<Long> live = ConcurrentHashMap.newKeySet();
        AtomicReference<String> failure = new AtomicReference<>();
        CountDownLatch start = new CountDownLatch(1);
        Thread[] threads = new Thread[2];
        for (int t = 0; t < threads.length; t++) {
            byte tag = (byte) (t + 1);
            long buffer = host.pageAllocator().allocatePages(0, Long.MAX_VALUE);
            threads[t] = new Thread(() -> {
                try {
                    start.await();
                    byte[] out = {tag, tag, tag, tag};
                    byte[] in = new byte[4];
                    for (int i = 0; i < 5000 && failure.get() == null; i++) {
                        long pages = 1 + (i % 3);
                        long dma = host.dma().map(nic, buffer, pages * 4096, DmaDirection.FROM_DEVICE);
                        if (!live.add(dma)) {
                            failure.compareAndSet(null, String.format("IOVA 0x%x handed out twice", dma));
                        }
                        host.memory().fill(buffer, 4, (byte) 0);
                        nic.dmaWrite(dma, out);
                        host.memory().read(buffer, in, 0, 4);
                        if (in[0] != tag || in[3] != tag) {
                            failure.compareAndSet(null, String.format("DMA to 0x%x missed thread %d's buffer", dma,
                                    tag));
                        }
                        live.remove(dma);
                        host.dma().unmap(nic, dma, pages * 4096, DmaDirection.FROM_DEVICE);
                    }
                } catch (Throwable e) {
                    failure.compareAndSet(null, e.toString());
                }
            });
            threads[t].start();
        }
        start.countDown();
        for (Thread t : threads) {
            t.join(30_000);
        }
        assertThat(failure.get()).isNull();
    }
}
