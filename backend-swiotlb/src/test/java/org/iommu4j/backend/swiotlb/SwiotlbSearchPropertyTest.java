package org.iommu4j.backend.swiotlb;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.iommu4j.api.BounceAreaStats;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.junit.jupiter.api.Test;

/**
 * The pool's search keeps a bitmap where the kernel keeps per-slot free counts: seeded random sequences of maps
 * and unmaps (sizes from 1 byte to a segment, allocation alignments, devices with and without a
 * {@code min_align_mask} and with a small segment boundary) must choose exactly the slot that a plain
 * transcription of v6.12's {@code swiotlb_search_pool_area} and {@code swiotlb_release_slots}, with its
 * {@code list} counts and backward walks, chooses, and leave the same free counts behind.
 */
class SwiotlbSearchPropertyTest {
    private static final long HIGH = 6L << 30;

    /** v6.12's search and release, written out as the kernel has them, over {@code slots[].list}. */
    static final class KernelSearch {
        final long start;
        final int nslabs;
        final int nareas;
        final int areaSlabs;
        final int[] list;
        final int[] allocSize;
        final int[] padSlots;
        final int[] areaIndex;
        final int[] areaUsed;

        KernelSearch(long start, int nslabs, int nareas) {
            this.start = start;
            this.nslabs = nslabs;
            this.nareas = nareas;
            this.areaSlabs = nslabs / nareas;
            list = new int[nslabs];
            allocSize = new int[nslabs];
            padSlots = new int[nslabs];
            areaIndex = new int[nareas];
            areaUsed = new int[nareas];
            for (int i = 0; i < nslabs; i++) {
                list[i] = SwiotlbPool.IO_TLB_SEGSIZE - (i % SwiotlbPool.IO_TLB_SEGSIZE);
            }
        }

        /** @return the slot the search reserves in the area, or -1 */
        int search(int a, long orig, long allocBytes, long allocAlignMask, long minAlignMask, long boundaryMask) {
            long tblDmaAddr = start & boundaryMask;
            long maxSlots = (boundaryMask >>> 11) + 1;
            long iotlbAlignMask = minAlignMask;
            int nslots = (int) ((allocBytes + 2047) >>> 11);
            int offset = (int) (orig & minAlignMask & 2047);
            if (allocAlignMask == 0 && iotlbAlignMask == 0 && allocBytes >= 4096) {
                allocAlignMask = 4095;
            }
            allocAlignMask |= 2047;
            iotlbAlignMask &= ~allocAlignMask;
            long stride = (Math.max(allocAlignMask, iotlbAlignMask) >>> 11) + 1;
            stride = Math.min(stride, areaSlabs);
            if (nslots > areaSlabs - areaUsed[a]) {
                return -1;
            }
            int slotBase = a * areaSlabs;
            int index = areaIndex[a];
            for (int checked = 0; checked < areaSlabs; ) {
                int slotIndex = slotBase + index;
                long tlbAddr = tblDmaAddr + ((long) slotIndex << 11);
                if ((tlbAddr & allocAlignMask) != 0 || (tlbAddr & iotlbAlignMask) != (orig & iotlbAlignMask)) {
                    index = index + 1 >= areaSlabs ? 0 : index + 1;
                    checked++;
                    continue;
                }
                long s = ((tblDmaAddr >>> 11) + slotIndex) & (maxSlots - 1);
                if (s + nslots <= maxSlots && list[slotIndex] >= nslots) {
                    for (int i = slotIndex; i < slotIndex + nslots; i++) {
                        list[i] = 0;
                        allocSize[i] = (int) (allocBytes - (offset + ((long) (i - slotIndex) << 11)));
                    }
                    int count = 0;
                    for (int i = slotIndex - 1; i >= 0 && (i % SwiotlbPool.IO_TLB_SEGSIZE)
                            != SwiotlbPool.IO_TLB_SEGSIZE - 1 && list[i] != 0; i--) {
                        list[i] = ++count;
                    }
                    index = (int) (index + nslots >= areaSlabs ? 0 : index + nslots);
                    areaIndex[a] = index;
                    areaUsed[a] += nslots;
                    return slotIndex;
                }
                index = (int) (index + stride >= areaSlabs ? 0 : index + stride);
                checked += (int) stride;
            }
            return -1;
        }

        void release(long tlbAddr, int offset) {
            int index = (int) ((tlbAddr - offset - start) >>> 11);
            index -= padSlots[index];
            int nslots = (allocSize[index] + offset + 2047) >>> 11;
            int a = index / areaSlabs;
            int count = index + nslots < (index / SwiotlbPool.IO_TLB_SEGSIZE + 1) * SwiotlbPool.IO_TLB_SEGSIZE
                    ? list[index + nslots] : 0;
            for (int i = index + nslots - 1; i >= index; i--) {
                list[i] = ++count;
                allocSize[i] = 0;
                padSlots[i] = 0;
            }
            for (int i = index - 1; i >= 0 && (i % SwiotlbPool.IO_TLB_SEGSIZE) != SwiotlbPool.IO_TLB_SEGSIZE - 1
                    && list[i] != 0; i--) {
                list[i] = ++count;
            }
            areaUsed[a] -= nslots;
        }
    }

    record Live(PciDevice device, long tlb, long size, int inSlot) {
    }

    @Test
    void theBitmapSearchChoosesTheKernelsSlotEveryTime() {
        for (long seed = 1; seed <= 12; seed++) {
            try {
                run(seed, seed % 2 == 0 ? 2 : 1);
            } catch (AssertionError | RuntimeException e) {
                throw new AssertionError("seed " + seed + ": " + e.getMessage(), e);
            }
        }
    }

    private static void run(long seed, int nareas) {
        Random random = new Random(seed);
        Host host = Host.builder().cpus(2).memory(8L << 30)
                .pciDevice(PciDeviceSpec.of("0000:06:0d.0"))
                .pciDevice(PciDeviceSpec.of("0000:06:0e.0").withMinAlignMask(0xfff))
                .pciDevice(PciDeviceSpec.of("0000:06:0f.0").withSegmentBoundaryMask(0x7ffff))
                .build();
        SwiotlbFixture swiotlb = new SwiotlbFixture(host, Map.of("nslabs", "1024", "nareas",
                Integer.toString(nareas), "dynamic", "0"));
        SwiotlbPool pool = swiotlb.pool();
        PciDevice[] devices = {host.pci("0000:06:0d.0"), host.pci("0000:06:0e.0"), host.pci("0000:06:0f.0")};
        KernelSearch ref = new KernelSearch(pool.start(), pool.nslabs(), pool.nareas());
        long[] aligns = {0, 0, 0, 0xfff, 0x1fff, 0x7ff};
        int cpu = host.currentCpu();
        List<Live> live = new ArrayList<>();
        for (int step = 0; step < 3000; step++) {
            if (!live.isEmpty() && (random.nextInt(100) < 45 || live.size() > 60)) {
                Live m = live.remove(random.nextInt(live.size()));
                ref.release(m.tlb(), m.inSlot());
                pool.unmap(m.device(), m.tlb(), m.size(), DmaDirection.TO_DEVICE);
            } else {
                PciDevice device = devices[random.nextInt(devices.length)];
                long size = switch (random.nextInt(4)) {
                    case 0 -> 1 + random.nextInt(2048);
                    case 1 -> 1 + random.nextInt(16384);
                    case 2 -> 4096L * (1 + random.nextInt(8));
                    default -> 1 + random.nextInt(200_000);
                };
                long align = aligns[random.nextInt(aligns.length)];
                long orig = HIGH + ((long) random.nextInt(1 << 20) << 6) + random.nextInt(64);
                long minAlign = device.minAlignMask();
                int offset = (int) (orig & minAlign & (align | 2047));
                long unit = align + 1;
                long allocBytes = (size + offset + unit - 1) & -unit;
                int pad = offset >>> 11;
                int inSlot = offset & 2047;
                int expected = -1;
                if (allocBytes <= SwiotlbPool.SEGMENT_BYTES) {
                    int first = cpu & (nareas - 1);
                    int a = first;
                    do {
                        expected = ref.search(a, orig, allocBytes, align, minAlign, device.segmentBoundaryMask());
                        a = a + 1 == nareas ? 0 : a + 1;
                    } while (expected < 0 && a != first);
                }
                if (expected < 0) {
                    assertThatThrownBy(() -> pool.map(device, orig, size, size, align, DmaDirection.TO_DEVICE))
                            .isInstanceOf(DmaMappingException.class)
                            .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
                } else {
                    ref.padSlots[expected + pad] = pad;
                    long tlb = pool.map(device, orig, size, size, align, DmaDirection.TO_DEVICE);
                    assertThat(tlb).as("step %d: map of %d bytes, align 0x%x, for %s", step, size, align,
                            device.name()).isEqualTo(pool.slotAddr(expected + pad) + inSlot);
                    live.add(new Live(device, tlb, size, inSlot));
                }
            }
            if (step % 50 == 0 || step > 2950) {
                for (int i = 0; i < pool.nslabs(); i++) {
                    assertThat(pool.freeRun(i)).as("step %d: free count of slot %d", step, i).isEqualTo(ref.list[i]);
                }
            }
            assertThat(pool.areaStats()).extracting(BounceAreaStats::usedSlots)
                    .as("step %d: used slots per area", step)
                    .containsExactlyElementsOf(java.util.Arrays.stream(ref.areaUsed).mapToObj(u -> (long) u).toList());
        }
    }
}
