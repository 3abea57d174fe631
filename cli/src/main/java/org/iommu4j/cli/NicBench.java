package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.ModuleAttribute;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.loader.BackendCandidate;
import org.iommu4j.loader.BackendLoader;

/**
 * A NIC-like device model streaming packets through each backend, the seed's question in numbers: a descriptor
 * ring (16-byte descriptors: address, length, status) in memory both sides see, packet buffers, and for every
 * packet a transmit (the driver fills a buffer and posts it, the device fetches the descriptor and the bytes, then
 * writes the status back) and a receive (the driver posts an empty buffer, the device writes the bytes and the
 * status, the driver reads them). Two drivers: a kernel driver through the DMA API (ring in a coherent buffer,
 * each packet buffer mapped and unmapped per packet, as a NIC driver does) and a user-level driver through VFIO
 * (ring and buffers in one mapped region of the process, synced where the container bounces). Every packet's
 * bytes are checked where they land. Each run is on a fresh embedded host.
 */
final class NicBench {
    static final int[] PACKET_SIZES = {64, 1500, 9000};
    private static final int DESC = 16;
    private static final int RING = 256;
    private static final int BUFFER = 16 * 1024;
    private static final int BUFFERS = 8;
    private static final long TYPE1_IOVA = 0x100000;

    /**
     * One backend, one driver, one packet size.
     *
     * @param backend the backend (and variant)
     * @param path "DMA API" or "VFIO"
     * @param packetSize bytes per packet
     * @param packets packets moved, half each way
     * @param seconds time they took
     * @param cpuBytesCopied bytes the CPU copied for them (bounce buffers), both ways
     * @param poolBytes memory set aside for bounce pools
     * @param pageTableBytes IOMMU page-table memory for the mapping (estimated: 4 KiB per table of 512 entries)
     * @param pinnedBytes memory pinned for the user-level driver
     * @param isolated whether the device's group is isolated
     * @param taint the kernel's taint letters, or "-"
     * @param status ok, failed or skipped
     * @param reason why not ok
     */
    record Result(String backend, String path, int packetSize, long packets, double seconds, long cpuBytesCopied,
            long poolBytes, long pageTableBytes, long pinnedBytes, boolean isolated, String taint, String status,
            String reason) {
        double packetsPerSecond() {
            return seconds <= 0 ? 0 : packets / seconds;
        }

        double gbitPerSecond() {
            return packetsPerSecond() * packetSize * 8 / 1e9;
        }

        double copiedPerPacket() {
            return packets == 0 ? 0 : (double) cpuBytesCopied / packets;
        }
    }

    /** What one run sets up: a backend and its module parameters. */
    record Variant(String label, String module, Map<String, String> params) {
    }

    private final BackendLoader loader;
    private final int packets;

    /**
     * @param loader finds the backends
     * @param packets packets per packet size, per driver and backend (half each way)
     */
    NicBench(BackendLoader loader, int packets) {
        this.loader = loader;
        this.packets = packets;
    }

    /**
     * @return every loadable backend, its opt-in parameters set and its NIC given to it where it has a
     *     {@code hide} parameter; swiotlb also with {@code force}, to show what bouncing every mapping costs
     */
    List<Variant> variants() {
        List<Variant> out = new ArrayList<>();
        out.add(new Variant("none (dma-direct)", null, Map.of()));
        for (BackendCandidate c : loader.backends()) {
            if (!c.loadable() || loader.find(c.name()).isEmpty() || out.stream().anyMatch(v -> c.name().equals(
                    v.module()))) {
                continue;
            }
            Map<String, String> params = new LinkedHashMap<>();
            ModuleInfo info = c.metadata().orElse(null);
            if (info != null) {
                for (ParameterSpec p : info.parameters()) {
                    if (p.name().startsWith("enable_unsafe_")) {
                        params.put(p.name(), "1");
                    } else if (p.name().equals("hide")) {
                        params.put(p.name(), "(" + EmbeddedHost.NIC + ")");
                    }
                }
            }
            out.add(new Variant(c.name(), c.name(), params));
            if (c.name().equals("swiotlb")) {
                Map<String, String> forced = new LinkedHashMap<>(params);
                forced.put("force", "1");
                out.add(new Variant("swiotlb force", c.name(), forced));
            }
        }
        return out;
    }

    /**
     * @param variant what to load
     * @return one result per driver and packet size
     */
    List<Result> run(Variant variant) {
        List<Result> out = new ArrayList<>();
        for (String path : List.of("DMA API", "VFIO")) {
            for (int size : PACKET_SIZES) {
                out.add(runOne(variant, path, size));
            }
        }
        return out;
    }

    private Result runOne(Variant v, String path, int size) {
        // xen loads only in a Xen domain: the demo's platform, whose guest-a has the NIC
        Host host = "xen".equals(v.module()) ? new DemoXen(loader).host() : EmbeddedHost.build("");
        try {
            if (v.module() != null && host.modules().modules().stream().noneMatch(m -> m.name().equals(v.module()))) {
                // in the guest, xen is loaded without hide: pciback's parameter is Domain-0's
                loader.load(host, v.module(), "xen".equals(v.module()) ? Map.of() : v.params());
            }
            BusDevice nic = host.buses().require(EmbeddedHost.NIC);
            if (path.equals("DMA API")) {
                return dmaApi(v, host, nic, size);
            }
            if (v.module() == null) {
                return new Result(v.label(), path, size, 0, 0, 0, 0, 0, 0, false, taint(host), "skipped",
                        "no backend: VFIO needs an IOMMU driver");
            }
            return vfio(v, host, nic, size);
        } catch (IommuException e) {
            return new Result(v.label(), path, size, 0, 0, 0, 0, 0, 0, false, taint(host), "failed",
                    e.errno() + ": " + e.getMessage());
        }
    }

    private static void descriptor(byte[] d, long address, int length, int status) {
        for (int i = 0; i < 8; i++) {
            d[i] = (byte) (address >>> (8 * i));
        }
        for (int i = 0; i < 4; i++) {
            d[8 + i] = (byte) (length >>> (8 * i));
            d[12 + i] = (byte) (status >>> (8 * i));
        }
    }

    private static long address(byte[] d) {
        long a = 0;
        for (int i = 7; i >= 0; i--) {
            a = (a << 8) | (d[i] & 0xff);
        }
        return a;
    }

    private static int length(byte[] d) {
        return (d[8] & 0xff) | (d[9] & 0xff) << 8 | (d[10] & 0xff) << 16 | (d[11] & 0xff) << 24;
    }

    private Result dmaApi(Variant v, Host host, BusDevice nic, int size) {
        CoherentBuffer ring = host.dma().allocateCoherent(nic, RING * DESC);
        long[] bufs = new long[BUFFERS];
        for (int i = 0; i < BUFFERS; i++) {
            bufs[i] = host.pageAllocator().allocatePages(2, PageAllocator.NO_LIMIT);
        }
        byte[] tx = pattern(size, 1);
        byte[] rx = new byte[size];
        byte[] d = new byte[DESC];
        long copiedBefore = 0;
        long start = 0;
        int warm = Math.max(16, packets / 10);
        int bad = 0;
        for (int n = -warm; n < packets; n += 2) {
            if (n >= 0 && start == 0) {
                start = System.nanoTime();
                copiedBefore = Demo.bounced(host);
            }
            int slot = (n + warm) & (RING - 1);
            long buf = bufs[(n + warm) % BUFFERS];
            long descPhys = ring.phys() + (long) slot * DESC;
            long descDma = ring.dmaAddress() + (long) slot * DESC;
            // transmit: fill, map, post; the device fetches descriptor and bytes and writes the status back
            tx[0] = (byte) n;
            host.memory().write(buf, tx, 0, size);
            long dma = host.dma().map(nic, buf, size, DmaDirection.TO_DEVICE);
            descriptor(d, dma, size, 0);
            host.memory().write(descPhys, d, 0, DESC);
            nic.dmaRead(descDma, d, 0, DESC);
            nic.dmaRead(address(d), rx, 0, length(d));
            bad += rx[0] == tx[0] && rx[size - 1] == tx[size - 1] ? 0 : 1;
            descriptor(d, address(d), length(d), 1);
            nic.dmaWrite(descDma, d, 0, DESC);
            host.dma().unmap(nic, dma, size, DmaDirection.TO_DEVICE);
            // receive: post an empty buffer; the device writes the packet and the status; the driver reads them
            long rxDma = host.dma().map(nic, buf, size, DmaDirection.FROM_DEVICE);
            descriptor(d, rxDma, size, 0);
            host.memory().write(descPhys, d, 0, DESC);
            nic.dmaRead(descDma, d, 0, DESC);
            tx[0] = (byte) ~n;
            nic.dmaWrite(address(d), tx, 0, size);
            descriptor(d, address(d), size, 1);
            nic.dmaWrite(descDma, d, 0, DESC);
            host.memory().read(descPhys, d, 0, DESC);
            host.dma().unmap(nic, rxDma, length(d), DmaDirection.FROM_DEVICE);
            host.memory().read(buf, rx, 0, size);
            bad += rx[0] == tx[0] && rx[size - 1] == tx[size - 1] ? 0 : 1;
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        long copied = Demo.bounced(host) - copiedBefore;
        return new Result(v.label(), "DMA API", size, packets, seconds, copied, poolBytes(host), 0, 0,
                nic.group() != null && nic.group().isolated(), taint(host), bad == 0 ? "ok" : "failed",
                bad == 0 ? "" : bad + " packets arrived damaged");
    }

    private Result vfio(Variant v, Host host, BusDevice nic, int size) {
        host.vfio().bind(EmbeddedHost.NIC);
        boolean isolated = nic.group().isolated();
        UserProcess driver = host.spawn("nic-bench", 0, isolated ? Set.of(Capability.CAP_IPC_LOCK)
                : Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
        VfioSession session = VfioSession.open(host, driver, EmbeddedHost.NIC, 0);
        long region = (long) RING * DESC + (long) BUFFERS * BUFFER;
        boolean contiguous = session.type() == Vfio.NOIOMMU_IOMMU;
        long va = contiguous ? driver.mmapContiguous(region) : driver.mmap(region);
        boolean type1 = session.type() == Vfio.TYPE1_IOMMU || session.type() == Vfio.TYPE1v2_IOMMU;
        VfioDmaMapping m = session.container().mapDma(driver, va, region, type1 ? TYPE1_IOVA : Vfio.ANY_IOVA,
                IommuProt.READ | IommuProt.WRITE);
        long iova = m.iova();
        long pages = region / PhysicalMemory.PAGE_SIZE;
        long pageTables = type1 ? ((pages + 511) / 512 + 5) * PhysicalMemory.PAGE_SIZE : 0;
        byte[] tx = pattern(size, 2);
        byte[] rx = new byte[size];
        byte[] d = new byte[DESC];
        long ringBytes = (long) RING * DESC;
        long copiedBefore = 0;
        long start = 0;
        int warm = Math.max(16, packets / 10);
        int bad = 0;
        for (int n = -warm; n < packets; n += 2) {
            if (n >= 0 && start == 0) {
                start = System.nanoTime();
                copiedBefore = Demo.bounced(host);
            }
            int slot = (n + warm) & (RING - 1);
            long off = ringBytes + (long) ((n + warm) % BUFFERS) * BUFFER;
            long descVa = va + (long) slot * DESC;
            long descIova = iova + (long) slot * DESC;
            // transmit
            tx[0] = (byte) n;
            driver.write(va + off, tx, 0, size);
            descriptor(d, iova + off, size, 0);
            driver.write(descVa, d, 0, DESC);
            session.container().syncForDevice(driver, iova + off, size);
            session.container().syncForDevice(driver, descIova, DESC);
            nic.dmaRead(descIova, d, 0, DESC);
            nic.dmaRead(address(d), rx, 0, length(d));
            bad += rx[0] == tx[0] && rx[size - 1] == tx[size - 1] ? 0 : 1;
            descriptor(d, address(d), length(d), 1);
            nic.dmaWrite(descIova, d, 0, DESC);
            session.container().syncForCpu(driver, descIova, DESC);
            driver.read(descVa, d, 0, DESC);
            // receive
            descriptor(d, iova + off, size, 0);
            driver.write(descVa, d, 0, DESC);
            session.container().syncForDevice(driver, descIova, DESC);
            nic.dmaRead(descIova, d, 0, DESC);
            tx[0] = (byte) ~n;
            nic.dmaWrite(address(d), tx, 0, size);
            descriptor(d, address(d), size, 1);
            nic.dmaWrite(descIova, d, 0, DESC);
            session.container().syncForCpu(driver, descIova, DESC);
            driver.read(descVa, d, 0, DESC);
            session.container().syncForCpu(driver, iova + off, length(d));
            driver.read(va + off, rx, 0, size);
            bad += rx[0] == tx[0] && rx[size - 1] == tx[size - 1] ? 0 : 1;
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        long copied = Demo.bounced(host) - copiedBefore;
        return new Result(v.label(), "VFIO " + Vfio.typeName(session.type()).replace("VFIO_", "")
                .replaceAll("\\(\\d+\\)", ""), size, packets, seconds, copied, poolBytes(host), pageTables,
                driver.lockedPages() * PhysicalMemory.PAGE_SIZE, isolated, taint(host), bad == 0 ? "ok" : "failed",
                bad == 0 ? "" : bad + " packets arrived damaged");
    }

    private static byte[] pattern(int size, int seed) {
        byte[] b = new byte[size];
        for (int i = 0; i < size; i++) {
            b[i] = (byte) (i * 7 + seed);
        }
        return b;
    }

    /** Bytes of every bounce pool the loaded modules report ({@code io_tlb_nslabs} slots of 2 KiB). */
    static long poolBytes(Host host) {
        long n = 0;
        for (LoadedModule m : host.modules().modules()) {
            if (m.backend() == null) {
                continue;
            }
            for (ModuleAttribute a : m.backend().attributes()) {
                if (a.name().equals("io_tlb_nslabs")) {
                    n += Long.parseLong(a.read().strip()) * 2048;
                }
            }
        }
        return n;
    }

    private static String taint(Host host) {
        StringBuilder sb = new StringBuilder();
        host.taint().flags().forEach(f -> sb.append(f.letter()));
        return sb.length() == 0 ? "-" : sb.toString();
    }
}
