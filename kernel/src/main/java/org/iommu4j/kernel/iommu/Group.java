package org.iommu4j.kernel.iommu;

import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.Device;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.IommuOps;
import org.iommu4j.kernel.bus.BusDevice;

/**
 * An iommu group as the kernel's core keeps it. Its {@link #currentDomain()} is read on every device DMA, so
 * it is a volatile field; a null domain means no IOMMU stands between the group's devices and memory (a fake
 * group), which is why such groups are never {@link #isolated()}.
 */
public final class Group implements IommuGroup {
    private final int id;
    private final String name;
    private final boolean isolated;
    private volatile IommuOps ops;
    private final List<BusDevice> devices = new CopyOnWriteArrayList<>();
    private volatile IommuDomain domain;
    private volatile IommuDomain defaultDomain;
    private volatile Object owner;
    private final IommuDomain blocked = new org.iommu4j.api.BlockingDomain();

    Group(int id, String name, boolean isolated) {
        this.id = id;
        this.name = name;
        this.isolated = isolated;
    }

    @Override
    public int id() {
        return id;
    }

    @Override
    public Optional<String> name() {
        return Optional.ofNullable(name);
    }

    @Override
    public boolean isolated() {
        return isolated;
    }

    @Override
    public List<Device> devices() {
        return List.copyOf(devices);
    }

    /** @return the group's devices with their kernel type */
    public List<BusDevice> busDevices() {
        return List.copyOf(devices);
    }

    @Override
    public Optional<IommuDomain> domain() {
        return Optional.ofNullable(domain);
    }

    /** @return the domain devices are attached to now, or null when nothing translates (fake groups) */
    public IommuDomain currentDomain() {
        return domain;
    }

    /** @return the domain the group returns to when a user lets go, or null */
    public IommuDomain defaultDomain() {
        return defaultDomain;
    }

    /** @return the blocking domain the group sits in while user space owns it and has no domain attached */
    public IommuDomain blockedDomain() {
        return blocked;
    }

    /** @return the IOMMU driver behind the group, or null for a fake group */
    public IommuOps ops() {
        return ops;
    }

    /**
     * The group's DMA owner other than the kernel's DMA API, such as the VFIO group that claimed it; the
     * kernel's {@code iommu_group_claim_dma_owner}.
     *
     * @return the owner, or null while the kernel owns it
     */
    public Object dmaOwner() {
        return owner;
    }

    @Override
    public boolean dmaOwned() {
        return owner != null;
    }

    /**
     * Records the owner; {@link Iommu#claimDmaOwner} and {@link Iommu#releaseDmaOwner} also move the group
     * between its default and blocking domains, and are what callers should use.
     *
     * @param owner the new DMA owner, or null to give the group back to the kernel
     */
    void setDmaOwner(Object owner) {
        this.owner = owner;
    }

    void setOps(IommuOps ops) {
        this.ops = ops;
    }

    List<BusDevice> mutableDevices() {
        return devices;
    }

    void setDomain(IommuDomain domain) {
        this.domain = domain;
    }

    void setDefaultDomain(IommuDomain domain) {
        this.defaultDomain = domain;
    }

    /**
     * The sysfs {@code type} word, which names the group's default domain whatever is attached now: its type,
     * {@code identity} for an IOMMU in pass-through, or {@code unknown} for a group no IOMMU stands behind
     * (a fake group), as the kernel shows one without a default domain.
     *
     * @return the word
     */
    public String sysfsType() {
        IommuDomain d = defaultDomain;
        if (d != null) {
            return d.type().sysfsName();
        }
        return ops != null ? "identity" : "unknown";
    }

    @Override
    public String toString() {
        return "iommu group " + id;
    }
}
