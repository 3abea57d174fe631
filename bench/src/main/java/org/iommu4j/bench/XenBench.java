package org.iommu4j.bench;

import java.util.concurrent.TimeUnit;
import org.iommu4j.api.DmaDirection;
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
 * Row 5: xen-swiotlb's map+unmap of a machine-contiguous 4 KiB buffer (mapped directly, no bounce) against
 * dma-direct on a plain host, at 1 and 2 threads (each its own NIC).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class XenBench {
    static final int SIZE = 4096;

    /** A Xen guest whose pages are machine-contiguous, both NICs given to it. */
    @State(Scope.Benchmark)
    public static class XenMachine {
        Host host;

        /** Loads xen (and swiotlb under it). */
        @Setup(Level.Trial)
        public void setUp() {
            host = Machines.xenGuest(512L << 20, "");
        }
    }

    /** A host with no backend. */
    @State(Scope.Benchmark)
    public static class DirectMachine {
        Host host;

        /** Builds it. */
        @Setup(Level.Trial)
        public void setUp() {
            host = Machines.host(512L << 20, "");
        }
    }

    /** A thread's NIC and buffer on the Xen guest. */
    @State(Scope.Thread)
    public static class XenLane {
        PciDevice nic;
        Source source;

        /**
         * @param m the machine
         * @param t which thread this is
         */
        @Setup(Level.Trial)
        public void setUp(XenMachine m, ThreadParams t) {
            nic = m.host.pci(t.getThreadIndex() % 2 == 0 ? Machines.NIC : Machines.NIC2);
            source = new Source(m.host.memory(), Machines.buffer(m.host, SIZE));
        }
    }

    /** A thread's NIC and buffer on the plain host. */
    @State(Scope.Thread)
    public static class DirectLane {
        PciDevice nic;
        Source source;

        /**
         * @param m the machine
         * @param t which thread this is
         */
        @Setup(Level.Trial)
        public void setUp(DirectMachine m, ThreadParams t) {
            nic = m.host.pci(t.getThreadIndex() % 2 == 0 ? Machines.NIC : Machines.NIC2);
            source = new Source(m.host.memory(), Machines.buffer(m.host, SIZE));
        }
    }

    static long mapUnmap(Host host, PciDevice nic, Source source) {
        source.dirty();
        long dma = host.dma().map(nic, source.phys(), SIZE, DmaDirection.TO_DEVICE);
        host.dma().unmap(nic, dma, SIZE, DmaDirection.TO_DEVICE);
        return dma;
    }

    /**
     * @param m the guest
     * @param l this thread's lane
     * @return the machine address
     */
    @Benchmark
    @Threads(1)
    public long xenMapUnmap1(XenMachine m, XenLane l) {
        return mapUnmap(m.host, l.nic, l.source);
    }

    /**
     * @param m the guest
     * @param l this thread's lane
     * @return the machine address
     */
    @Benchmark
    @Threads(2)
    public long xenMapUnmap2(XenMachine m, XenLane l) {
        return mapUnmap(m.host, l.nic, l.source);
    }

    /**
     * @param m the plain host
     * @param l this thread's lane
     * @return the DMA address
     */
    @Benchmark
    @Threads(1)
    public long directMapUnmap1(DirectMachine m, DirectLane l) {
        return mapUnmap(m.host, l.nic, l.source);
    }
}
