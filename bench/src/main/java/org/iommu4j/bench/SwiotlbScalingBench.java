package org.iommu4j.bench;

import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.iommu4j.api.DmaDirection;
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
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.infra.ThreadParams;

/**
 * Row 4: bounced 4 KiB map+unmap at 1 and 2 threads on one shared pool with 1 or 2 areas (each thread its own NIC
 * and buffer; a thread's CPU picks its area first, as {@code swiotlb_find_slots} does).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class SwiotlbScalingBench {
    static final int SIZE = 4096;

    /** The shared host and pool. */
    @State(Scope.Benchmark)
    public static class Machine {
        /** Areas in the pool. */
        @Param({"1", "2"})
        public int nareas;
        /** Slots in the pool: 32768 is the kernel's 64 MiB default. */
        @Param({"32768"})
        public int nslabs;
        Host host;

        /** Loads swiotlb with {@code force}. */
        @Setup(Level.Trial)
        public void setUp() {
            host = Machines.host(1L << 30, "");
            Machines.load(host, "swiotlb", Map.of("force", "1", "nslabs", Integer.toString(nslabs), "nareas",
                    Integer.toString(nareas), "dynamic", "0"));
        }
    }

    /** A thread's device and buffer. */
    @State(Scope.Thread)
    public static class Lane {
        PciDevice nic;
        Source source;

        /**
         * @param m the machine
         * @param t which thread this is
         */
        @Setup(Level.Trial)
        public void setUp(Machine m, ThreadParams t) {
            nic = m.host.pci(t.getThreadIndex() % 2 == 0 ? Machines.NIC : Machines.NIC2);
            source = new Source(m.host.memory(), Machines.buffer(m.host, SIZE));
        }
    }

    static long mapUnmap(Machine m, Lane l) {
        l.source.dirty();
        long dma = m.host.dma().map(l.nic, l.source.phys(), SIZE, DmaDirection.TO_DEVICE);
        m.host.dma().unmap(l.nic, dma, SIZE, DmaDirection.TO_DEVICE);
        return dma;
    }

    /**
     * @param m the machine
     * @param l this thread's lane
     * @return the bounce address
     */
    @Benchmark
    @Threads(1)
    public long mapUnmap1(Machine m, Lane l) {
        return mapUnmap(m, l);
    }

    /**
     * @param m the machine
     * @param l this thread's lane
     * @return the bounce address
     */
    @Benchmark
    @Threads(2)
    public long mapUnmap2(Machine m, Lane l) {
        return mapUnmap(m, l);
    }
}
