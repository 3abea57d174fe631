package org.iommu4j.bench;

import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.iommu4j.examples.vtd.VtdProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.infra.ThreadParams;

/**
 * Row 9: the DMA API's map+unmap of 4 KiB through iommu-dma (the vtd example driver gives each NIC a DMA domain
 * in its own group) against dma-direct on a plain host, at 1 and 2 threads (each its own NIC).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class IommuDmaBench {
    /** A host whose NICs sit behind vtd. */
    @State(Scope.Benchmark)
    public static class VtdMachine {
        Host host;

        /** Loads vtd. */
        @Setup(Level.Trial)
        public void setUp() {
            host = Machines.host(512L << 20, "");
            host.modules().insert(new VtdProvider(), Map.of(), "bench");
        }
    }

    /** A thread's NIC and buffer behind vtd. */
    @State(Scope.Thread)
    public static class Lane {
        PciDevice nic;
        Source source;

        /**
         * @param m the machine
         * @param t which thread this is
         */
        @Setup(Level.Trial)
        public void setUp(VtdMachine m, ThreadParams t) {
            nic = m.host.pci(t.getThreadIndex() % 2 == 0 ? Machines.NIC : Machines.NIC2);
            source = new Source(m.host.memory(), Machines.buffer(m.host, XenBench.SIZE));
        }
    }

    /**
     * @param m the machine
     * @param l this thread's lane
     * @return the IOVA
     */
    @Benchmark
    @Threads(1)
    public long mapUnmap1(VtdMachine m, Lane l) {
        return XenBench.mapUnmap(m.host, l.nic, l.source);
    }

    /**
     * @param m the machine
     * @param l this thread's lane
     * @return the IOVA
     */
    @Benchmark
    @Threads(2)
    public long mapUnmap2(VtdMachine m, Lane l) {
        return XenBench.mapUnmap(m.host, l.nic, l.source);
    }

    /**
     * @param m the plain host
     * @param l this thread's lane
     * @return the DMA address
     */
    @Benchmark
    @Threads(1)
    public long directMapUnmap1(XenBench.DirectMachine m, XenBench.DirectLane l) {
        return XenBench.mapUnmap(m.host, l.nic, l.source);
    }
}
