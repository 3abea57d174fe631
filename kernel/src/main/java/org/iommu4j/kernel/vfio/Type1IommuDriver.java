package org.iommu4j.kernel.vfio;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuCapability;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.api.VfioIommu;
import org.iommu4j.api.VfioIommuDriver;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.iommu.Iommu;
import org.iommu4j.kernel.log.KernelLogBuffer;

/**
 * The kernel's {@code vfio_iommu_type1} ({@code drivers/vfio/vfio_iommu_type1.c}, Linux v6.12): works over
 * any backend's {@link IommuOps}, so a backend with a translating IOMMU gets VFIO by implementing domains
 * alone. One unmanaged domain per IOMMU driver the container's groups sit behind; every mapping is made in
 * each, and replayed into a domain that arrives later.
 *
 * <p>Per container it keeps what {@code struct vfio_iommu} keeps: the page-size bitmap (the AND of its
 * domains', raised to at least 4 KiB, as {@code vfio_update_pgsize_bitmap} does), and the valid IOVA ranges
 * (the 64-bit space minus each group's reserved regions: the x86 MSI window {@code 0xfee00000-0xfeefffff} and
 * every RMRR a device of the group reports, as {@code vfio_iommu_resv_exclude} does). A group joins only if
 * no mapping lies in its reserved regions ({@code vfio_iommu_resv_conflict}, EINVAL) and its IOMMU isolates
 * MSIs, unless {@code vfio_iommu_type1.allow_unsafe_interrupts=1} (EPERM). v6.12 asks the latter of the
 * interrupt domain ({@code iommu_group_has_isolated_msi}); before v6.3 it was {@code IOMMU_CAP_INTR_REMAP},
 * which this model keeps as the IOMMU's way to say it: {@link IommuCapability#INTR_REMAP} for every device.
 */
final class Type1IommuDriver implements VfioIommuDriver {
    /** The kernel parameter that lets groups without interrupt remapping join. */
    static final String ALLOW_UNSAFE_INTERRUPTS = "vfio_iommu_type1.allow_unsafe_interrupts";
    /** The x86 MSI window every IOMMU reports as an {@code IOMMU_RESV_MSI} region. */
    static final long MSI_BASE = 0xfee0_0000L;
    /** Its last byte. */
    static final long MSI_LAST = 0xfeef_ffffL;

    private final Iommu iommu;
    private final boolean allowUnsafeInterrupts;
    private final KernelLogBuffer log;

    Type1IommuDriver(Iommu iommu, boolean allowUnsafeInterrupts, KernelLogBuffer log) {
        this.iommu = iommu;
        this.allowUnsafeInterrupts = allowUnsafeInterrupts;
        this.log = log;
    }

    /** A reserved region of a group, as {@code struct iommu_resv_region}. */
    private record Resv(long start, long last, String type) {
    }

    @Override
    public String name() {
        return "vfio-iommu-type1";
    }

    @Override
    public int checkExtension(int extension) {
        return extension == Vfio.TYPE1_IOMMU || extension == Vfio.TYPE1v2_IOMMU || extension == Vfio.UNMAP_ALL
                ? 1 : 0;
    }

    @Override
    public boolean isolating() {
        return true;
    }

    @Override
    public VfioIommu open(int type) {
        if (checkExtension(type) == 0) {
            throw new IommuException(Errno.EINVAL, name() + " does not offer " + Vfio.typeName(type));
        }
        return new Container();
    }

    /** The reserved regions of a group: the MSI window, and its devices' RMRRs. */
    private static List<Resv> reservedRegions(Group group) {
        List<Resv> out = new ArrayList<>();
        out.add(new Resv(MSI_BASE, MSI_LAST, "msi"));
        for (BusDevice d : group.busDevices()) {
            if (d instanceof PciDevice pci) {
                for (AddressRange r : pci.rmrrs()) {
                    out.add(new Resv(r.start(), r.last(), "direct (RMRR of " + d.name() + ")"));
                }
            }
        }
        return out;
    }

    /** One container's {@code struct vfio_iommu}. */
    final class Container implements VfioIommu {
        private final List<DomainUse> domains = new ArrayList<>();
        /** The live mappings by iova: an unmap finds its own in constant time, whatever the count. */
        private final IovaHashTable live = new IovaHashTable();
        private final List<GroupResv> reserved = new ArrayList<>();
        /** {@link #iovaRanges()} as primitive pairs, recomputed when a group joins or leaves. */
        private long[] validStarts = {0};
        private long[] validEnds = {-1L};

        private record GroupResv(Group group, List<Resv> regions) {
        }

        /** @return the extension answer of a container with this type set: type 1 adds VFIO_UPDATE_VADDR */
        int checkExtension(int extension) {
            return extension == Vfio.UPDATE_VADDR ? 1 : Type1IommuDriver.this.checkExtension(extension);
        }

        /**
         * {@code iommu->pgsize_bitmap}: the AND of the domains' page sizes; sizes below the CPU's page are
         * replaced by it, as {@code vfio_update_pgsize_bitmap} does; {@code PAGE_MASK} with no domain.
         *
         * @return the bitmap
         */
        long pgsizeBitmap() {
            long bitmap = -1L;
            for (int i = 0, n = domains.size(); i < n; i++) {
                bitmap &= domains.get(i).ops.pageSizeBitmap();
            }
            if ((bitmap & (PhysicalMemory.PAGE_SIZE - 1)) != 0) {
                bitmap &= ~(long) (PhysicalMemory.PAGE_SIZE - 1);
                bitmap |= PhysicalMemory.PAGE_SIZE;
            }
            return bitmap;
        }

        /**
         * {@code iommu->iova_list}: the 64-bit space minus every reserved region of the attached groups.
         *
         * @return the valid ranges, lowest first
         */
        List<VfioIovaRange> iovaRanges() {
            List<Resv> all = new ArrayList<>();
            for (GroupResv g : reserved) {
                all.addAll(g.regions());
            }
            all.sort(Comparator.comparing(Resv::start, Long::compareUnsigned));
            List<VfioIovaRange> out = new ArrayList<>();
            long next = 0;
            boolean open = true;
            for (Resv r : all) {
                if (!open) {
                    break;
                }
                if (Long.compareUnsigned(r.start(), next) > 0) {
                    out.add(new VfioIovaRange(next, r.start() - 1));
                }
                if (Long.compareUnsigned(r.last(), next) >= 0) {
                    if (r.last() == -1L) {
                        open = false;
                    } else {
                        next = r.last() + 1;
                    }
                }
            }
            if (open) {
                out.add(new VfioIovaRange(next, -1L));
            }
            return out;
        }

        /**
         * {@code vfio_iommu_iova_dma_valid}: the whole range must lie in one valid IOVA range.
         *
         * @param iova the first address
         * @param size bytes, not wrapping
         */
        void requireValidIova(long iova, long size) {
            long last = iova + size - 1;
            for (int i = 0; i < validStarts.length; i++) {
                if (Long.compareUnsigned(iova, validStarts[i]) >= 0 && Long.compareUnsigned(last, validEnds[i]) <= 0) {
                    return;
                }
            }
            List<VfioIovaRange> ranges = iovaRanges();
            for (GroupResv g : reserved) {
                for (Resv r : g.regions()) {
                    if (Long.compareUnsigned(iova, r.last()) <= 0 && Long.compareUnsigned(r.start(), last) <= 0) {
                        throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: iova 0x%x+0x%x is"
                                + " outside the valid IOVA ranges: it meets the %s reserved region [0x%x-0x%x] of"
                                + " iommu group %d; valid ranges: %s", iova, size, r.type(), r.start(), r.last(),
                                g.group().id(), ranges));
                    }
                }
            }
            throw new IommuException(Errno.EINVAL, String.format("VFIO_IOMMU_MAP_DMA: iova 0x%x+0x%x is outside the"
                    + " valid IOVA ranges %s", iova, size, ranges));
        }

        private final class DomainUse {
            final IommuOps ops;
            final IommuDomain domain;
            final List<Group> groups = new ArrayList<>();

            DomainUse(IommuOps ops, IommuDomain domain) {
                this.ops = ops;
                this.domain = domain;
            }
        }

        @Override
        public void attachGroup(IommuGroup g) {
            Group group = (Group) g;
            IommuOps ops = group.ops();
            if (ops == null) {
                throw new IommuException(Errno.EINVAL, "iommu group " + group.id() + " has no IOMMU behind it:"
                        + " type 1 cannot translate for it");
            }
            List<Resv> regions = reservedRegions(group);
            long[] iovas = live.sortedIovas();
            for (long iova : iovas) {
                long size = live.pages(iova).length();
                long last = iova + size - 1;
                for (Resv r : regions) {
                    if (Long.compareUnsigned(iova, r.last()) <= 0 && Long.compareUnsigned(r.start(), last) <= 0) {
                        throw new IommuException(Errno.EINVAL, String.format("vfio_iommu_type1_attach_group: iommu"
                                + " group %d reserves [0x%x-0x%x] (%s), where the mapping at 0x%x+0x%x lies; unmap"
                                + " it first", group.id(), r.start(), r.last(), r.type(), iova, size));
                    }
                }
            }
            if (!allowUnsafeInterrupts) {
                for (Device d : group.devices()) {
                    if (!ops.capable(d, IommuCapability.INTR_REMAP)) {
                        String kernel = "vfio_iommu_type1_attach_group: No interrupt remapping support.  Use the"
                                + " module param \"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this"
                                + " platform";
                        log.log(LogLevel.WARNING, kernel);
                        throw new IommuException(Errno.EPERM, kernel + " (iommu group " + group.id() + ": the IOMMU"
                                + " of " + d.name() + " does not isolate its MSIs; boot with "
                                + ALLOW_UNSAFE_INTERRUPTS + "=1 to accept that)");
                    }
                }
            }
            DomainUse use = domains.stream().filter(d -> d.ops == ops).findFirst().orElse(null);
            boolean fresh = use == null;
            if (fresh) {
                use = new DomainUse(ops, ops.allocateDomain(DomainType.UNMANAGED));
            }
            try {
                if (fresh) {
                    for (long iova : iovas) {
                        mapInto(use, iova, live.pages(iova), live.prot(iova));
                    }
                }
                iommu.attachGroup(group, use.domain);
            } catch (RuntimeException e) {
                if (fresh) {
                    use.domain.free();
                }
                throw e;
            }
            use.groups.add(group);
            if (fresh) {
                domains.add(use);
            }
            reserved.add(new GroupResv(group, regions));
            cacheValidRanges();
        }

        private void cacheValidRanges() {
            List<VfioIovaRange> ranges = iovaRanges();
            long[] starts = new long[ranges.size()];
            long[] ends = new long[ranges.size()];
            for (int i = 0; i < starts.length; i++) {
                starts[i] = ranges.get(i).start();
                ends[i] = ranges.get(i).end();
            }
            validStarts = starts;
            validEnds = ends;
        }

        @Override
        public void detachGroup(IommuGroup g) {
            Group group = (Group) g;
            reserved.removeIf(r -> r.group() == group);
            cacheValidRanges();
            for (DomainUse use : new ArrayList<>(domains)) {
                if (use.groups.remove(group)) {
                    iommu.restoreDefaultDomain(group);
                    if (use.groups.isEmpty()) {
                        domains.remove(use);
                        use.domain.free();
                    }
                }
            }
        }

        @Override
        public long map(long iova, PinnedPages pages, int prot) {
            if (iova == Vfio.ANY_IOVA) {
                throw new IommuException(Errno.EINVAL, "vfio-iommu-type1 maps at the iova the user chooses:"
                        + " Vfio.ANY_IOVA is not allowed");
            }
            int done = 0;
            try {
                for (int n = domains.size(); done < n; done++) {
                    mapInto(domains.get(done), iova, pages, prot);
                }
            } catch (RuntimeException e) {
                for (int i = 0; i < done; i++) {
                    DomainUse use = domains.get(i);
                    iommu.unmap(use.ops, use.domain, iova, pages.length());
                }
                throw e;
            }
            live.put(iova, pages, prot);
            return iova;
        }

        /** Maps physically contiguous runs of the pinned pages as single calls, undoing a partial map. */
        private void mapInto(DomainUse use, long iova, PinnedPages pages, int prot) {
            int n = pages.pageCount();
            int start = 0;
            try {
                while (start < n) {
                    int end = start + 1;
                    while (end < n && pages.frame(end) == pages.frame(end - 1) + PhysicalMemory.PAGE_SIZE) {
                        end++;
                    }
                    iommu.map(use.ops, use.domain, iova + ((long) start << PhysicalMemory.PAGE_SHIFT),
                            pages.frame(start), (long) (end - start) << PhysicalMemory.PAGE_SHIFT, prot);
                    start = end;
                }
            } catch (RuntimeException e) {
                if (start > 0) {
                    iommu.unmap(use.ops, use.domain, iova, (long) start << PhysicalMemory.PAGE_SHIFT);
                }
                throw e;
            }
        }

        @Override
        public void unmap(VfioDmaMapping mapping) {
            for (int i = 0, n = domains.size(); i < n; i++) {
                DomainUse use = domains.get(i);
                iommu.unmap(use.ops, use.domain, mapping.iova(), mapping.size());
            }
            live.remove(mapping.iova());
        }

        @Override
        public void release() {
            live.clear();
            reserved.clear();
            cacheValidRanges();
        }
    }
}
