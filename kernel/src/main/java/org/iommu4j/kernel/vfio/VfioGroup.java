package org.iommu4j.kernel.vfio;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.VfioIommuDriver;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * VFIO's side of an iommu group (the kernel's {@code struct vfio_group}): which of its devices are bound to
 * VFIO, who has its file open, which container it is in. It exists while at least one of its devices is
 * bound to VFIO. State changes happen under the host's configuration lock.
 */
final class VfioGroup {
    private final Group group;
    private final VfioIommuDriver provider;
    private final ModuleRef providerOwner;
    private final List<BusDevice> devices = new CopyOnWriteArrayList<>();
    private volatile VfioGroupFile openFile;
    private volatile VfioContainer container;
    private volatile boolean dead;
    private volatile boolean dmaClaimed;

    /**
     * @param group the iommu group
     * @param provider the VFIO iommu driver that made it (a fake group), or null for a real one
     * @param providerOwner the module of that driver, or the module of the bus's IOMMU ops, or the kernel
     */
    VfioGroup(Group group, VfioIommuDriver provider, ModuleRef providerOwner) {
        this.group = group;
        this.provider = provider;
        this.providerOwner = providerOwner;
    }

    Group group() {
        return group;
    }

    int id() {
        return group.id();
    }

    boolean isolated() {
        return group.isolated();
    }

    /** @return the device node, {@code /dev/vfio/<id>} or {@code /dev/vfio/noiommu-<id>} */
    String node() {
        return "/dev/vfio/" + (isolated() ? "" : "noiommu-") + id();
    }

    VfioIommuDriver provider() {
        return provider;
    }

    ModuleRef providerOwner() {
        return providerOwner;
    }

    List<BusDevice> devices() {
        return devices;
    }

    VfioGroupFile openFile() {
        return openFile;
    }

    void setOpenFile(VfioGroupFile file) {
        this.openFile = file;
    }

    VfioContainer container() {
        return container;
    }

    void setContainer(VfioContainer container) {
        this.container = container;
    }

    /** @return whether VFIO holds the iommu group's DMA ownership ({@code iommu_group_claim_dma_owner}) */
    boolean dmaClaimed() {
        return dmaClaimed;
    }

    void setDmaClaimed(boolean claimed) {
        dmaClaimed = claimed;
    }

    boolean isDead() {
        return dead;
    }

    void markDead() {
        dead = true;
    }

    /**
     * Viable when every device of the iommu group is bound to a VFIO driver, to pci-stub, or to nothing: a
     * device a host driver still owns could be made to DMA where the user's devices can reach.
     *
     * @return whether the group may be used
     */
    boolean viable() {
        for (BusDevice d : group.busDevices()) {
            String driver = d.driver();
            if (driver != null && !Vfio.PCI_DRIVER.equals(driver) && !Vfio.PLATFORM_DRIVER.equals(driver)
                    && !"pci-stub".equals(driver)) {
                return false;
            }
        }
        return true;
    }

    /** @return the device bound to a host driver that makes the group not viable, for messages */
    String blocker() {
        for (BusDevice d : group.busDevices()) {
            String driver = d.driver();
            if (driver != null && !Vfio.PCI_DRIVER.equals(driver) && !Vfio.PLATFORM_DRIVER.equals(driver)
                    && !"pci-stub".equals(driver)) {
                return d.name() + " (bound to " + driver + ")";
            }
        }
        return "none";
    }

    @Override
    public String toString() {
        return node();
    }
}
