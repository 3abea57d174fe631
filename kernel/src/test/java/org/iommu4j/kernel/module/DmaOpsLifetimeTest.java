package org.iommu4j.kernel.module;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;
import org.mockito.Mockito;

/**
 * Issue 11 #3, #4, #5, #7 and #10: a module whose DMA ops made a mapping stays loaded exactly while that mapping
 * is live, whatever unbalanced unmaps, ops changes, hot removals and racing unloads do; a refused load or unload
 * changes nothing.
 */
class DmaOpsLifetimeTest {
    private static final String NIC = "0000:06:0d.0";
    private final Host host = Host.builder().memory(64L << 20).pciDevice(PciDeviceSpec.of(NIC)
            .withDmaMask(DmaMasks.bits(32))).build();
    private final PciDevice nic = host.pci(NIC);

    /**
     * A bounce backend in miniature: 16 pages taken at init and given back at exit, mapping every buffer into
     * one of them; an unmap of a pool address it did not hand out is EINVAL, of any other address a no-op (as
     * swiotlb treats a buffer it did not bounce).
     */
    static final class PoolOps implements DmaOps {
        final long pool;
        final Set<Long> live = ConcurrentHashMap.newKeySet();
        final KernelServices kernel;
        volatile boolean freed;
        volatile CountDownLatch mapEntered;
        volatile CountDownLatch mapMayReturn;

        PoolOps(KernelServices kernel) {
            this.kernel = kernel;
            this.pool = kernel.pageAllocator().allocateContiguous(16, 1L << 32);
        }

        boolean inPool(long a) {
            return a >= pool && a < pool + 16 * 4096;
        }

        @Override
        public long map(Device device, long phys, long size, DmaDirection direction) {
            CountDownLatch entered = mapEntered;
            if (entered != null) {
                entered.countDown();
                await(mapMayReturn);
            }
            for (long slot = pool; slot < pool + 16 * 4096; slot += 4096) {
                if (live.add(slot)) {
                    if (freed) {
                        throw new AssertionError("handed out slot 0x" + Long.toHexString(slot) + " of a freed pool");
                    }
                    return slot;
                }
            }
            throw new org.iommu4j.api.DmaMappingException(Errno.ENOMEM, "pool is full");
        }

        @Override
        public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
            if (inPool(dmaAddress) && !live.remove(dmaAddress)) {
                throw new IommuException(Errno.EINVAL, String.format("pool: unmap of 0x%x, which is not mapped",
                        dmaAddress));
            }
        }

        @Override
        public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
        }

        @Override
        public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
        }

        @Override
        public CoherentBuffer allocateCoherent(Device device, long size) {
            long slot = map(device, 0, size, DmaDirection.BIDIRECTIONAL);
            return new CoherentBuffer(slot, slot, 4096);
        }

        @Override
        public void freeCoherent(Device device, CoherentBuffer buffer) {
            unmap(device, buffer.dmaAddress(), buffer.size(), DmaDirection.BIDIRECTIONAL);
        }

        void free() {
            kernel.dma().clearDefaultOps(this);
            kernel.pageAllocator().freeContiguous(pool, 16);
            freed = true;
        }
    }

    private final AtomicReference<PoolOps> ops = new AtomicReference<>();

    /** The backend: default ops, or (perDevice) the NIC's own ops. */
    private BackendProvider poolBackend(String name, boolean perDevice) {
        ModuleInfo info = ModuleInfo.builder(name).version("1.0").description("pool backend").build();
        return new BackendProvider() {
            @Override
            public ModuleInfo info() {
                return info;
            }

            @Override
            public Backend start(KernelServices kernel) {
                PoolOps p = new PoolOps(kernel);
                ops.set(p);
                if (perDevice) {
                    kernel.dma().setDeviceOps(kernel.devices().find(NIC).orElseThrow(), p);
                } else {
                    kernel.dma().setDefaultOps(p);
                }
                return new Backend() {
                    @Override
                    public void stop() {
                        if (perDevice) {
                            kernel.devices().find(NIC).ifPresent(d -> kernel.dma().clearDeviceOps(d));
                        }
                        p.free();
                    }
                };
            }
        };
    }

    private static BackendProvider plain(String name, Consumer<KernelServices> init) {
        ModuleInfo info = ModuleInfo.builder(name).version("1.0").description("test").build();
        return new BackendProvider() {
            @Override
            public ModuleInfo info() {
                return info;
            }

            @Override
            public Backend start(KernelServices kernel) {
                init.accept(kernel);
                return new Backend() {
                };
            }
        };
    }

    private static void await(CountDownLatch latch) {
        try {
            if (latch != null && !latch.await(10, TimeUnit.SECONDS)) {
                throw new AssertionError("timed out");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    @Test
    void anUnbalancedUnmapCannotCancelALiveMappingSoTheModuleStaysUntilTheRealUnmap() {
        LoadedModule m = host.modules().insert(poolBackend("pool", false), Map.of(), LoadFacts.inTree());
        long free = host.pageAllocator().freePageCount();
        long a = host.dma().map(nic, 0x10_0000, 512, DmaDirection.FROM_DEVICE);
        assertThat(ops.get().inPool(a)).isTrue();

        host.dma().unmap(nic, 0xdead000L, 64, DmaDirection.FROM_DEVICE); // goes to the ops, as in the kernel
        assertThat(host.dma().liveMappings(m)).isEqualTo(1);
        assertThatThrownBy(() -> host.modules().remove("pool"))
                .hasMessage("Module pool is in use")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        assertThat(m.state()).isEqualTo(ModuleState.LIVE);
        assertThat(ops.get().freed).isFalse();
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
        // the refused unload left its ops working
        long b = host.dma().map(nic, 0x20_0000, 64, DmaDirection.TO_DEVICE);
        host.dma().unmap(nic, b, 64, DmaDirection.TO_DEVICE);

        host.dma().unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
        assertThat(host.dma().liveMappings(m)).isZero();
        host.modules().remove("pool");
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free + 16);
    }

    @Test
    void onlyABogusUnmapNeverMakesTheCountNegativeAndTheModuleUnloadsCleanly() {
        LoadedModule m = host.modules().insert(poolBackend("pool", false), Map.of(), LoadFacts.inTree());
        long free = host.pageAllocator().freePageCount();
        host.dma().unmap(nic, 0xdead000L, 64, DmaDirection.FROM_DEVICE);
        assertThatThrownBy(() -> host.dma().unmap(nic, ops.get().pool, 64, DmaDirection.FROM_DEVICE))
                .hasMessage(String.format("pool: unmap of 0x%x, which is not mapped", ops.get().pool));
        assertThat(host.dma().liveMappings(m)).isZero();

        host.modules().remove("pool");
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
        assertThat(host.modules().find("pool")).isEmpty();
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free + 16);
    }

    @Test
    void mappingsMadeBeforeABackendLoadsAreUnmappedAndFreedByTheOpsThatMadeThem() {
        long direct = host.dma().map(nic, 0x30_0000, 4096, DmaDirection.TO_DEVICE);
        CoherentBuffer ring = host.dma().allocateCoherent(nic, 4096);
        long freeBefore = host.pageAllocator().freePageCount();
        LoadedModule m = host.modules().insert(poolBackend("pool", true), Map.of(), LoadFacts.inTree());
        assertThat(host.dma().opsFor(nic)).isSameAs(ops.get());

        host.dma().unmap(nic, direct, 4096, DmaDirection.TO_DEVICE); // dma-direct's, not the pool's
        host.dma().freeCoherent(nic, ring);                         // dma-direct frees its pages
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(freeBefore - 16 + 1);
        assertThat(host.dma().liveMappings(ModuleRef.KERNEL)).isZero();
        assertThat(host.dma().liveMappings(m)).isZero();
        assertThat(ops.get().live).isEmpty();
        host.modules().remove("pool");
    }

    @Test
    void aHotRemovedDevicesLiveMappingsKeepTheModuleLoadedUntilUnmapped() {
        LoadedModule m = host.modules().insert(poolBackend("pool", true), Map.of(), LoadFacts.inTree());
        long a = host.dma().map(nic, 0x10_0000, 512, DmaDirection.FROM_DEVICE);
        host.buses().remove(NIC);

        assertThat(host.dma().liveMappings(m)).isEqualTo(1);
        assertThatThrownBy(() -> host.modules().remove("pool"))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        assertThat(m.state()).isEqualTo(ModuleState.LIVE);
        host.dma().unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
        assertThat(ops.get().live).isEmpty();
        host.modules().remove("pool");
        assertThat(m.state()).isEqualTo(ModuleState.UNLOADED);
    }

    @Test
    void aMapInFlightWhenUnloadStartsIsCountedAndTheRefusedUnloadChangesNothing() throws Exception {
        LoadedModule m = host.modules().insert(poolBackend("pool", false), Map.of(), LoadFacts.inTree());
        long free = host.pageAllocator().freePageCount();
        PoolOps p = ops.get();
        p.mapEntered = new CountDownLatch(1);
        p.mapMayReturn = new CountDownLatch(1);
        AtomicReference<Long> mapped = new AtomicReference<>();
        Thread mapper = new Thread(() -> mapped.set(host.dma().map(nic, 0x10_0000, 64, DmaDirection.TO_DEVICE)));
        mapper.start();
        await(p.mapEntered);

        assertThatThrownBy(() -> host.modules().remove("pool"))
                .hasMessage("Module pool is in use");
        assertThat(m.state()).isEqualTo(ModuleState.LIVE);
        assertThat(host.modules().find("pool")).containsSame(m);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
        p.mapEntered = null;
        p.mapMayReturn.countDown();
        mapper.join(10_000);
        assertThat(p.inPool(mapped.get())).isTrue();
        host.dma().unmap(nic, mapped.get(), 64, DmaDirection.TO_DEVICE);
        host.modules().remove("pool");
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free + 16);
    }

    @Test
    void aMapThatStartsWhileUnloadIsDecidingWaitsAndThenUsesTheOpsInForceAfterIt() throws Exception {
        AtomicReference<Thread> mapper = new AtomicReference<>();
        AtomicReference<Object> result = new AtomicReference<>();
        CountDownLatch stopping = new CountDownLatch(1);
        ModuleInfo info = ModuleInfo.builder("slow").version("1.0").description("slow exit").build();
        BackendProvider slow = new BackendProvider() {
            @Override
            public ModuleInfo info() {
                return info;
            }

            @Override
            public Backend start(KernelServices kernel) {
                PoolOps p = new PoolOps(kernel);
                ops.set(p);
                kernel.dma().setDefaultOps(p);
                return new Backend() {
                    @Override
                    public void stop() {
                        // the unload has decided: a map starting now must not reach these ops
                        Thread t = new Thread(() -> {
                            try {
                                result.set(host.dma().map(nic, 0x10_0000, 64, DmaDirection.TO_DEVICE));
                            } catch (RuntimeException e) {
                                result.set(e);
                            }
                        });
                        mapper.set(t);
                        t.start();
                        stopping.countDown();
                        try {
                            Thread.sleep(50);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                        p.free();
                    }
                };
            }
        };
        host.modules().insert(slow, Map.of(), LoadFacts.inTree());
        host.modules().remove("slow");
        await(stopping);
        mapper.get().join(10_000);
        assertThat(result.get()).as("dma-direct's identity mapping, not a slot of the freed pool")
                .isEqualTo(0x10_0000L);
        assertThat(ops.get().live).isEmpty();
        host.dma().unmap(nic, 0x10_0000, 64, DmaDirection.TO_DEVICE);
        assertThat(host.dma().liveMappings(ModuleRef.KERNEL)).isZero();
    }

    @Test
    void aFailedLoadThatLookedUpASymbolLeavesNoHolderBehind() {
        BounceBufferPool pool = Mockito.mock(BounceBufferPool.class);
        LoadedModule exporter = host.modules().insert(plain("swiotlb",
                k -> k.symbols().export(BounceBufferPool.class, pool)), Map.of(), LoadFacts.inTree());
        for (int i = 0; i < 3; i++) {
            assertThatThrownBy(() -> host.modules().insert(plain("xen", k -> {
                k.symbols().lookup(BounceBufferPool.class);
                throw new IommuException(Errno.ENODEV, "xen: not running under Xen");
            }), Map.of(), LoadFacts.inTree())).hasMessage("xen: not running under Xen");
        }
        assertThat(exporter.holders()).isEmpty();
        host.modules().remove("swiotlb");
        assertThat(exporter.state()).isEqualTo(ModuleState.UNLOADED);
    }

    @Test
    void theAllocatorsHugeRequestsAreRefusedWithNothingTaken() {
        long free = host.pageAllocator().freePageCount();
        assertThatThrownBy(() -> host.dma().allocateCoherent(nic, Long.MAX_VALUE))
                .hasMessage("coherent allocation of 9223372036854775807 bytes failed: expected at most 0x4000000"
                        + " bytes (the host's memory)")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThatThrownBy(() -> host.dma().allocateCoherent(nic, 1L << 53))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThatThrownBy(() -> host.dma().allocateCoherent(nic, -1L))
                .hasMessage("coherent size 0xffffffffffffffff rounded up to 0x1000 exceeds 2^64 - 1")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> host.pageAllocator().allocateContiguous(1L << 41, PageAllocator.NO_LIMIT))
                .hasMessage("contiguous allocation of 2199023255552 pages below 0x7fffffffffffffff failed: memory"
                        + " has only 16384 pages (free pages: " + free + ")")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
        assertThat(host.dma().liveMappings(ModuleRef.KERNEL)).isZero();
        CoherentBuffer ok = host.dma().allocateCoherent(nic, 4096);
        host.dma().freeCoherent(nic, ok);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
    }
}
