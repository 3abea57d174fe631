package org.iommu4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.lang.ref.Reference;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.kernel.Host;

/**
 * Row 8, in a JVM of its own under the default collector: the heap (and off-heap) a 64 GiB host costs idle, how
 * long it takes to build, and what it costs after {@code written} bytes have been written to it. Figures are taken
 * after a full collection, relative to the heap before the host was built.
 */
public final class MemoryProbe {
    private MemoryProbe() {
    }

    /**
     * @param args the JSON file to write, then the MiB to write (1024 for the row)
     * @throws IOException if the file cannot be written
     */
    public static void main(String[] args) throws IOException {
        Map<String, Object> out = probe(64L << 30, Long.parseLong(args[1]) << 20);
        new ObjectMapper().writerWithDefaultPrettyPrinter().writeValue(Path.of(args[0]).toFile(), out);
    }

    /**
     * @param hostBytes the host's memory
     * @param written bytes to write into it, spread in 1 MiB writes from 1 GiB up
     * @return the figures, by name
     */
    public static Map<String, Object> probe(long hostBytes, long written) {
        long before = heapAfterGc();
        long offBefore = offHeap();
        long t0 = System.nanoTime();
        Host host = Host.builder().memory(hostBytes).build();
        long buildNanos = System.nanoTime() - t0;
        long idle = heapAfterGc() - before;
        byte[] chunk = new byte[1 << 20];
        for (int i = 0; i < chunk.length; i++) {
            chunk[i] = (byte) (i * 31 + 7);
        }
        for (long off = 0; off < written; off += chunk.length) {
            chunk[0] = (byte) off;
            host.memory().write((1L << 30) + off, chunk, 0, (int) Math.min(chunk.length, written - off));
        }
        long heap = heapAfterGc() - before;
        long offHeap = offHeap() - offBefore;
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("hostBytes", hostBytes);
        out.put("buildMillis", buildNanos / 1e6);
        out.put("idleHeapBytes", idle);
        out.put("writtenBytes", written);
        out.put("heapBytes", heap);
        out.put("offHeapBytes", offHeap);
        out.put("residentBytes", host.memory().residentBytes());
        List<String> collectors = new ArrayList<>();
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            collectors.add(gc.getName());
        }
        out.put("collectors", collectors);
        out.put("maxHeapBytes", Runtime.getRuntime().maxMemory());
        Reference.reachabilityFence(host);
        return out;
    }

    private static long heapAfterGc() {
        for (int i = 0; i < 3; i++) {
            System.gc();
        }
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    private static long offHeap() {
        long n = 0;
        for (BufferPoolMXBean b : ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)) {
            n += b.getMemoryUsed();
        }
        return n;
    }
}
