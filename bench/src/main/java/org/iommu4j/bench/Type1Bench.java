package org.iommu4j.bench;

import java.util.concurrent.TimeUnit;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.PhysicalMemory;
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
 * Row 6: VFIO type 1 {@code VFIO_IOMMU_MAP_DMA} + {@code UNMAP_DMA} of 4 KiB with 10 or 100 000 other mappings
 * live in the container (all of one page of the process, at distinct IOVAs).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class Type1Bench {
    static final long BASE = 1L << 32;

    /** The guest, the process and its live mappings. */
    @State(Scope.Thread)
    public static class Mapped {
        /** Mappings live while the benchmark maps and unmaps one more. */
        @Param({"10", "100000"})
        public int live;
        VfioMachine m;
        long va;
        Source source;
        long iova;

        /** Makes the live mappings. */
        @Setup(Level.Trial)
        public void setUp() {
            m = new VfioMachine(256L << 20, live + 16);
            long other = m.process.mmap(PhysicalMemory.PAGE_SIZE);
            for (int i = 0; i < live; i++) {
                m.container.mapDma(m.process, other, PhysicalMemory.PAGE_SIZE, BASE + (long) i * 4096,
                        IommuProt.READ | IommuProt.WRITE);
            }
            va = m.process.mmap(PhysicalMemory.PAGE_SIZE);
            source = new Source(m.host.memory(), m.process.virtToPhys(va));
            iova = BASE / 2 + (long) (live / 2) * 4096;
        }
    }

    /**
     * @param s the mapped container
     * @return the bytes unmapped
     */
    @Benchmark
    public long mapUnmap(Mapped s) {
        s.source.dirty();
        s.m.container.mapDma(s.m.process, s.va, PhysicalMemory.PAGE_SIZE, s.iova, IommuProt.READ | IommuProt.WRITE);
        return s.m.container.unmapDma(s.m.process, s.iova, PhysicalMemory.PAGE_SIZE);
    }
}
