package org.iommu4j.kernel.vfio;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.LogLevel;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.proc.UserProcess;

/**
 * An open VFIO group node, what {@code open("/dev/vfio/26")} returns: its status, the container it joins,
 * and its devices. Every call names its caller, and the group's access rule is checked each time.
 */
public final class VfioGroupFile implements AutoCloseable {
    private final Vfio vfio;
    private final VfioGroup group;
    private final UserProcess opener;
    private final Runnable exitHook = this::close;
    private final List<VfioDeviceFile> devices = new CopyOnWriteArrayList<>();
    private volatile boolean closed;

    VfioGroupFile(Vfio vfio, VfioGroup group, UserProcess opener) {
        this.vfio = vfio;
        this.group = group;
        this.opener = opener;
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

    VfioGroup group() {
        return group;
    }

    /**
     * {@code VFIO_GROUP_GET_STATUS}: whether the group is viable (every device of it bound to VFIO or to
     * nothing) and whether it is in a container.
     *
     * @return the status
     */
    public VfioGroupStatus status() {
        vfio.lock().lock();
        try {
            requireUsable();
            return new VfioGroupStatus(group.viable(), group.container() != null);
        } finally {
            vfio.lock().unlock();
        }
    }

    /**
     * {@code VFIO_GROUP_SET_CONTAINER}.
     *
     * @param caller who asks
     * @param container the container to join
     * @throws IommuException {@link Errno#EPERM} without the group's capability, for a group that is not
     *     viable, or when isolated and unisolated groups would mix; {@link Errno#EINVAL} if the group is in a
     *     container already; the container's driver's refusal of the group
     */
    public void setContainer(UserProcess caller, VfioContainer container) {
        vfio.lock().lock();
        try {
            requireUsable();
            VfioAccess.checkGroup(caller, group, VfioAccess.Step.SET_CONTAINER);
            if (group.container() != null) {
                throw new IommuException(Errno.EINVAL, node() + " is already in a container: unset it first");
            }
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
     * its iommu and every mapping.
     *
     * @param caller who asks
     * @throws IommuException {@link Errno#EINVAL} if the group is in no container, {@link Errno#EBUSY} while
     *     one of its devices is open
     */
    public void unsetContainer(UserProcess caller) {
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
     * {@code VFIO_GROUP_GET_DEVICE_FD}: opens one of the group's devices for user-level access.
     *
     * @param caller who asks
     * @param name the device's name, for example {@code 0000:06:0d.0}
     * @return the open device
     * @throws IommuException {@link Errno#EINVAL} until the group is viable and in a container with an iommu
     *     type set; {@link Errno#ENODEV} for a device that is not in this group or not bound to VFIO;
     *     {@link Errno#EPERM} without the group's capability
     */
    public VfioDeviceFile getDevice(UserProcess caller, String name) {
        vfio.lock().lock();
        try {
            requireUsable();
            VfioAccess.checkGroup(caller, group, VfioAccess.Step.GET_DEVICE);
            VfioContainer c = group.container();
            if (c == null || !c.hasIommu() || !group.viable()) {
                throw new IommuException(Errno.EINVAL, node() + " is not ready for device access: it must be"
                        + " viable and in a container whose iommu type is set");
            }
            BusDevice device = group.devices().stream().filter(d -> d.name().equals(name)).findFirst()
                    .orElseThrow(() -> new IommuException(Errno.ENODEV, "no device " + name + " bound to VFIO in "
                            + node() + "; its devices: " + group.devices()));
            VfioDeviceFile f = new VfioDeviceFile(vfio, this, device);
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
    }

    void deviceClosed(VfioDeviceFile file) {
        devices.remove(file);
    }

    void closeDevices() {
        revokeDevices("lost its group");
    }

    void revokeDevices(String why) {
        for (VfioDeviceFile f : new ArrayList<>(devices)) {
            f.revoke(why);
        }
        devices.clear();
    }

    private void requireUsable() {
        if (closed) {
            throw new IommuException(Errno.EBADF, node() + " is closed");
        }
        if (group.isDead()) {
            throw new IommuException(Errno.ENODEV, node() + " is gone: its devices were removed or unbound");
        }
    }

    /** @return what the opener runs at exit: {@link #close}, kept so that closing first can take it back */
    Runnable exitHook() {
        return exitHook;
    }

    /** Closes the file: its devices close, and the group leaves its container. Closing twice does nothing. */
    @Override
    public void close() {
        vfio.lock().lock();
        try {
            if (closed) {
                return;
            }
            opener.removeExitHook(exitHook);
            for (VfioDeviceFile f : new ArrayList<>(devices)) {
                f.close();
            }
            VfioContainer c = group.container();
            if (c != null) {
                c.detach(group);
            }
            closed = true;
            group.setOpenFile(null);
            group.providerOwner().put();
        } finally {
            vfio.lock().unlock();
        }
    }
}
