package org.iommu4j.cli;

import java.util.List;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioDeviceFile;
import org.iommu4j.kernel.vfio.VfioGroupFile;

/**
 * What a user-level driver does before its first map: open a container and the device's group, join them,
 * set an iommu type, get the device.
 *
 * @param container the container
 * @param group the open group
 * @param device the open device
 * @param type the iommu type set
 */
record VfioSession(VfioContainer container, VfioGroupFile group, VfioDeviceFile device, int type) {

    /** The types a session tries when none is named, best isolation first. */
    static final List<Integer> PREFERRED_TYPES = List.of(Vfio.TYPE1v2_IOMMU, Vfio.SWIOTLB_IOMMU, Vfio.NOIOMMU_IOMMU);

    /**
     * @param host the host
     * @param caller the process
     * @param device the device, already bound to VFIO
     * @param type an iommu type, or 0 for the first of {@link #PREFERRED_TYPES} the container offers
     * @return the session
     */
    static VfioSession open(Host host, UserProcess caller, String device, int type) {
        int groupId = host.buses().require(device).group().id();
        VfioContainer container = host.vfio().openContainer(caller);
        VfioGroupFile group = host.vfio().openGroup(caller, host.vfio().nodeOf(groupId).orElseThrow());
        group.setContainer(caller, container);
        int chosen = type;
        if (chosen == 0) {
            chosen = PREFERRED_TYPES.stream().filter(t -> container.checkExtension(caller, t) > 0).findFirst()
                    .orElseThrow(() -> new IommuException(Errno.ENODEV, "no VFIO iommu type is offered for "
                            + group.node() + ": the loaded backends offer none for its kind of group"));
        }
        container.setIommu(caller, chosen);
        return new VfioSession(container, group, group.getDevice(caller, device), chosen);
    }
}
