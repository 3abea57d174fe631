package org.iommu4j.kernel.dma;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.iommu4j.api.CoherentBuffer;
import org.iommu4j.api.Device;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaOps;
import org.iommu4j.kernel.module.ModuleRef;
import org.junit.jupiter.api.Test;

/** The open-addressing record table against a plain map, with colliding addresses and table growth. */
class LiveMappingsTest {
    private static DmaOps ops() {
        return new DmaOps() {
            @Override
            public long map(Device device, long phys, long size, DmaDirection direction) {
                return phys;
            }

            @Override
            public void unmap(Device device, long dmaAddress, long size, DmaDirection direction) {
            }

            @Override
            public void syncForCpu(Device device, long dmaAddress, long size, DmaDirection direction) {
            }

            @Override
            public void syncForDevice(Device device, long dmaAddress, long size, DmaDirection direction) {
            }

            @Override
            public CoherentBuffer allocateCoherent(Device device, long size) {
                return null;
            }

            @Override
            public void freeCoherent(Device device, CoherentBuffer buffer) {
            }
        };
    }

    private record Key(long address, DmaOpsBinding binding) {
    }

    @Test
    void seededRandomOperationsAgreeWithAModel() {
        long seed = System.nanoTime();
        Random random = new Random(seed);
        ModuleRef a = ModuleRef.KERNEL;
        ModuleRef b = new ModuleRef() {
            @Override
            public String name() {
                return "b";
            }

            @Override
            public boolean tryGet() {
                return true;
            }

            @Override
            public void put() {
            }
        };
        DmaOpsBinding[] bindings = {new DmaOpsBinding(ops(), a), new DmaOpsBinding(ops(), b),
            new DmaOpsBinding(ops(), b)};
        LiveMappings t = new LiveMappings();
        Map<Key, Integer> live = new HashMap<>();
        Map<Key, Integer> unmapping = new HashMap<>();
        List<Key> pending = new ArrayList<>();
        for (int step = 0; step < 20_000; step++) {
            // few distinct addresses, many of them sharing hash buckets after masking
            long address = (long) random.nextInt(300) << (random.nextBoolean() ? 12 : 32);
            DmaOpsBinding binding = bindings[random.nextInt(bindings.length)];
            int op = random.nextInt(4);
            if (op == 0 || op == 1) {
                t.add(address, binding);
                live.merge(new Key(address, binding), 1, Integer::sum);
            } else if (op == 2) {
                DmaOpsBinding took = t.take(address, binding);
                boolean any = live.entrySet().stream().anyMatch(e -> e.getKey().address() == address
                        && e.getValue() > 0);
                assertThat(took != null).as("seed %d step %d", seed, step).isEqualTo(any);
                if (took != null) {
                    Key k = new Key(address, took);
                    live.merge(k, -1, Integer::sum);
                    unmapping.merge(k, 1, Integer::sum);
                    pending.add(k);
                }
            } else if (!pending.isEmpty()) {
                Key k = pending.remove(random.nextInt(pending.size()));
                unmapping.merge(k, -1, Integer::sum);
                if (random.nextInt(5) == 0) {
                    t.unmapFailed(k.address(), k.binding());
                    live.merge(k, 1, Integer::sum);
                } else {
                    t.unmapped(k.address(), k.binding());
                }
            }
            if (step % 97 == 0) {
                for (ModuleRef owner : new ModuleRef[] {a, b}) {
                    long expected = 0;
                    for (var e : live.entrySet()) {
                        expected += e.getKey().binding().owner() == owner ? e.getValue() : 0;
                    }
                    for (var e : unmapping.entrySet()) {
                        expected += e.getKey().binding().owner() == owner ? e.getValue() : 0;
                    }
                    assertThat(t.count(owner)).as("seed %d step %d", seed, step).isEqualTo(expected);
                }
                for (DmaOpsBinding x : bindings) {
                    long expected = 0;
                    for (var e : live.entrySet()) {
                        expected += e.getKey().binding() == x ? e.getValue() : 0;
                    }
                    for (var e : unmapping.entrySet()) {
                        expected += e.getKey().binding() == x ? e.getValue() : 0;
                    }
                    assertThat(t.count(x)).as("seed %d step %d", seed, step).isEqualTo(expected);
                }
            }
        }
    }

    @Test
    void callsInFlightCountPerBindingAndDropToNothing() {
        DmaOpsBinding one = new DmaOpsBinding(ops(), ModuleRef.KERNEL);
        DmaOpsBinding two = new DmaOpsBinding(ops(), ModuleRef.KERNEL);
        DmaOpsBinding three = new DmaOpsBinding(ops(), ModuleRef.KERNEL);
        LiveMappings t = new LiveMappings();
        t.busy(one, 1);
        t.busy(two, 1);
        t.busy(three, 2);
        assertThat(t.count(ModuleRef.KERNEL)).isEqualTo(4);
        t.busy(three, -2);
        t.busy(one, -1);
        t.busy(two, -1);
        assertThat(t.count(ModuleRef.KERNEL)).isZero();
    }

    @Test
    void seededSlotsAndTableTogetherCountAsAModelDoes() {
        long seed = System.nanoTime();
        Random random = new Random(seed);
        DmaOpsBinding one = new DmaOpsBinding(ops(), ModuleRef.KERNEL);
        DmaOpsBinding two = new DmaOpsBinding(ops(), ModuleRef.KERNEL);
        DmaOpsBinding[] bindings = {one, two};
        LiveMappings t = new LiveMappings();
        List<LiveMappings.Slot> busy = new ArrayList<>();
        List<LiveMappings.Slot> unmapping = new ArrayList<>();
        Map<Key, Integer> live = new HashMap<>();
        for (int step = 0; step < 20_000; step++) {
            long address = (long) random.nextInt(40) << 12;
            DmaOpsBinding binding = bindings[random.nextInt(2)];
            int op = random.nextInt(6);
            if (op == 0) {
                busy.add(t.claim(binding));
            } else if (op == 1 && !busy.isEmpty()) {
                LiveMappings.Slot s = busy.remove(random.nextInt(busy.size()));
                if (random.nextInt(4) == 0) {
                    s.done(); // a failed map or a finished sync
                } else {
                    s.mapped(address);
                    live.merge(new Key(address, s.binding()), 1, Integer::sum);
                }
            } else if (op == 2) {
                LiveMappings.Slot s = t.takeSlot(address, binding);
                boolean any = live.entrySet().stream().anyMatch(e -> e.getKey().address() == address
                        && e.getValue() > 0);
                assertThat(s != null).as("seed %d step %d", seed, step).isEqualTo(any);
                if (s != null) {
                    Key k = new Key(address, s.binding());
                    assertThat(live.getOrDefault(k, 0)).as("seed %d step %d", seed, step).isPositive();
                    assertThat(s.key()).isEqualTo(address);
                    if (live.getOrDefault(new Key(address, binding), 0) > 0) {
                        assertThat(s.binding()).as("seed %d step %d: the preferred binding", seed, step)
                                .isSameAs(binding);
                    }
                    live.merge(k, -1, Integer::sum);
                    unmapping.add(s);
                }
            } else if (op == 3 && !unmapping.isEmpty()) {
                LiveMappings.Slot s = unmapping.remove(random.nextInt(unmapping.size()));
                assertThat(t.isUnmapping(s.key())).isTrue();
                if (random.nextInt(5) == 0) {
                    t.unmapFailed(s);
                    live.merge(new Key(s.key(), s.binding()), 1, Integer::sum);
                } else {
                    s.done();
                }
            } else if (op == 4) {
                t.add(address, binding);
                live.merge(new Key(address, binding), 1, Integer::sum);
            }
            if (step % 89 == 0) {
                long liveCount = live.values().stream().mapToLong(Integer::longValue).sum();
                assertThat(t.count(ModuleRef.KERNEL)).as("seed %d step %d", seed, step)
                        .isEqualTo(liveCount + busy.size() + unmapping.size());
                assertThat(t.countLive(ModuleRef.KERNEL)).as("seed %d step %d", seed, step).isEqualTo(liveCount);
                for (DmaOpsBinding x : bindings) {
                    long expected = unmapping.stream().filter(s -> s.binding() == x).count();
                    for (var e : live.entrySet()) {
                        expected += e.getKey().binding() == x ? e.getValue() : 0;
                    }
                    assertThat(t.count(x)).as("seed %d step %d", seed, step).isEqualTo(expected);
                }
            }
        }
    }
}
