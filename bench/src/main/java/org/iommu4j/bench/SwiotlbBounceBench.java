package org.iommu4j.bench;

import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Row 2: a bounced DMA API round trip (map, unmap) with {@code swiotlb force}, against the copies the pool makes
 * between the very addresses it used. v6.12's {@code swiotlb_tbl_map_single} copies the original into the slot for
 * every direction and unmap copies back for FROM_DEVICE, so the baseline is one copy for TO_DEVICE and two for
 * FROM_DEVICE. The addresses are recorded from the pool itself (one whole next-fit cycle), so the baseline touches
 * the same cold memory; {@link #hotCopies} repeats the copies at one slot, the hot-copy figure beside it.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class SwiotlbBounceBench {
    /** A bouncing host, one per thread. */
    @State(Scope.Thread)
    public static class Bouncer {
        /** Bytes per mapping. */
        @Param({"64", "4096", "65536", "262144"})
        public int size;
        /** TO_DEVICE or FROM_DEVICE. */
        @Param({"TO_DEVICE", "FROM_DEVICE"})
        public DmaDirection direction;
        /** Slots in the pool: 32768 is the kernel's 64 MiB default. */
        @Param({"32768"})
        public int nslabs;
        Host host;
        PhysicalMemory memory;
        PciDevice nic;
        Source source;
        long[] used;
        int next;

        /** Loads swiotlb with {@code force} and records one next-fit cycle of the pool's addresses. */
        @Setup(Level.Trial)
        public void setUp() {
            host = Machines.host(2L << 30, "");
            Machines.load(host, "swiotlb", Map.of("force", "1", "nslabs", Integer.toString(nslabs),
                    "dynamic", "0"));
            memory = host.memory();
            nic = host.pci(Machines.NIC);
            source = new Source(memory, Machines.buffer(host, size));
            // at least one whole walk of the pool: as many mappings as it has room for side by side
            int cycle = Math.max(1, Math.min(nslabs / ((size + 2047) / 2048), 1 << 16));
            used = new long[cycle];
            for (int i = 0; i < cycle; i++) {
                long dma = host.dma().map(nic, source.phys(), size, direction);
                host.dma().unmap(nic, dma, size, direction);
                used[i] = dma;
            }
        }

        long nextUsed() {
            long a = used[next];
            next = next + 1 == used.length ? 0 : next + 1;
            return a;
        }

        long copies(long tlb) {
            source.dirty();
            memory.copy(source.phys(), tlb, size);
            if (direction != DmaDirection.TO_DEVICE) {
                memory.copy(tlb, source.phys(), size);
            }
            return tlb;
        }
    }

    /**
     * @param b the host
     * @return the bounce address
     */
    @Benchmark
    public long roundTrip(Bouncer b) {
        b.source.dirty();
        long dma = b.host.dma().map(b.nic, b.source.phys(), b.size, b.direction);
        b.host.dma().unmap(b.nic, dma, b.size, b.direction);
        return dma;
    }

    /**
     * @param b the host
     * @return the slot address copied to
     */
    @Benchmark
    public long poolCopies(Bouncer b) {
        return b.copies(b.nextUsed());
    }

    /**
     * @param b the host
     * @return the slot address copied to
     */
    @Benchmark
    public long hotCopies(Bouncer b) {
        return b.copies(b.used[0]);
    }
}
