package org.iommu4j.backend.swiotlb;

import java.util.function.BooleanSupplier;
import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuCore;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.PciSlotList;

/**
 * The SWIOTLB-IOMMU's {@code iommu_ops}: there is no hardware, so it claims exactly the assigned devices
 * (while the unsafe opt-in is on), puts each in a group of its own that does not isolate
 * ({@code vfio-swiotlb}), and leaves their DMA untranslated. What makes VFIO usable on top is the
 * {@link SwiotlbVfioDriver}.
 */
final class SwiotlbIommuOps implements IommuOps {
    private final PciSlotList slots;
    private final BooleanSupplier enabled;

    SwiotlbIommuOps(PciSlotList slots, BooleanSupplier enabled) {
        this.slots = slots;
        this.enabled = enabled;
    }

    @Override
    public boolean probeDevice(Device device) {
        return enabled.getAsBoolean() && slots.covers(device);
    }

    @Override
    public IommuGroup deviceGroup(Device device, IommuCore groups) {
        return groups.allocateGroup("vfio-swiotlb", false);
    }

    @Override
    public DomainType defaultDomainType(Device device) {
        return DomainType.IDENTITY;
    }

    @Override
    public IommuDomain allocateDomain(DomainType type) {
        throw new IommuException(Errno.EOPNOTSUPP, "the SWIOTLB-IOMMU has no hardware and cannot make "
                + type.sysfsName() + " domains");
    }
}
