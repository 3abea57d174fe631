package org.iommu4j.backend.swiotlb;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.BooleanSupplier;
import org.iommu4j.api.Device;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PciSlotList;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.api.VfioIommu;
import org.iommu4j.api.VfioIommuDriver;

/**
 * The seed thread's generic SWIOTLB-IOMMU driver for VFIO ({@link Vfio#SWIOTLB_IOMMU}). With no translation
 * hardware, the device address is chosen here: a pinned buffer that is one physical run every device of the
 * container can reach is mapped directly (iova = its physical address); anything else gets a bounce window
 * in the swiotlb pool, and the user must sync the window explicitly ({@code syncForCpu} after the device
 * wrote, {@code syncForDevice} after the CPU wrote) — the cost of bouncing, visible. Each bounced mapping is
 * logged and counted. No isolation: CAP_SYS_RAWIO at every step, and the VFIO core taints.
 *
 * <p>Its groups come from {@link SwiotlbIommuOps} (the bus's iommu ops claim the assigned devices), not from
 * {@link #provideGroup}: this driver provides none. When vfio-pci is bound to a device that has no group, the
 * VFIO core asks it {@link #noGroupReason} and puts the answer in the bind failure.
 */
final class SwiotlbVfioDriver implements VfioIommuDriver {
    private final KernelServices kernel;
    private final SwiotlbPool pool;
    private final BooleanSupplier enabled;
    private final boolean force;
    private final PciSlotList slots;

    SwiotlbVfioDriver(KernelServices kernel, SwiotlbPool pool, BooleanSupplier enabled, boolean force,
            PciSlotList slots) {
        this.kernel = kernel;
        this.pool = pool;
        this.enabled = enabled;
        this.force = force;
        this.slots = slots;
    }

    @Override
    public String name() {
        return "vfio-swiotlb";
    }

    @Override
    public int checkExtension(int extension) {
        return extension == Vfio.SWIOTLB_IOMMU && enabled.getAsBoolean() ? 1 : 0;
    }

    @Override
    public boolean isolating() {
        return false;
    }

    /**
     * Names what would give the device a SWIOTLB-IOMMU group: the unsafe opt-in, assigning the device, or both.
     * Nothing for a device that is not on PCI (the SWIOTLB-IOMMU claims PCI devices only), nor for one that is
     * assigned while the opt-in is on, whose missing group this driver cannot explain.
     */
    @Override
    public Optional<String> noGroupReason(Device device) {
        if (device.pciAddress().isEmpty()) {
            return Optional.empty();
        }
        String module = kernel.moduleName();
        boolean assigned = slots.covers(device);
        String optIn = module + "." + SwiotlbProvider.ENABLE_IOMMU + "=1";
        String assign = String.format("%s.hide=(%s) or by writing %s to %s's new_slot", module, device.name(),
                device.name(), module);
        if (enabled.getAsBoolean()) {
            return assigned ? Optional.empty() : Optional.of(String.format("%s is not assigned to the SWIOTLB-IOMMU"
                    + " of %s: assign it with %s to give it an unsafe SWIOTLB-IOMMU group", device.name(), module,
                    assign));
        }
        if (assigned) {
            return Optional.of(String.format("%s is loaded and %s is assigned to it, but its %s is off: set %s to"
                    + " give assigned devices unsafe SWIOTLB-IOMMU groups", module, device.name(),
                    SwiotlbProvider.ENABLE_IOMMU, optIn));
        }
        return Optional.of(String.format("%s is loaded, but its %s is off and %s is not assigned to it: set %s and"
                + " assign the device with %s to give it an unsafe SWIOTLB-IOMMU group", module,
                SwiotlbProvider.ENABLE_IOMMU, device.name(), optIn, assign));
    }

    @Override
    public VfioIommu open(int type) {
        if (type != Vfio.SWIOTLB_IOMMU) {
            throw new IommuException(Errno.EINVAL, name() + " offers only " + Vfio.typeName(Vfio.SWIOTLB_IOMMU)
                    + ", not " + Vfio.typeName(type));
        }
        return new Container();
    }

    private final class Container implements VfioIommu {
        private final List<IommuGroup> groups = new ArrayList<>();
        private final Map<Long, Device> windows = new HashMap<>();
        /** Every live mapping's device address, size and user address, so that a joining group is checked. */
        private final List<long[]> mapped = new ArrayList<>();

        /**
         * Takes a group in, after checking that each of its devices reaches every mapping the container already
         * has (direct or bounced), as the no-IOMMU driver does: a device that joins later cannot be handed an
         * address beyond its DMA mask or bus limit. Refused with EINVAL, nothing changed, naming the first page
         * out of reach.
         */
        @Override
        public void attachGroup(IommuGroup group) {
            if (group.name().filter("vfio-swiotlb"::equals).isEmpty()) {
                throw new IommuException(Errno.EINVAL, "iommu group " + group.id() + " is not a SWIOTLB-IOMMU group:"
                        + " assign its devices with new_slot or hide= first");
            }
            for (long[] m : mapped) {
                for (Device d : group.devices()) {
                    requireReachable(d, m[0], m[1], m[2]);
                }
            }
            groups.add(group);
        }

        private void requireReachable(Device d, long iova, long length, long vaddr) {
            long limit = SwiotlbMem.reachLimit(d);
            if (!SwiotlbDmaOps.capable(d, iova, length)) {
                long firstPage = Long.compareUnsigned(iova, limit) > 0 ? 0
                        : ((limit + 1 - iova) >>> PhysicalMemory.PAGE_SHIFT);
                String what = limit == d.dmaMask() ? "the DMA mask" : "the bus DMA limit";
                throw new IommuException(Errno.EINVAL, String.format("VFIO_GROUP_SET_CONTAINER: page %d (iova 0x%x)"
                        + " of the mapping at vaddr 0x%x is beyond %s 0x%x of %s; nothing was changed", firstPage,
                        iova + (firstPage << PhysicalMemory.PAGE_SHIFT), vaddr, what, limit, d.name()));
            }
        }

        @Override
        public void detachGroup(IommuGroup group) {
            groups.remove(group);
        }

        private Device firstDevice() {
            for (IommuGroup g : groups) {
                if (!g.devices().isEmpty()) {
                    return g.devices().get(0);
                }
            }
            throw new IommuException(Errno.ENODEV, "the container has no devices left");
        }

        private boolean reachableByAll(long phys, long size) {
            for (IommuGroup g : groups) {
                for (Device d : g.devices()) {
                    if (!SwiotlbDmaOps.capable(d, phys, size)) {
                        return false;
                    }
                }
            }
            return true;
        }

        @Override
        public long map(long iova, PinnedPages pages, int prot) {
            long phys = pages.physAt(0);
            String why = !pages.isContiguous() ? "not physically contiguous"
                    : !reachableByAll(phys, pages.length()) ? "out of a device's reach"
                    : force ? "bouncing is forced" : null;
            if (why == null) {
                if (iova != Vfio.ANY_IOVA && iova != phys) {
                    throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: iova 0x%x cannot be"
                            + " honoured: without translation the device address of vaddr 0x%x is its physical"
                            + " address 0x%x; pass Vfio.ANY_IOVA", iova, pages.vaddr(), phys));
                }
                mapped.add(new long[] {phys, pages.length(), pages.vaddr()});
                return phys;
            }
            Device device = firstDevice();
            if (pool == null) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x+0x%x must be"
                        + " bounced (%s) but bouncing is disabled (swiotlb=noforce)", pages.vaddr(), pages.length(),
                        why));
            }
            if (iova != Vfio.ANY_IOVA) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x+0x%x must be"
                        + " bounced (%s), so the driver chooses its device address: pass Vfio.ANY_IOVA",
                        pages.vaddr(), pages.length(), why));
            }
            if (pages.length() > pool.maxMappingSize(device)) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x+0x%x must be"
                        + " bounced (%s) and a bounce window spans at most %d bytes; map it in smaller pieces",
                        pages.vaddr(), pages.length(), why, pool.maxMappingSize(device)));
            }
            long window = pool.allocateWindow(device, pages.length());
            if (!reachableByAll(window, pages.length())) {
                pool.releaseWindow(device, window, pages.length());
                throw new IommuException(Errno.EIO, String.format("swiotlb addr 0x%016x+%d overflow (mask %x, bus"
                        + " limit %x).", window, pages.length(), device.dmaMask(), device.busDmaLimit()));
            }
            try {
                copy(pages, window, 0, pages.length(), true);
            } catch (Throwable t) {
                pool.releaseWindow(device, window, pages.length());
                throw t;
            }
            windows.put(window, device);
            mapped.add(new long[] {window, pages.length(), pages.vaddr()});
            kernel.log().log(LogLevel.INFO, String.format("vfio: bounced vaddr 0x%x+0x%x through 0x%x (%s); sync"
                    + " it around every DMA", pages.vaddr(), pages.length(), window, why));
            return window;
        }

        /** Copies between the scattered user pages and the window, page piece by page piece. */
        private void copy(PinnedPages pages, long window, long offset, long size, boolean towardsDevice) {
            long done = 0;
            while (done < size) {
                long at = offset + done;
                long phys = pages.physAt(at);
                long n = Math.min(size - done, PhysicalMemory.PAGE_SIZE - (phys & PhysicalMemory.PAGE_OFFSET_MASK));
                if (towardsDevice) {
                    kernel.memory().copy(phys, window + at, n);
                } else {
                    kernel.memory().copy(window + at, phys, n);
                }
                done += n;
            }
            pool.countBounced(size, towardsDevice);
        }

        @Override
        public void unmap(VfioDmaMapping mapping) {
            mapped.removeIf(m -> m[0] == mapping.iova());
            Device device = windows.remove(mapping.iova());
            if (device == null) {
                return;
            }
            try {
                if (mapping.direction().fromDevice()) {
                    copy(mapping.pages(), mapping.iova(), 0, mapping.size(), false);
                }
            } finally {
                pool.releaseWindow(device, mapping.iova(), mapping.size());
            }
        }

        @Override
        public void syncForCpu(VfioDmaMapping mapping, long offset, long size) {
            if (windows.containsKey(mapping.iova()) && mapping.direction().fromDevice()) {
                copy(mapping.pages(), mapping.iova(), offset, size, false);
            }
        }

        @Override
        public void syncForDevice(VfioDmaMapping mapping, long offset, long size) {
            if (windows.containsKey(mapping.iova()) && mapping.direction().toDevice()) {
                copy(mapping.pages(), mapping.iova(), offset, size, true);
            }
        }
    }
}
