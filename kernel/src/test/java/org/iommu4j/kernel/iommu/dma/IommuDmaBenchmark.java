package org.iommu4j.kernel.iommu.dma;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.iommu4j.api.BusType;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * iommu-dma {@code dma_map_single} + {@code dma_unmap_single} of 4 KiB through {@code host.dma()}, on one and on
 * two threads, each thread with its own device (its own group and domain) and CPU, in strict and lazy (DMA-FQ)
 * mode. Run with {@code -prof gc} to see the allocation per operation ({@code gc.alloc.rate.norm}); the target
 * is 0 B/op in the steady state and two threads at 1.8 times the throughput of one. Not run by the build: run
 * it on an idle machine with
 * {@code java -cp <kernel test classpath> org.iommu4j.kernel.iommu.dma.IommuDmaBenchmark [-prof gc]}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class IommuDmaBenchmark {
    /** Invalidation mode: the kernel command line of the host. */
    @Param({"", "iommu.strict=1"})
    public String cmdline;

    private Host host;
    private final AtomicInteger nextDevice = new AtomicInteger();

    /** Boots a host with two NICs behind a driver that can defer flushes. */
    @Setup(Level.Trial)
    public void boot() {
        host = Host.builder().cpus(2).commandLine(cmdline)
                .pciDevice(PciDeviceSpec.of("0000:06:00.0")).pciDevice(PciDeviceSpec.of("0000:07:00.0")).build();
        host.iommu().registerOps(BusType.PCI, new PageTableIommu().deferredFlush(), ModuleRef.KERNEL);
    }

    /** One thread's device and buffer. */
    @State(Scope.Thread)
    public static class PerThread {
        PciDevice device;
        long buffer;

        /** @param bench the host */
        @Setup(Level.Trial)
        public void pick(IommuDmaBenchmark bench) {
            device = bench.host.buses().devices(BusType.PCI).get(bench.nextDevice.getAndIncrement() % 2) instanceof
                    PciDevice p ? p : null;
            buffer = bench.host.pageAllocator().allocatePages(0, Long.MAX_VALUE);
        }
    }

    /**
     * @param t the thread's device
     * @return the DMA address, so that nothing is optimised away
     */
    @Benchmark
    @Threads(1)
    public long mapUnmap4kOneThread(PerThread t) {
        return mapUnmap(t);
    }

    /**
     * @param t the thread's device
     * @return the DMA address
     */
    @Benchmark
    @Threads(2)
    public long mapUnmap4kTwoThreads(PerThread t) {
        return mapUnmap(t);
    }

    private long mapUnmap(PerThread t) {
        long dma = host.dma().map(t.device, t.buffer, 4096, DmaDirection.TO_DEVICE);
        host.dma().unmap(t.device, dma, 4096, DmaDirection.TO_DEVICE);
        return dma;
    }

    /**
     * @param args JMH options, for example {@code -prof gc}
     * @throws Exception from JMH
     */
    public static void main(String[] args) throws Exception {
        new Runner(new OptionsBuilder().include(IommuDmaBenchmark.class.getName()).parent(
                new org.openjdk.jmh.runner.options.CommandLineOptions(args)).build()).run();
    }
}
