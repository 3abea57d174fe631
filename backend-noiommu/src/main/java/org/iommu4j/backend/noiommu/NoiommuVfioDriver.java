package org.iommu4j.backend.noiommu;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import org.iommu4j.api.Device;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.api.VfioIommu;
import org.iommu4j.api.VfioIommuDriver;

/**
 * The {@code vfio-noiommu} iommu driver ({@code drivers/vfio/container.c}'s {@code vfio_noiommu_ops}, Linux
 * v6.12). With the opt-in off it offers nothing and makes no groups. The opt-in is the kernel's
 * {@code vfio.enable_unsafe_noiommu_mode=1} on the command line (the vfio module's parameter), or this
 * module's own {@code noiommu.enable_unsafe_noiommu_mode}, an alias that can also be written at run time. With
 * it on, a device bound to VFIO that has no group gets a fake one ({@code vfio-noiommu}, node
 * {@code /dev/vfio/noiommu-N}; the VFIO core taints and logs). The kernel's driver implements no ioctl but
 * {@code VFIO_CHECK_EXTENSION}: with {@code kernel_faithful_map=1} map and unmap fail with ENOTTY before
 * anything else, as there. Without it a map is the seed thread's validated no-op (an invention, not in any
 * kernel): the pinned memory must be one physical run, the iova must be its physical address, and every byte
 * must be within reach of every device in the container. Nothing is translated, so a device can reach all of
 * memory.
 */
final class NoiommuVfioDriver implements VfioIommuDriver {
    /** The vfio module's parameter, as the kernel's command line names it. */
    static final String VFIO_ENABLE = "vfio." + NoiommuProvider.ENABLE;

    private final KernelServices kernel;
    private final boolean bootOptIn;

    NoiommuVfioDriver(KernelServices kernel) {
        this.kernel = kernel;
        this.bootOptIn = kernel.commandLine().get(VFIO_ENABLE).map(NoiommuVfioDriver::kstrtobool).orElse(false);
    }

    /** {@code kstrtobool}: y, Y, 1, on are true; a bare word is true; anything else false. */
    static boolean kstrtobool(String v) {
        if (v.isEmpty()) {
            return true;
        }
        char c = v.charAt(0);
        return c == 'y' || c == 'Y' || c == '1' || v.toLowerCase(Locale.ROOT).equals("on");
    }

    /** @return whether the unsafe mode is on: the vfio boot parameter, or this module's alias */
    boolean enabled() {
        return bootOptIn || kernel.parameters().getBool(NoiommuProvider.ENABLE);
    }

    @Override
    public String name() {
        return "vfio-noiommu";
    }

    @Override
    public int checkExtension(int extension) {
        return extension == Vfio.NOIOMMU_IOMMU && enabled() ? 1 : 0;
    }

    @Override
    public boolean isolating() {
        return false;
    }

    @Override
    public Optional<IommuGroup> provideGroup(Device device) {
        return enabled() ? Optional.of(kernel.iommu().allocateGroup("vfio-noiommu", false)) : Optional.empty();
    }

    @Override
    public Optional<String> noGroupReason(Device device) {
        return enabled() ? Optional.empty() : Optional.of(kernel.moduleName() + " is loaded, but its"
                + " enable_unsafe_noiommu_mode is off: boot with " + VFIO_ENABLE + "=1 (or set "
                + kernel.moduleName() + ".enable_unsafe_noiommu_mode=1) to give the device an unsafe no-IOMMU"
                + " group");
    }

    @Override
    public VfioIommu open(int type) {
        if (type != Vfio.NOIOMMU_IOMMU) {
            throw new IommuException(Errno.EINVAL, name() + " offers only " + Vfio.typeName(Vfio.NOIOMMU_IOMMU)
                    + ", not " + Vfio.typeName(type));
        }
        return new Container();
    }

    /**
     * One container: remembers its groups and its mappings only so that every device can reach every mapping,
     * whichever came first.
     */
    private final class Container implements VfioIommu {
        private final List<IommuGroup> groups = new ArrayList<>();
        private final List<VfioDmaMapping> mappings = new ArrayList<>();

        @Override
        public void attachGroup(IommuGroup group) {
            for (VfioDmaMapping m : mappings) {
                for (Device d : group.devices()) {
                    requireReachable("VFIO_GROUP_SET_CONTAINER", d, m.iova(), m.size(), m.pages().vaddr());
                }
            }
            groups.add(group);
        }

        @Override
        public void detachGroup(IommuGroup group) {
            groups.remove(group);
        }

        @Override
        public Optional<String> unsupportedIoctl(int request) {
            if (request == Vfio.IOMMU_GET_INFO) {
                return Optional.of(name() + " implements only VFIO_CHECK_EXTENSION (Inappropriate ioctl for"
                        + " device)");
            }
            if (kernel.parameters().getBool(NoiommuProvider.KERNEL_FAITHFUL)) {
                if (request == Vfio.IOMMU_MAP_DMA) {
                    return Optional.of(name() + " does not map: there is no IOMMU; program the physical addresses"
                            + " of your pinned buffer (pagemap) into the device");
                }
                if (request == Vfio.IOMMU_UNMAP_DMA) {
                    return Optional.of(name() + " does not unmap: there is no IOMMU, so nothing is ever mapped");
                }
            }
            return Optional.empty();
        }

        @Override
        public long map(long iova, PinnedPages pages, int prot) {
            int gap = pages.firstDiscontinuity();
            if (gap > 0) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: memory at vaddr 0x%x is"
                        + " not physically contiguous: page %d (vaddr 0x%x) is at phys 0x%x, not 0x%x; no-IOMMU"
                        + " mode needs one physical run", pages.vaddr(), gap,
                        pages.vaddr() + ((long) gap << PhysicalMemory.PAGE_SHIFT), pages.frame(gap),
                        pages.frame(gap - 1) + PhysicalMemory.PAGE_SIZE));
            }
            long phys = pages.physAt(0);
            if (iova != Vfio.ANY_IOVA && iova != phys) {
                throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: iova 0x%x is not the"
                        + " physical address 0x%x of vaddr 0x%x (page 0): without an IOMMU, iova == phys", iova,
                        phys, pages.vaddr()));
            }
            for (IommuGroup g : groups) {
                for (Device d : g.devices()) {
                    requireReachable("VFIO_IOMMU_MAP_DMA", d, phys, pages.length(), pages.vaddr());
                }
            }
            mappings.add(new VfioDmaMapping(phys, pages, prot));
            return phys;
        }

        /** Refuses a run a device cannot reach, naming its first page out of reach and the limit that binds. */
        private void requireReachable(String call, Device d, long phys, long length, long vaddr) {
            long limit = d.reachLimit();
            if (Long.compareUnsigned(phys + length - 1, limit) > 0) {
                long firstPage = Long.compareUnsigned(phys, limit) > 0 ? 0
                        : ((limit + 1 - phys) >>> PhysicalMemory.PAGE_SHIFT);
                String what = limit == d.dmaMask() ? "the DMA mask" : "the bus DMA limit";
                throw new IommuException(Errno.EINVAL, String.format("%s: page %d (phys 0x%x) of the mapping at"
                        + " vaddr 0x%x is beyond %s 0x%x of %s", call, firstPage,
                        phys + (firstPage << PhysicalMemory.PAGE_SHIFT), vaddr, what, limit, d.name()));
            }
        }

        @Override
        public void unmap(VfioDmaMapping mapping) {
            mappings.removeIf(m -> m.iova() == mapping.iova());
        }
    }
}
