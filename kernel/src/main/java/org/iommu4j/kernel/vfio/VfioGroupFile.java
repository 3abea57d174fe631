package org.iommu4j.kernel.vfio;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.LogLevel;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.proc.FileObject;
import org.iommu4j.kernel.proc.UserProcess;

/**
 * An open VFIO group node, what {@code open("/dev/vfio/26")} returns ({@code drivers/vfio/group.c}, Linux
 * v6.12): its status, the container it joins, and its devices. It is a file: only a process that holds it
 * (opened it, inherited it by fork, or was passed it with {@link #passTo}) may use it, any other gets
 * {@link Errno#EBADF}; and the group's access rule is checked at each call. As in the kernel, each open device
 * keeps the group file alive: the group is released (it leaves its container, and VFIO gives up its DMA
 * ownership) when the last descriptor to it and the last of its devices are closed.
 *
 * <p>While the group is in a container VFIO owns its DMA: its devices reach the container's mappings and
 * nothing else (the blocking domain until an iommu type is set); a container whose descriptors are all closed
 * stays alive for them, so closing it never returns an open device to the kernel's default domain.
 */
public final class VfioGroupFile extends FileObject {
    private final Vfio vfio;
    private final VfioGroup group;
    private final UserProcess opener;
    private final List<VfioDeviceFile> devices = new CopyOnWriteArrayList<>();
    private volatile boolean released;

    VfioGroupFile(Vfio vfio, VfioGroup group, UserProcess opener) {
        this.vfio = vfio;
        this.group = group;
        this.opener = opener;
    }

    /** Installs the file in its opener's descriptor table. */
    void open() {
        openBy(opener);
    }

    @Override
    public String fileName() {
        return group.node();
    }

    /** @return the iommu group's id */
    public int id() {
        return group.id();
    }

    /** @return the node this file was opened as */
    public String node() {
        return group.node();
    }

    /** @return the process that opened it */
    public UserProcess opener() {
        return opener;
    }

    /** @return whether the file is gone: no descriptor and no open device keeps it */
    public boolean released() {
        return released;
    }

    VfioGroup group() {
        return group;
    }

    /**
     * {@code VFIO_GROUP_GET_STATUS}: whether the group is viable (every device of it bound to VFIO or to
     * nothing) and whether it is in a container.
     *
     * @param caller who asks
     * @return the status
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the file
     */
    public VfioGroupStatus status(UserProcess caller) {
        requireHeld(caller);
        vfio.lock().lock();
        try {
            requireUsable();
            return new VfioGroupStatus(group.viable(), group.container() != null);
        } finally {
            vfio.lock().unlock();
        }
    }

    /**
     * {@code VFIO_GROUP_SET_CONTAINER}, checked in {@code vfio_group_ioctl_set_container}'s order: both files
     * held, not in a container yet, then (in {@code vfio_container_attach_group}) the capability a group
     * without isolation needs, viability and the container's rules.
     *
     * @param caller who asks
     * @param container the container to join
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold this file or the container;
     *     {@link Errno#EINVAL} if the group is in a container already (before any capability check);
     *     {@link Errno#EPERM} without the group's capability, for a group that is not viable, or when isolated
     *     and unisolated groups would mix; the container's driver's refusal of the group
     */
    public void setContainer(UserProcess caller, VfioContainer container) {
        requireHeld(caller);
        container.requireHeld(caller);
        vfio.lock().lock();
        try {
            requireUsable();
            if (group.container() != null) {
                throw new IommuException(Errno.EINVAL, node() + " is already in a container: unset it first");
            }
            VfioAccess.checkGroup(caller, group, VfioAccess.Step.SET_CONTAINER);
            if (!group.viable()) {
                throw new IommuException(Errno.EPERM, node() + " is not viable: every device in iommu group "
                        + id() + " must be bound to vfio-pci or to no driver; " + group.blocker() + " is not");
            }
            container.attach(group);
        } finally {
            vfio.lock().unlock();
        }
    }

    /**
     * {@code VFIO_GROUP_UNSET_CONTAINER}: leaves the container; if it was the last group, the container drops
     * its iommu and every mapping. No device of the group is open then.
     *
     * @param caller who asks
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the file; {@link Errno#EINVAL}
     *     if the group is in no container, {@link Errno#EBUSY} while one of its devices is open
     */
    public void unsetContainer(UserProcess caller) {
        requireHeld(caller);
        vfio.lock().lock();
        try {
            requireUsable();
            VfioAccess.checkGroup(caller, group, VfioAccess.Step.UNSET_CONTAINER);
            VfioContainer c = group.container();
            if (c == null) {
                throw new IommuException(Errno.EINVAL, node() + " is not in a container");
            }
            if (!devices.isEmpty()) {
                throw new IommuException(Errno.EBUSY, node() + " has " + devices.size()
                        + " open device(s): close them before leaving the container");
            }
            c.detach(group);
        } finally {
            vfio.lock().unlock();
        }
    }

    /**
     * {@code VFIO_GROUP_GET_DEVICE_FD}: opens one of the group's devices for user-level access, checked in
     * the kernel's order: the name first ({@code vfio_device_get_from_name}), then the container and its
     * iommu ({@code vfio_df_group_open}, {@code vfio_group_use_container}), then the capability a group
     * without isolation needs.
     *
     * @param caller who asks; it holds the device file it gets
     * @param name the device's name, for example {@code 0000:06:0d.0}
     * @return the open device
     * @throws IommuException {@link Errno#EBADF} if the caller does not hold the file; {@link Errno#ENODEV}
     *     for a device that is not in this group or not bound to VFIO; {@link Errno#EINVAL} until the group is
     *     viable and in a container with an iommu type set; {@link Errno#EPERM} without the group's capability
     */
    public VfioDeviceFile getDevice(UserProcess caller, String name) {
        requireHeld(caller);
        vfio.lock().lock();
        try {
            requireUsable();
            BusDevice device = group.devices().stream().filter(d -> d.name().equals(name)).findFirst()
                    .orElseThrow(() -> new IommuException(Errno.ENODEV, "no device " + name + " bound to VFIO in "
                            + node() + "; its devices: " + group.devices()));
            VfioContainer c = group.container();
            if (c == null || !c.hasIommu() || !group.viable()) {
                throw new IommuException(Errno.EINVAL, node() + " is not ready for device access: it must be"
                        + " viable and in a container whose iommu type is set");
            }
            VfioAccess.checkGroup(caller, group, VfioAccess.Step.GET_DEVICE);
            VfioDeviceFile f = new VfioDeviceFile(vfio, this, device, caller);
            f.open();
            devices.add(f);
            if (!group.isolated()) {
                vfio.host().log().log(LogLevel.WARNING, device.logPrefix()
                        + ": " + group.group().name().orElse("vfio-noiommu") + " device opened by user ("
                        + caller.comm() + ":" + caller.pid() + ")");
            }
            return f;
        } finally {
            vfio.lock().unlock();
        }
    }

    /** @return the devices open through this file */
    public List<VfioDeviceFile> openDevices() {
        return List.copyOf(devices);
    }

    boolean hasDevice(BusDevice device) {
        for (VfioDeviceFile f : devices) {
            if (f.device() == device) {
                return true;
            }
        }
        return false;
    }

    void revoke(BusDevice device, String why) {
        for (VfioDeviceFile f : new ArrayList<>(devices)) {
            if (f.device() == device) {
                f.revoke(why);
                devices.remove(f);
            }
        }
        releaseIfUnused();
    }

    /** A device's last descriptor went; the group goes with it if nothing else keeps it. */
    void deviceClosed(VfioDeviceFile file) {
        vfio.lock().lock();
        try {
            devices.remove(file);
            releaseIfUnused();
        } finally {
            vfio.lock().unlock();
        }
    }

    void closeDevices() {
        revokeDevices("lost its group");
    }

    void revokeDevices(String why) {
        for (VfioDeviceFile f : new ArrayList<>(devices)) {
            f.revoke(why);
        }
        devices.clear();
        releaseIfUnused();
    }

    private void requireUsable() {
        if (group.isDead()) {
            throw new IommuException(Errno.ENODEV, node() + " is gone: its devices were removed or unbound");
        }
    }

    /** The last descriptor went: the group goes now, or with its last open device. */
    @Override
    protected void lastClose() {
        vfio.lock().lock();
        try {
            releaseIfUnused();
        } finally {
            vfio.lock().unlock();
        }
    }

    /** {@code vfio_group_fops_release}: leaves the container, gives up DMA ownership, frees the node. */
    private void releaseIfUnused() {
        if (released || held() || !devices.isEmpty()) {
            return;
        }
        released = true;
        VfioContainer c = group.container();
        if (c != null) {
            c.detach(group);
        }
        if (group.dmaClaimed()) {
            vfio.host().iommu().releaseDmaOwner(group.group());
            group.setDmaClaimed(false);
        }
        group.setOpenFile(null);
        group.providerOwner().put();
    }
}
