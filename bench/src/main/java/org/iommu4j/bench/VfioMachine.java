package org.iommu4j.bench;

import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;

/**
 * A Xen guest (machine-contiguous pages) whose NIC a user process drives through VFIO type 1: the translating
 * path the in-tree backends offer.
 */
public final class VfioMachine {
    /** The host. */
    public final Host host;
    /** The NIC, bound to vfio-pci. */
    public final PciDevice nic;
    /** The process that owns the container. */
    public final UserProcess process;
    /** Its container, set to TYPE1v2. */
    public final VfioContainer container;

    /**
     * @param memory the guest's memory
     * @param entryLimit {@code vfio_iommu_type1.dma_entry_limit}
     */
    public VfioMachine(long memory, int entryLimit) {
        host = Machines.xenGuest(memory, "vfio_iommu_type1.dma_entry_limit=" + entryLimit);
        host.vfio().bind(Machines.NIC);
        nic = host.pci(Machines.NIC);
        process = host.spawn("bench", 0, Set.of(Capability.CAP_IPC_LOCK));
        container = host.vfio().openContainer(process);
        int group = nic.group().id();
        VfioGroupFile file = host.vfio().openGroup(process, host.vfio().nodeOf(group).orElseThrow());
        file.setContainer(process, container);
        container.setIommu(process, Vfio.TYPE1v2_IOMMU);
    }
}
