package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Seeded random maps and unmaps by two processes sharing one type 1 v2 container, at addresses all over the
 * unsigned 64-bit space, checked against a plain list that follows {@code vfio_dma_do_map} and
 * {@code vfio_dma_do_unmap} (Linux v6.12) step by step. The seed is printed on failure.
 */
class Type1UnmapModelTest {
    private static final long PAGE = 4096;
    private static final long[] BASES = {0, 0xfed00000L, 0x7fff_ffff_fff0_0000L, 0x8000_0000_0000_0000L,
        0xffff_ffff_fff0_0000L};

    /** One mapping of the reference model. */
    private record M(long iova, long size, UserProcess owner) {
        long last() {
            return iova + size - 1;
        }

        boolean contains(long a) {
            return Long.compareUnsigned(a, iova) >= 0 && Long.compareUnsigned(a, last()) <= 0;
        }
    }

    private static long address(Random r) {
        return BASES[r.nextInt(BASES.length)] + PAGE * r.nextInt(64);
    }

    @ParameterizedTest
    @ValueSource(longs = {1L, 42L, 20261201L})
    void unmapFollowsTheKernelsWalkEverywhereInTheAddressSpace(long seed) {
        Random r = new Random(seed);
        Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        UserProcess a = host.spawn("a", 0, Set.of(Capability.CAP_IPC_LOCK));
        UserProcess b = host.spawn("b", 0, Set.of(Capability.CAP_IPC_LOCK));
        host.vfio().bind("0000:06:0d.0");
        VfioContainer c = host.vfio().openContainer(a);
        host.vfio().openGroup(a, host.pci("0000:06:0d.0").group().id()).setContainer(a, c);
        c.setIommu(a, Vfio.TYPE1v2_IOMMU);
        c.passTo(a, b);
        List<M> model = new ArrayList<>();
        String step = "";
        try {
            for (int i = 0; i < 400; i++) {
                UserProcess who = r.nextBoolean() ? a : b;
                if (r.nextInt(3) > 0) {
                    long iova = address(r);
                    long size = PAGE * (1 + r.nextInt(4));
                    step = String.format("step %d: map %s 0x%x+0x%x", i, who, iova, size);
                    Errno expected = expectMap(model, iova, size);
                    long va = who.mmap(size);
                    Errno got = null;
                    try {
                        c.mapDma(who, va, size, iova, IommuProt.READ | IommuProt.WRITE);
                    } catch (IommuException e) {
                        got = e.errno();
                    }
                    assertThat(got).as(step).isEqualTo(expected);
                    if (expected == null) {
                        model.add(new M(iova, size, who));
                    } else {
                        who.munmap(va);
                    }
                } else {
                    long iova = address(r);
                    long size = r.nextInt(8) == 0 ? -iova + PAGE * (r.nextInt(3) - 1) : PAGE * r.nextInt(80);
                    step = String.format("step %d: unmap %s 0x%x+0x%x", i, who, iova, size);
                    long[] expected = expectUnmap(model, who, iova, size);
                    long got;
                    try {
                        got = c.unmapDma(who, iova, size);
                    } catch (IommuException e) {
                        assertThat(e.errno()).as(step).isEqualTo(Errno.EINVAL);
                        got = -1;
                    }
                    assertThat(got).as(step).isEqualTo(expected[0]);
                }
                model.sort(Comparator.comparing(M::iova, Long::compareUnsigned));
                assertThat(c.dmaRecords()).as(step).extracting(VfioDmaRecord::iova, VfioDmaRecord::size,
                        VfioDmaRecord::owner).containsExactlyElementsOf(model.stream()
                        .map(m -> org.assertj.core.groups.Tuple.tuple(m.iova(), m.size(), m.owner())).toList());
                assertThat(a.lockedPages() + b.lockedPages()).as(step)
                        .isEqualTo(model.stream().mapToLong(M::size).sum() / PAGE);
            }
        } catch (AssertionError e) {
            fail("seed " + seed + ", " + step + ": " + e.getMessage(), e);
        }
    }

    /** {@code vfio_dma_do_map}'s outcome: null for success. */
    private static Errno expectMap(List<M> model, long iova, long size) {
        if (Long.compareUnsigned(size - 1, ~iova) > 0) {
            return Errno.EINVAL;
        }
        long last = iova + size - 1;
        for (M m : model) {
            if (Long.compareUnsigned(m.iova(), last) <= 0 && Long.compareUnsigned(iova, m.last()) <= 0) {
                return Errno.EEXIST;
            }
        }
        if (Long.compareUnsigned(iova, 0xfeefffffL) <= 0 && Long.compareUnsigned(0xfee00000L, last) <= 0) {
            return Errno.EINVAL;
        }
        return null;
    }

    /** {@code vfio_dma_do_unmap} (v2): {bytes} or {-1} for EINVAL; removes from the model. */
    private static long[] expectUnmap(List<M> model, UserProcess who, long iova, long size) {
        if (size == 0 || Long.compareUnsigned(size - 1, ~iova) > 0) {
            return new long[] {-1};
        }
        long last = iova + size - 1;
        for (M m : model) {
            if (m.contains(iova) && m.iova() != iova || m.contains(last) && m.last() != last) {
                return new long[] {-1};
            }
        }
        model.sort(Comparator.comparing(M::iova, Long::compareUnsigned));
        long done = 0;
        for (M m : new ArrayList<>(model)) {
            boolean overlaps = Long.compareUnsigned(m.iova(), last) <= 0 && Long.compareUnsigned(iova, m.last()) <= 0;
            if (!overlaps) {
                continue;
            }
            if (m.owner() != who) {
                break;
            }
            model.remove(m);
            done += m.size();
        }
        return new long[] {done};
    }
}
