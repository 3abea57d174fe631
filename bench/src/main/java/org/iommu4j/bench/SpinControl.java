package org.iommu4j.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import java.util.concurrent.TimeUnit;

/**
 * The pure-ALU control of every multi-thread row: a xorshift loop that touches no memory, at 1 and 2 threads.
 * Its 2-thread/1-thread throughput ratio is what the machine gives two threads now (2.0 when it is quiet, less when
 * something else runs); the multi-thread rows report their own ratio relative to it.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class SpinControl {
    /** The loop's state, one per thread. */
    @State(Scope.Thread)
    public static class Seed {
        long x = 0x9E3779B97F4A7C15L;
    }

    private static long spin(Seed s) {
        long x = s.x;
        for (int i = 0; i < 64; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
        }
        s.x = x;
        return x;
    }

    /** @return the loop's result, one thread */
    @Benchmark
    @Threads(1)
    public long spin1(Seed s) {
        return spin(s);
    }

    /** @return the loop's result, two threads */
    @Benchmark
    @Threads(2)
    public long spin2(Seed s) {
        return spin(s);
    }
}
