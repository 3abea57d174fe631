package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.proc.UserProcess;
import org.junit.jupiter.api.Test;

/** The CPU-touch check beyond the kernel's DMA-API debugging ({@link CpuAccessCheck}). */
class CpuAccessCheckTest {
    private static final String NIC = "DMA-API: e1000e 0000:06:0d.0: ";

    private static Host host(boolean debug, String cmdline) {
        return Host.builder().dmaApiDebug(debug).commandLine(cmdline)
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDriver("e1000e")).build();
    }

    private static List<String> warnings(Host host) {
        return host.log().messages().stream().filter(m -> m.startsWith("DMA-API: e1000e")).toList();
    }

    @Test
    void readingAFromDeviceBufferTheDeviceOwnsIsReportedUntilSyncForCpuAndAgainAfterSyncForDevice() {
        Host host = host(true, "");
        DmaDebug debug = host.dma().debug().orElseThrow();
        debug.setAllErrors(true);
        PciDevice nic = host.pci("0000:06:0d.0");
        long phys = host.pageAllocator().allocateContiguous(2, Long.MAX_VALUE);
        long rx = host.dma().map(nic, phys, 2048, DmaDirection.FROM_DEVICE);
        nic.dmaWrite(rx + 100, new byte[] {1, 2, 3}); // the device's own DMA is no CPU access
        byte[] seen = new byte[64];
        host.memory().read(phys + 64, seen, 0, 64);
        String report = String.format(NIC + "cpu reads DMA memory the device may still write [cpu address=0x%x]"
                + " [size=64 bytes] [device address=0x%016x] [map size=2048 bytes] [mapped with DMA_FROM_DEVICE]:"
                + " sync it for the cpu or unmap it first", phys + 64, rx);
        assertThat(debug.reports()).containsExactly(report);
        assertThat(warnings(host)).containsExactly(report);
        assertThat(debug.errorCount()).isEqualTo(1);

        host.memory().read(phys + 4096, seen, 0, 64); // past the mapping: not its memory
        host.memory().write(phys, new byte[8], 0, 8);  // a write the device will overwrite: not a hazard here
        assertThat(debug.errorCount()).isEqualTo(1);

        host.dma().syncForCpu(nic, rx, 2048, DmaDirection.FROM_DEVICE);
        host.memory().read(phys + 64, seen, 0, 64);
        assertThat(debug.errorCount()).isEqualTo(1);

        host.dma().syncForDevice(nic, rx, 2048, DmaDirection.FROM_DEVICE);
        host.memory().read(phys + 2047, seen, 0, 1);
        assertThat(debug.reports()).hasSize(2).last().asString()
                .startsWith(String.format(NIC + "cpu reads DMA memory the device may still write [cpu address=0x%x]"
                        + " [size=1 bytes]", phys + 2047));

        host.dma().unmap(nic, rx, 2048, DmaDirection.FROM_DEVICE);
        host.memory().read(phys, seen, 0, 64);
        assertThat(debug.errorCount()).isEqualTo(2);
        assertThat(debug.cpuAccessCheck().watchedMappings()).isZero();
    }

    @Test
    void writingAToDeviceBufferAfterHandoverIsReportedAlsoThroughAProcesssMemory() {
        Host host = host(true, "");
        DmaDebug debug = host.dma().debug().orElseThrow();
        debug.setAllErrors(true);
        PciDevice nic = host.pci("0000:06:0d.0");
        UserProcess app = host.spawn("app", 0, Set.of(Capability.CAP_SYS_RAWIO));
        long va = app.mmapContiguous(4096);
        long phys = app.virtToPhys(va);
        app.write(va, new byte[] {9, 9, 9, 9});
        long tx = host.dma().map(nic, phys, 512, DmaDirection.TO_DEVICE);
        app.read(va, 4); // reading what it sends is fine
        assertThat(debug.errorCount()).isZero();

        app.write(va + 10, new byte[] {7});
        String report = String.format(NIC + "cpu writes DMA memory it handed to the device [cpu address=0x%x]"
                + " [size=1 bytes] [device address=0x%016x] [map size=512 bytes] [mapped with DMA_TO_DEVICE]:"
                + " sync it for the cpu or unmap it first", phys + 10, tx);
        assertThat(debug.reports()).containsExactly(report);

        host.dma().syncForCpu(nic, tx, 512, DmaDirection.TO_DEVICE);
        host.memory().fill(phys, 512, (byte) 1);
        assertThat(debug.errorCount()).isEqualTo(1);
        host.dma().syncForDevice(nic, tx, 512, DmaDirection.TO_DEVICE);
        host.memory().copy(phys + 1024, phys + 500, 100); // the copy's last 12 bytes land in the mapping
        assertThat(debug.reports()).hasSize(2).last().asString().startsWith(String.format(NIC
                + "cpu writes DMA memory it handed to the device [cpu address=0x%x] [size=100 bytes]", phys + 500));

        long both = host.dma().map(nic, phys + 2048, 256, DmaDirection.BIDIRECTIONAL);
        host.memory().write(phys + 2048 + 255, new byte[1], 0, 1);
        assertThat(debug.reports()).hasSize(3).last().asString().contains("[mapped with DMA_BIDIRECTIONAL]");
        host.dma().unmap(nic, both, 256, DmaDirection.BIDIRECTIONAL);
        host.dma().unmap(nic, tx, 512, DmaDirection.TO_DEVICE);
        app.write(va, new byte[64]);
        assertThat(debug.errorCount()).isEqualTo(3);
    }

    @Test
    void withoutDmaApiDebuggingOrWithItOffOnTheCommandLineNothingIsWatchedOrReported() {
        for (Host host : List.of(host(false, ""), host(true, "dma_debug=off"))) {
            PciDevice nic = host.pci("0000:06:0d.0");
            long phys = host.pageAllocator().allocateContiguous(1, Long.MAX_VALUE);
            long rx = host.dma().map(nic, phys, 256, DmaDirection.FROM_DEVICE);
            long tx = host.dma().map(nic, phys + 1024, 256, DmaDirection.TO_DEVICE);
            byte[] seen = new byte[256];
            host.memory().read(phys, seen, 0, 256);
            host.memory().write(phys + 1024, seen, 0, 256);
            host.dma().unmap(nic, rx, 256, DmaDirection.FROM_DEVICE);
            host.dma().unmap(nic, tx, 256, DmaDirection.TO_DEVICE);
            assertThat(host.dma().debug()).isEmpty();
            assertThat(host.log().messages()).noneMatch(m -> m.contains("cpu reads") || m.contains("cpu writes"));
            assertThat(host.taint().taintedString()).isEqualTo("Not tainted");
        }
    }

    @Test
    void aDriverThatSyncsBeforeTouchingGetsNoReport() {
        Host host = host(true, "");
        DmaDebug debug = host.dma().debug().orElseThrow();
        PciDevice nic = host.pci("0000:06:0d.0");
        long phys = host.pageAllocator().allocateContiguous(1, Long.MAX_VALUE);
        byte[] buf = new byte[128];
        for (int round = 0; round < 3; round++) {
            long rx = host.dma().map(nic, phys, 128, DmaDirection.FROM_DEVICE);
            nic.dmaWrite(rx, new byte[] {(byte) round});
            host.dma().syncForCpu(nic, rx, 128, DmaDirection.FROM_DEVICE);
            host.memory().read(phys, buf, 0, 128);
            assertThat(buf[0]).isEqualTo((byte) round);
            host.dma().syncForDevice(nic, rx, 128, DmaDirection.FROM_DEVICE);
            host.dma().unmap(nic, rx, 128, DmaDirection.FROM_DEVICE);
            host.memory().read(phys, buf, 0, 128);
        }
        assertThat(debug.errorCount()).isZero();
        assertThat(debug.reports()).isEmpty();
    }
}
