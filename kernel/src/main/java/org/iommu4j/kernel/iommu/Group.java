package org.iommu4j.kernel.iommu;

import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.Device;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.IommuOps;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.dma.DmaOpsBinding;
import org.iommu4j.kernel.iommu.dma.IommuDmaCookie;

/**
 * An iommu group as the kernel's core keeps it ({@code struct iommu_group}, {@code drivers/iommu/iommu.c}, Linux
 * v6.12). Its {@link #currentDomain()} is read on every device DMA, so
 * it is a volatile field; a null domain means no IOMMU stands between the group's devices and memory (a fake
 * group), which is why such groups are never {@link #isolated()}.
 */
public final class Group implements IommuGroup {
    /**
     * Returned by {@link #translate} when the driver's {@code translate} threw: the access faults, and the core
     * has warned and tainted the kernel.
     */
    public static final long FAULT_DRIVER_ERROR = -3;

    private final Iommu core;
    private final int id;
    private final String name;
    private final boolean isolated;
    private volatile IommuOps ops;
    private final List<BusDevice> devices = new CopyOnWriteArrayList<>();
    private volatile IommuDomain domain;
    private volatile IommuDomain defaultDomain;
    private volatile Object owner;
    private final IommuDomain blocked = new org.iommu4j.api.BlockingDomain();
    private volatile String opsOwner = "kernel";
    private volatile IommuDmaCookie dmaCookie;
    private volatile DmaOpsBinding dmaApi;

    Group(Iommu core, int id, String name, boolean isolated) {
        this.core = core;
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

    void setOps(IommuOps ops, String owner) {
        this.ops = ops;
        this.opsOwner = owner;
    }

    /** @return the name of the module whose driver is behind the group */
    public String opsOwner() {
        return opsOwner;
    }

    /** @return iommu-dma's state for the group's default DMA domain, or null when it has none */
    public IommuDmaCookie dmaCookie() {
        return dmaCookie;
    }

    /**
     * @return the DMA ops binding through which the DMA API reaches iommu-dma for the group's devices (counted
     *     against the driver's module), or null when the group has no DMA domain
     */
    public DmaOpsBinding dmaApiBinding() {
        return dmaApi;
    }

    void setDmaCookie(IommuDmaCookie cookie, DmaOpsBinding binding) {
        this.dmaCookie = cookie;
        this.dmaApi = binding;
    }

    /**
     * Translates one device access through a domain of this group, as the IOMMU hardware does, containing the
     * driver: an exception from its {@code translate} becomes {@link #FAULT_DRIVER_ERROR} after a WARN naming
     * the module (taint W). Where the page table no longer maps the address but a lazy unmap has not been
     * flushed yet, the stale IOTLB translation still answers ({@link IommuDmaCookie#staleTranslation}).
     * Allocation-free and lock-free unless it faults.
     *
     * @param domain the group's current domain
     * @param iova the bus address
     * @param access {@link org.iommu4j.api.IommuProt#READ} or {@link org.iommu4j.api.IommuProt#WRITE}
     * @return the physical address, or a negative fault code
     */
    public long translate(IommuDomain domain, long iova, int access) {
        long phys;
        try {
            phys = domain.translate(iova, access);
        } catch (RuntimeException e) {
            core.driverFailed(opsOwner, "drivers/iommu/iommu.c iommu_iova_to_phys", "translate", iova, e);
            return FAULT_DRIVER_ERROR;
        }
        if (phys == IommuDomain.FAULT_NOT_MAPPED) {
            IommuDmaCookie c = dmaCookie;
            if (c != null && c.isLazy() && c.domain() == domain) {
                return c.staleTranslation(iova, access);
            }
        }
        return phys;
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
     * The sysfs {@code type} word, which names the group's default domain whatever is attached now: its type
     * ({@code DMA-FQ} for a DMA domain with lazy invalidation),
     * {@code identity} for an IOMMU in pass-through, or {@code unknown} for a group no IOMMU stands behind
     * (a fake group), as the kernel shows one without a default domain.
     *
     * @return the word
     */
    public String sysfsType() {
        IommuDomain d = defaultDomain;
        if (d != null) {
            IommuDmaCookie c = dmaCookie;
            return c != null && c.isLazy() ? "DMA-FQ" : d.type().sysfsName();
        }
        return ops != null ? "identity" : "unknown";
    }

    @Override
    public String toString() {
        return "iommu group " + id;
    }
}
