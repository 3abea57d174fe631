package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.junit.jupiter.api.Test;

/** Issue 11 #12: the DMA-API checker's records stay true when unmaps race, and a huge sync is checked unsigned. */
class DmaDebugOrderingTest {
    private static final String NIC = "DMA-API: e1000e 0000:06:0d.0: ";
    private final Host host = Host.builder().dmaApiDebug(true)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDriver("e1000e")).build();
    private final PciDevice nic = host.pci("0000:06:0d.0");
    private final DmaApi dma = host.dma();
    private final DmaDebug debug = dma.debug().orElseThrow();

    /** Stateful ops, as a bounce pool is: an unmap of something not mapped is refused. */
    static final class SlotOps implements DmaOps {
        final Set<Long> live = ConcurrentHashMap.newKeySet();
        final CountDownLatch firstUnmapEntered = new CountDownLatch(1);
        final CountDownLatch secondUnmapDone = new CountDownLatch(1);
        private final java.util.concurrent.atomic.AtomicInteger unmaps = new java.util.concurrent.atomic.AtomicInteger();

        @Override
        public long map(Device device, long phys, long size, DmaDirection direction) {
            live.add(0x4000_0000L);
            return 0x4000_0000L;
        }

        @Override
        public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
            if (unmaps.incrementAndGet() == 1) {
                firstUnmapEntered.countDown();
                try {
                    // the racing unmap gets every chance to overtake this one
                    secondUnmapDone.await(300, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            } else {
                secondUnmapDone.countDown();
            }
            if (!live.remove(dmaAddress)) {
                throw new IommuException(Errno.EINVAL, String.format("slots: unmap of 0x%x, which is not mapped",
                        dmaAddress));
            }
        }

        @Override
        public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        }

        @Override
        public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        }

        @Override
        public CoherentBuffer allocateCoherent(Device device, long size) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void freeCoherent(Device device, CoherentBuffer buffer) {
            throw new UnsupportedOperationException();
        }
    }

    @Test
    void twoThreadsUnmappingOneMappingLeaveNoStaleRecordAndTheLoserIsRefused() throws Exception {
        SlotOps ops = new SlotOps();
        dma.view(ModuleRef.KERNEL).setDefaultOps(ops);
        long a = dma.map(nic, 0x10_0000, 512, DmaDirection.FROM_DEVICE);
        AtomicReference<Throwable> first = new AtomicReference<>();
        Thread t = new Thread(() -> {
            try {
                dma.unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
            } catch (Throwable e) {
                first.set(e);
            }
        });
        t.start();
        assertThat(ops.firstUnmapEntered.await(10, TimeUnit.SECONDS)).isTrue();
        assertThatThrownBy(() -> dma.unmap(nic, a, 512, DmaDirection.FROM_DEVICE))
                .hasMessage("slots: unmap of 0x40000000, which is not mapped");
        t.join(10_000);

        assertThat(first.get()).as("the first unmap took the mapping and succeeded").isNull();
        assertThat(ops.live).isEmpty();
        assertThat(debug.activeEntries()).isZero();
        assertThat(debug.dump(nic)).isEmpty();
        assertThat(debug.reports()).containsExactly(NIC + "device driver tries to free DMA memory it has not"
                + " allocated [device address=0x0000000040000000] [size=512 bytes]");
        assertThat(dma.liveMappings(ModuleRef.KERNEL)).isZero();
    }

    @Test
    void aSyncOfLongMaxValueBytesPastAMappingsStartIsNotInsideIt() {
        long a = dma.map(nic, 0x10_0000, 4096, DmaDirection.FROM_DEVICE);
        dma.syncForCpu(nic, a + 16, Long.MAX_VALUE, DmaDirection.FROM_DEVICE);
        assertThat(debug.reports()).containsExactly(String.format(NIC + "device driver tries to sync DMA memory it"
                + " has not allocated [device address=0x%016x] [size=%d bytes]", a + 16, Long.MAX_VALUE));
        dma.unmap(nic, a, 4096, DmaDirection.FROM_DEVICE);
        assertThat(debug.activeEntries()).isZero();
    }
}
