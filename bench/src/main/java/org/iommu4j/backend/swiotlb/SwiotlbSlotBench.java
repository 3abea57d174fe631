package org.iommu4j.backend.swiotlb;

import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.bench.Machines;
import org.iommu4j.bench.Source;
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
 * Row 3: swiotlb's slot allocate+free. It sits in the backend's package (in the bench jar, not the backend's) to
 * reach the pool's package-private window calls, the search and release with no copy at all; beside them the
 * kernel's own pair with a 1-byte copy ({@code pool.map}/{@code unmap}, as xen-swiotlb calls it) and the same
 * through the DMA API.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class SwiotlbSlotBench {
    /** A host with the kernel's default pool, one per thread. */
    @State(Scope.Thread)
    public static class Slots {
        /** Slots in the pool: 32768 is the kernel's 64 MiB default. */
        @Param({"32768"})
        public int nslabs;
        Host host;
        PciDevice nic;
        SwiotlbPool pool;
        Source source;

        /** Loads swiotlb with {@code force}. */
        @Setup(Level.Trial)
        public void setUp() {
            host = Machines.host(1L << 30, "");
            SwiotlbBackend backend = (SwiotlbBackend) host.modules().insert(new SwiotlbProvider(),
                    Map.of("force", "1", "nslabs", Integer.toString(nslabs), "nareas", "2", "dynamic", "0"),
                    "class path").backend();
            pool = backend.pool();
            nic = host.pci(Machines.NIC);
            source = new Source(host.memory(), Machines.buffer(host, 4096));
        }
    }

    /**
     * @param s the host
     * @return the window's address
     */
    @Benchmark
    public long windowAllocateFree(Slots s) {
        long tlb = s.pool.allocateWindow(s.nic, SwiotlbPool.IO_TLB_SIZE);
        s.pool.releaseWindow(s.nic, tlb, SwiotlbPool.IO_TLB_SIZE);
        return tlb;
    }

    /**
     * @param s the host
     * @return the bounce address
     */
    @Benchmark
    public long poolMapUnmap1B(Slots s) {
        s.source.dirty();
        long tlb = s.pool.map(s.nic, s.source.phys(), 1, 1, 0, DmaDirection.TO_DEVICE);
        s.pool.unmap(s.nic, tlb, 1, DmaDirection.TO_DEVICE);
        return tlb;
    }

    /**
     * @param s the host
     * @return the bounce address
     */
    @Benchmark
    public long dmaApiMapUnmap1B(Slots s) {
        s.source.dirty();
        long tlb = s.host.dma().map(s.nic, s.source.phys(), 1, DmaDirection.TO_DEVICE);
        s.host.dma().unmap(s.nic, tlb, 1, DmaDirection.TO_DEVICE);
        return tlb;
    }
}
