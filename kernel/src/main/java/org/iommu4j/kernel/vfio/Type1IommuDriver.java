package org.iommu4j.kernel.vfio;

import java.util.ArrayList;
import java.util.List;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.api.VfioIommu;
import org.iommu4j.api.VfioIommuDriver;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.iommu.Iommu;

/**
 * The kernel's {@code vfio_iommu_type1}: works over any backend's {@link IommuOps}, so a backend with a
 * translating IOMMU gets VFIO by implementing domains alone. One unmanaged domain per IOMMU driver the
 * container's groups sit behind; every mapping is made in each, and replayed into a domain that arrives later.
 */
final class Type1IommuDriver implements VfioIommuDriver {
    private final Iommu iommu;

    Type1IommuDriver(Iommu iommu) {
        this.iommu = iommu;
    }

    @Override
    public String name() {
        return "vfio-iommu-type1";
    }

    @Override
    public int checkExtension(int extension) {
        return extension == Vfio.TYPE1_IOMMU || extension == Vfio.TYPE1v2_IOMMU ? 1 : 0;
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

    private final class Container implements VfioIommu {
        private final List<DomainUse> domains = new ArrayList<>();
        private final List<VfioDmaMapping> live = new ArrayList<>();

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
            DomainUse use = domains.stream().filter(d -> d.ops == ops).findFirst().orElse(null);
            boolean fresh = use == null;
            if (fresh) {
                use = new DomainUse(ops, ops.allocateDomain(DomainType.UNMANAGED));
            }
            try {
                if (fresh) {
                    for (VfioDmaMapping m : live) {
                        mapInto(use, m.iova(), m.pages(), m.prot());
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
        }

        @Override
        public void detachGroup(IommuGroup g) {
            Group group = (Group) g;
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
            List<DomainUse> done = new ArrayList<>();
            try {
                for (DomainUse use : domains) {
                    mapInto(use, iova, pages, prot);
                    done.add(use);
                }
            } catch (RuntimeException e) {
                for (DomainUse use : done) {
                    iommu.unmap(use.ops, use.domain, iova, pages.length());
                }
                throw e;
            }
            live.add(new VfioDmaMapping(iova, pages, prot));
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
            for (DomainUse use : domains) {
                iommu.unmap(use.ops, use.domain, mapping.iova(), mapping.size());
            }
            live.removeIf(m -> m.iova() == mapping.iova());
        }

        @Override
        public void release() {
            live.clear();
        }
    }
}
