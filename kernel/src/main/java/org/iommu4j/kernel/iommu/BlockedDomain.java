package org.iommu4j.kernel.iommu;

import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;

/**
 * The core's blocking domain ({@code IOMMU_DOMAIN_BLOCKED}): every access faults. A group user space has
 * claimed sits in it whenever no user domain is attached, so that its devices reach nothing between the
 * claim and the user's first mapping, and again after the user's domain goes.
 */
final class BlockedDomain implements IommuDomain {

    @Override
    public DomainType type() {
        return DomainType.BLOCKED;
    }

    @Override
    public void attachDevice(Device device) {
    }

    @Override
    public void detachDevice(Device device) {
    }

    @Override
    public void map(long iova, long paddr, long size, int prot) {
        throw new IommuException(Errno.EINVAL, "a blocking domain maps nothing");
    }

    @Override
    public long unmap(long iova, long size) {
        return 0;
    }

    @Override
    public long translate(long iova, int access) {
        return FAULT_NOT_MAPPED;
    }
}
