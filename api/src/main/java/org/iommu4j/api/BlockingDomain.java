package org.iommu4j.api;

/**
 * A domain that lets nothing through, the kernel's {@code IOMMU_DOMAIN_BLOCKED}: every access faults, and it
 * takes no mappings. The iommu core parks a group user space has claimed in one until a user domain is
 * attached; an IOMMU driver can hand one out from {@link IommuOps#allocateDomain} for
 * {@link DomainType#BLOCKED}, for devices it must keep away from memory. It holds no state.
 */
public final class BlockingDomain implements IommuDomain {

    /** A new blocking domain; instances are interchangeable (since API 1.1). */
    public BlockingDomain() {
    }

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

    /**
     * @throws IommuException always, {@link Errno#EINVAL}: a blocking domain maps nothing
     */
    @Override
    public void map(long iova, long paddr, long size, int prot) {
        throw new IommuException(Errno.EINVAL, "a blocking domain takes no mappings");
    }

    /** @return 0: nothing is ever mapped */
    @Override
    public long unmap(long iova, long size) {
        return 0;
    }

    /** @return {@link #FAULT_NOT_MAPPED} for every address */
    @Override
    public long translate(long iova, int access) {
        return FAULT_NOT_MAPPED;
    }
}
