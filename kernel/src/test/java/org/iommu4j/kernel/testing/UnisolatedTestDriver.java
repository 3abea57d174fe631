package org.iommu4j.kernel.testing;

import java.util.Optional;
import org.iommu4j.api.Device;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.api.VfioIommu;
import org.iommu4j.api.VfioIommuDriver;
import org.iommu4j.kernel.iommu.Iommu;

/**
 * A test-only VFIO iommu driver without isolation, shaped like no-IOMMU mode: it makes fake groups for
 * devices bound to VFIO and maps only iova == phys over contiguous memory. It lets the VFIO core's tests
 * exercise the rules for unisolated groups without depending on a backend.
 */
public final class UnisolatedTestDriver implements VfioIommuDriver {
    private final Iommu iommu;

    /** @param iommu the host's iommu core, for allocating groups */
    public UnisolatedTestDriver(Iommu iommu) {
        this.iommu = iommu;
    }

    @Override
    public String name() {
        return "vfio-test-noiommu";
    }

    @Override
    public int checkExtension(int extension) {
        return extension == Vfio.NOIOMMU_IOMMU ? 1 : 0;
    }

    @Override
    public boolean isolating() {
        return false;
    }

    @Override
    public Optional<IommuGroup> provideGroup(Device device) {
        return Optional.of(iommu.allocateGroup("vfio-noiommu", false));
    }

    @Override
    public VfioIommu open(int type) {
        return new VfioIommu() {
            @Override
            public void attachGroup(IommuGroup group) {
            }

            @Override
            public void detachGroup(IommuGroup group) {
            }

            @Override
            public long map(long iova, PinnedPages pages, int prot) {
                if (!pages.isContiguous() || iova != pages.physAt(0)) {
                    throw new IommuException(Errno.EINVAL, "test noiommu: iova must equal phys over contiguous"
                            + " pages");
                }
                return iova;
            }

            @Override
            public void unmap(VfioDmaMapping mapping) {
            }
        };
    }
}
