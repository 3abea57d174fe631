package org.iommu4j.bench;

import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.CompilerControl;
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
 * Row 1: the DMA API's map+unmap of 4 KiB under dma-direct (no backend) and noiommu, against an empty method with
 * the same argument checks, at 1 and 2 threads (each thread its own NIC and buffer on one shared host).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class DmaApiBench {
    static final int SIZE = 4096;

    /** One host for all threads: what they share is what the row measures. */
    @State(Scope.Benchmark)
    public static class Machine {
        /** {@code direct}: no backend; {@code noiommu}: the noiommu module loaded. */
        @Param({"direct", "noiommu"})
        public String backend;
        Host host;

        /** Builds the host and loads the backend. */
        @Setup(Level.Trial)
        public void setUp() {
            host = Machines.host(1L << 30, "");
            if (backend.equals("noiommu")) {
                Machines.load(host, "noiommu", Map.of("enable_unsafe_noiommu_mode", "1"));
            }
        }
    }

    /** A thread's device and source buffer. */
    @State(Scope.Thread)
    public static class Lane {
        PciDevice nic;
        Source source;

        /**
         * @param m the shared machine
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

    /** The baseline: a call that checks the arguments as the DMA API does and returns the address. */
    @CompilerControl(CompilerControl.Mode.DONT_INLINE)
    static long checkedIdentity(PciDevice device, long phys, long size, DmaDirection direction) {
        if (direction == null || direction == DmaDirection.NONE || size <= 0 || device == null) {
            throw new IommuException(org.iommu4j.api.Errno.EINVAL, "bad arguments");
        }
        return phys;
    }

    /**
     * @param m the machine
     * @param l this thread's lane
     * @return the DMA address
     */
    @Benchmark
    @Threads(1)
    public long mapUnmap1(Machine m, Lane l) {
        return mapUnmap(m, l);
    }

    /**
     * @param m the machine
     * @param l this thread's lane
     * @return the DMA address
     */
    @Benchmark
    @Threads(2)
    public long mapUnmap2(Machine m, Lane l) {
        return mapUnmap(m, l);
    }

    /**
     * @param l this thread's lane
     * @return the address
     */
    @Benchmark
    @Threads(1)
    public long emptyBaseline(Lane l) {
        l.source.dirty();
        return checkedIdentity(l.nic, l.source.phys(), SIZE, DmaDirection.TO_DEVICE);
    }
}
