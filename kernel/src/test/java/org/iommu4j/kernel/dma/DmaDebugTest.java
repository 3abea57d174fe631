package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;

import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

class DmaDebugTest {
    private static final String NIC = "DMA-API: e1000e 0000:06:0d.0: ";
    private final Host host = Host.builder().dmaApiDebug(true)
            .pciDevice(PciDeviceSpec.of("0000:06:0d.0").withDriver("e1000e"))
            .pciDevice(PciDeviceSpec.of("0000:07:00.0").withDriver("ahci"))
            .build();
    private final PciDevice nic = host.pci("0000:06:0d.0");
    private final PciDevice disk = host.pci("0000:07:00.0");
    private final DmaApi dma = host.dma();
    private final DmaDebug debug = dma.debug().orElseThrow();

    private long buffer(int pages) {
        return host.pageAllocator().allocateContiguous(pages, Long.MAX_VALUE);
    }

    private java.util.List<String> warnings() {
        return host.log().messages().stream().filter(m -> m.startsWith("DMA-API: ") && m.contains(": device")
                || m.contains("cacheline")).toList();
    }

    @Test
    void isOffUnlessTheKernelIsBuiltWithItAndTheCommandLineCanTurnItOff() {
        Host plain = Host.builder().build();
        assertThat(plain.dma().debug()).isEmpty();
        assertThat(plain.log().messages()).noneMatch(m -> m.startsWith("DMA-API"));

        assertThat(host.log().messages()).contains("DMA-API: preallocated 65536 debug entries",
                "DMA-API: debugging enabled by kernel config");

        Host off = Host.builder().dmaApiDebug(true).commandLine("dma_debug=off").build();
        assertThat(off.dma().debug()).isEmpty();
        assertThat(off.log().messages()).contains("DMA-API: debugging disabled on kernel command line");

        Host sized = Host.builder().dmaApiDebug(true).commandLine("dma_debug_entries=1024").build();
        assertThat(sized.dma().debug().orElseThrow().preallocatedEntries()).isEqualTo(1024);
    }

    @Test
    void aDriverThatUsesTheApiRightGetsNoReport() {
        long phys = buffer(9);
        long rx = dma.map(nic, phys, 34816, DmaDirection.FROM_DEVICE);
        long tx = dma.map(nic, phys + 0x9000 - 64, 64, DmaDirection.TO_DEVICE);
        assertThat(debug.activeEntries()).isEqualTo(2);
        assertThat(debug.dump(nic)).extracting(DmaDebug.Entry::dumpLine).containsExactly(
                String.format("e1000e 0000:06:0d.0 single P=%x N=%x D=%x L=8800 DMA_FROM_DEVICE", phys, phys >>> 12,
                        rx),
                String.format("e1000e 0000:06:0d.0 single P=%x N=%x D=%x L=40 DMA_TO_DEVICE", phys + 0x8fc0,
                        (phys + 0x8fc0) >>> 12, tx));
        dma.syncForCpu(nic, rx + 4096, 1500, DmaDirection.FROM_DEVICE);
        dma.syncForDevice(nic, rx, 34816, DmaDirection.FROM_DEVICE);
        dma.syncForDevice(nic, tx, 64, DmaDirection.TO_DEVICE);
        dma.unmap(nic, tx, 64, DmaDirection.TO_DEVICE);
        dma.unmap(nic, rx, 34816, DmaDirection.FROM_DEVICE);
        CoherentBuffer ring = dma.allocateCoherent(nic, 4096);
        dma.freeCoherent(nic, ring);

        assertThat(debug.errorCount()).isZero();
        assertThat(debug.reports()).isEmpty();
        assertThat(debug.activeEntries()).isZero();
        assertThat(debug.dump(null)).isEmpty();
    }

    @Test
    void unmappingWithAnotherSizeIsReportedInTheKernelsWordsAndTheMappingIsGone() {
        long phys = buffer(9);
        long rx = dma.map(nic, phys, 34816, DmaDirection.FROM_DEVICE);
        dma.unmap(nic, rx, 32768, DmaDirection.FROM_DEVICE);

        String expected = String.format(NIC + "device driver frees DMA memory with different size"
                + " [device address=0x%016x] [map size=34816 bytes] [unmap size=32768 bytes]", rx);
        assertThat(debug.reports()).containsExactly(expected);
        assertThat(warnings()).containsExactly(expected);
        assertThat(debug.errorCount()).isEqualTo(1);
        assertThat(debug.activeEntries()).isZero();
        assertThat(host.taint().taintedString()).isEqualTo("Tainted: G        W          "); // WARN() sets W
    }

    @Test
    void freeingWhatWasNeverMappedAndTheErrorAddressAreTwoDifferentReports() {
        debug.setAllErrors(true);
        dma.unmap(nic, 0x1234_5000L, 4096, DmaDirection.TO_DEVICE);
        dma.unmap(nic, DmaDebug.DMA_MAPPING_ERROR, 4096, DmaDirection.TO_DEVICE);

        assertThat(warnings()).containsExactly(
                NIC + "device driver tries to free DMA memory it has not allocated"
                        + " [device address=0x0000000012345000] [size=4096 bytes]",
                NIC + "device driver tries to free an invalid DMA memory address");
    }

    @Test
    void anotherDirectionOrAnotherFunctionOnUnmapIsReported() {
        debug.setAllErrors(true);
        long phys = buffer(1);
        long a = dma.map(nic, phys, 512, DmaDirection.TO_DEVICE);
        dma.unmap(nic, a, 512, DmaDirection.BIDIRECTIONAL);
        CoherentBuffer ring = dma.allocateCoherent(nic, 8192);
        dma.unmap(nic, ring.dmaAddress(), ring.size(), DmaDirection.BIDIRECTIONAL);

        assertThat(warnings()).containsExactly(
                String.format(NIC + "device driver frees DMA memory with different direction"
                        + " [device address=0x%016x] [size=512 bytes] [mapped with DMA_TO_DEVICE]"
                        + " [unmapped with DMA_BIDIRECTIONAL]", a),
                String.format(NIC + "device driver frees DMA memory with wrong function"
                        + " [device address=0x%016x] [size=8192 bytes] [mapped as coherent] [unmapped as single]",
                        ring.dmaAddress()));
        assertThat(debug.activeEntries()).isZero();
    }

    @Test
    void syncsAreCheckedAgainstTheMappingTheyFallIn() {
        debug.setAllErrors(true);
        long phys = buffer(2);
        long tx = dma.map(nic, phys, 4096, DmaDirection.TO_DEVICE);
        dma.syncForCpu(nic, tx, 4096, DmaDirection.FROM_DEVICE);
        dma.syncForDevice(nic, tx + 2048, 4096, DmaDirection.TO_DEVICE);
        dma.syncForDevice(nic, tx + 8192, 16, DmaDirection.TO_DEVICE);
        long rx = dma.map(nic, phys + 4096, 4096, DmaDirection.FROM_DEVICE);
        dma.syncForDevice(nic, rx, 64, DmaDirection.TO_DEVICE);

        assertThat(warnings()).containsExactly(
                String.format(NIC + "device driver syncs DMA memory with different direction"
                        + " [device address=0x%016x] [size=4096 bytes] [mapped with DMA_TO_DEVICE]"
                        + " [synced with DMA_FROM_DEVICE]", tx),
                String.format(NIC + "device driver syncs device read-only DMA memory for cpu"
                        + " [device address=0x%016x] [size=4096 bytes] [mapped with DMA_TO_DEVICE]"
                        + " [synced with DMA_FROM_DEVICE]", tx),
                String.format(NIC + "device driver tries to sync DMA memory it has not allocated"
                        + " [device address=0x%016x] [size=4096 bytes]", tx + 2048),
                String.format(NIC + "device driver tries to sync DMA memory it has not allocated"
                        + " [device address=0x%016x] [size=16 bytes]", tx + 8192),
                String.format(NIC + "device driver syncs DMA memory with different direction"
                        + " [device address=0x%016x] [size=4096 bytes] [mapped with DMA_FROM_DEVICE]"
                        + " [synced with DMA_TO_DEVICE]", rx),
                String.format(NIC + "device driver syncs device write-only DMA memory to device"
                        + " [device address=0x%016x] [size=4096 bytes] [mapped with DMA_FROM_DEVICE]"
                        + " [synced with DMA_TO_DEVICE]", rx));
    }

    @Test
    void twoMappingsTheDeviceMayWriteThroughTheSameCacheLineAreReported() {
        long phys = buffer(1);
        dma.map(nic, phys, 64, DmaDirection.TO_DEVICE);
        dma.map(nic, phys, 64, DmaDirection.TO_DEVICE);
        assertThat(debug.errorCount()).isZero();

        long a = dma.map(nic, phys + 128, 64, DmaDirection.FROM_DEVICE);
        dma.map(nic, phys + 128 + 32, 32, DmaDirection.BIDIRECTIONAL);
        assertThat(warnings()).containsExactly(
                NIC + "cacheline tracking EEXIST, overlapping mappings aren't supported");

        dma.unmap(nic, phys + 128 + 32, 32, DmaDirection.BIDIRECTIONAL);
        dma.unmap(nic, a, 64, DmaDirection.FROM_DEVICE);
        debug.setAllErrors(true);
        dma.map(nic, phys + 128, 64, DmaDirection.FROM_DEVICE);
        assertThat(debug.errorCount()).isEqualTo(1);
    }

    @Test
    void aDriverReleasedWithLiveMappingsIsReportedWithOneOfThem() {
        long phys = buffer(1);
        dma.map(nic, phys, 1500, DmaDirection.FROM_DEVICE);
        long last = dma.map(nic, phys + 2048, 60, DmaDirection.TO_DEVICE);
        host.buses().unbind(nic);

        assertThat(warnings()).containsExactly(String.format("DMA-API: pci 0000:06:0d.0: device driver has pending"
                + " DMA allocations while released from device [count=2]\nOne of leaked entries details:"
                + " [device address=0x%016x] [size=60 bytes] [mapped with DMA_TO_DEVICE] [mapped as single]", last));
    }

    @Test
    void onlyTheFirstErrorIsPrintedByDefaultButEveryOneIsCountedAndKept() {
        dma.unmap(nic, 0x10_0000L, 64, DmaDirection.TO_DEVICE);
        dma.unmap(nic, 0x20_0000L, 64, DmaDirection.TO_DEVICE);
        dma.unmap(disk, 0x30_0000L, 64, DmaDirection.TO_DEVICE);
        assertThat(warnings()).hasSize(1);
        assertThat(debug.errorCount()).isEqualTo(3);
        assertThat(debug.reports()).hasSize(3);

        debug.setNumErrors(2);
        debug.setDriverFilter("ahci");
        dma.unmap(nic, 0x40_0000L, 64, DmaDirection.TO_DEVICE);
        dma.unmap(disk, 0x50_0000L, 64, DmaDirection.TO_DEVICE);
        dma.unmap(disk, 0x60_0000L, 64, DmaDirection.TO_DEVICE);
        assertThat(host.log().messages()).contains("DMA-API: enable driver filter for driver [ahci]");
        assertThat(warnings()).hasSize(2).last().asString().startsWith("DMA-API: ahci 0000:07:00.0: ")
                .contains("0x0000000000500000");
        assertThat(debug.errorCount()).isEqualTo(6);

        debug.setDriverFilter("");
        assertThat(host.log().messages()).contains("DMA-API: switching off dma-debug driver filter");
        debug.setNumErrors(1);
        debug.setDriverFilter(" ahci");  // the kernel looks at the first character only: not alphanumeric, off
        dma.unmap(nic, 0x70_0000L, 64, DmaDirection.TO_DEVICE);
        assertThat(warnings()).hasSize(3).last().asString().startsWith(NIC);
    }

    @Test
    void racingUnmapsOfTwoIdenticalMappingsEachTakeOneRecord() throws Exception {
        debug.setAllErrors(true);
        long phys = buffer(1);
        for (int round = 0; round < 200; round++) {
            long a = dma.map(nic, phys, 64, DmaDirection.TO_DEVICE);
            long b = dma.map(nic, phys, 64, DmaDirection.TO_DEVICE);
            java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
            Thread t = new Thread(() -> {
                try {
                    go.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                dma.unmap(nic, a, 64, DmaDirection.TO_DEVICE);
            });
            t.start();
            go.countDown();
            dma.unmap(nic, b, 64, DmaDirection.TO_DEVICE);
            t.join();
        }
        assertThat(debug.activeEntries()).isZero();
        assertThat(debug.dump(nic)).isEmpty();
        assertThat(debug.errorCount()).isZero();
    }

    /**
     * Linux v6.12's debug.c acts on the driver's unbind only (a report, the entries kept) and not on removal:
     * the records stay until the unmaps, which the DMA API's live-mapping table still counts, so an unmap after
     * a hot removal is no false "has not allocated" report.
     */
    @Test
    void aRemovedDevicesRecordsStayUntilUnmappedAndItsDriversReleaseReportsThem() {
        long phys = buffer(1);
        long a = dma.map(nic, phys, 64, DmaDirection.FROM_DEVICE);
        host.buses().remove(nic.name());
        assertThat(debug.activeEntries()).isEqualTo(1);
        assertThat(debug.dump(null)).extracting(DmaDebug.Entry::dmaAddress).containsExactly(a);
        // reported after the unbind, as the kernel's notifier is: dev_driver_string names the bus then
        assertThat(debug.reports()).containsExactly("DMA-API: pci 0000:06:0d.0: device driver has pending DMA"
                + " allocations while"
                + " released from device [count=1]\nOne of leaked entries details: [device address="
                + String.format("0x%016x", a) + "] [size=64 bytes] [mapped with DMA_FROM_DEVICE] [mapped as"
                + " single]");

        dma.unmap(nic, a, 64, DmaDirection.FROM_DEVICE);
        assertThat(debug.activeEntries()).isZero();
        assertThat(debug.dump(null)).isEmpty();
        assertThat(debug.errorCount()).isEqualTo(1);
        assertThat(debug.reports()).noneMatch(r -> r.contains("has not allocated"));
    }

    @Test
    void twoHostsKeepTheirOwnRecords() {
        Host other = Host.builder().dmaApiDebug(true).pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        dma.map(nic, buffer(1), 64, DmaDirection.TO_DEVICE);
        other.dma().unmap(other.pci("0000:06:0d.0"), 0x10_0000L, 64, DmaDirection.TO_DEVICE);
        assertThat(debug.activeEntries()).isEqualTo(1);
        assertThat(debug.errorCount()).isZero();
        assertThat(other.dma().debug().orElseThrow().errorCount()).isEqualTo(1);
    }
}
