package org.iommu4j.bench;

import java.util.Map;
import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Vfio;
import org.iommu4j.examples.vtd.VtdProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;

/**
 * A machine whose NIC a user process drives through VFIO type 1: a Xen guest (machine-contiguous pages; the
 * translating path the in-tree backends offer, two stages: the guest's IOMMU context in the hypervisor, then its
 * machine frames), or a bare-metal host with the VT-d-like example IOMMU (one stage: the IOMMU's page table).
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
     * A Xen guest.
     *
     * @param memory the guest's memory
     * @param entryLimit {@code vfio_iommu_type1.dma_entry_limit}
     */
    public VfioMachine(long memory, int entryLimit) {
        this("xen", memory, entryLimit);
    }

    /**
     * @param platform {@code xen} (a Xen guest) or {@code vtd} (bare metal, the example VT-d IOMMU)
     * @param memory the machine's memory
     * @param entryLimit {@code vfio_iommu_type1.dma_entry_limit}
     */
    public VfioMachine(String platform, long memory, int entryLimit) {
        String commandLine = "vfio_iommu_type1.dma_entry_limit=" + entryLimit;
        if (platform.equals("vtd")) {
            host = Machines.host(memory, commandLine);
            host.modules().insert(new VtdProvider(), Map.of(), "bench");
        } else {
            host = Machines.xenGuest(memory, commandLine);
        }
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
