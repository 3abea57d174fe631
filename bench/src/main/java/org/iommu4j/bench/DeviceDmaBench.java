package org.iommu4j.bench;

import java.util.concurrent.TimeUnit;
import org.iommu4j.api.IommuProt;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.infra.Blackhole;

/**
 * Row 7: a device's 4 KiB DMA read and write through a VFIO type 1 mapping against the same bytes read and written
 * in host memory directly.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class DeviceDmaBench {
    static final int SIZE = 4096;
    static final long IOVA = 1L << 32;

    /** A 64 KiB mapping of the process's buffer. */
    @State(Scope.Thread)
    public static class Mapped {
        /**
         * {@code vtd}: one translation, the IOMMU's page table (the row's figure); {@code xen}: a Xen guest, whose
         * device DMA goes through its IOMMU context in the hypervisor and then its machine frames.
         */
        @Param({"vtd", "xen"})
        public String platform;
        VfioMachine m;
        long phys;
        byte[] buffer = new byte[SIZE];

        /** Maps the buffer. */
        @Setup(Level.Trial)
        public void setUp() {
            m = new VfioMachine(platform, 256L << 20, 64);
            long va = m.process.mmap(65536);
            m.container.mapDma(m.process, va, 65536, IOVA, IommuProt.READ | IommuProt.WRITE);
            phys = m.process.virtToPhys(va + 8192);
            for (int i = 0; i < SIZE; i++) {
                buffer[i] = (byte) i;
            }
            // the mapped memory is written once, so that reads copy backed memory, not zeros of memory never written
            m.host.memory().write(phys, buffer, 0, SIZE);
        }
    }

    /**
     * @param s the mapping
     * @param bh consumes the bytes read
     */
    @Benchmark
    public void deviceRead(Mapped s, Blackhole bh) {
        s.m.nic.dmaRead(IOVA + 8192, s.buffer, 0, SIZE);
        bh.consume(s.buffer[SIZE - 1]);
    }

    /**
     * @param s the mapping
     * @return a byte written
     */
    @Benchmark
    public byte deviceWrite(Mapped s) {
        s.buffer[0]++;
        s.m.nic.dmaWrite(IOVA + 8192, s.buffer, 0, SIZE);
        return s.buffer[0];
    }

    /**
     * @param s the mapping
     * @param bh consumes the bytes read
     */
    @Benchmark
    public void rawRead(Mapped s, Blackhole bh) {
        s.m.host.memory().read(s.phys, s.buffer, 0, SIZE);
        bh.consume(s.buffer[SIZE - 1]);
    }

    /**
     * @param s the mapping
     * @return a byte written
     */
    @Benchmark
    public byte rawWrite(Mapped s) {
        s.buffer[0]++;
        s.m.host.memory().write(s.phys, s.buffer, 0, SIZE);
        return s.buffer[0];
    }
}
