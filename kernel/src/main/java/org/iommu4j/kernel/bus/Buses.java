package org.iommu4j.kernel.bus;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentSkipListMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.ReentrantLock;
import org.iommu4j.api.BusListener;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.DeviceDriver;
import org.iommu4j.api.DeviceRegistry;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PciAddress;
import org.iommu4j.kernel.module.ModuleRef;

/**
 * The host's PCI and platform buses: devices by name, the driver model (register, bind, unbind) and bus
 * notifiers. Changes take the host's configuration lock; lookups do not.
 *
 * <p>Notifier order follows the kernel: on add, the kernel's core listeners (the iommu core's probe) run
 * before everyone else's; on remove, the device is marked gone, everyone else's listeners run, the driver is
 * unbound, and the core listeners run last.
 */
public final class Buses {
    /** The 32-bit MMIO window firmware assigns BARs from, as a PC's below 4 GiB. */
    private static final long MMIO_START = 0xe000_0000L;
    private static final long MMIO_END = 0xfec0_0000L;
    private final ReentrantLock lock;
    private long nextMmio = MMIO_START;
    private final DmaPort port;
    private final Map<BusType, ConcurrentSkipListMap<String, BusDevice>> devices = Map.of(
            BusType.PCI, new ConcurrentSkipListMap<>(), BusType.PLATFORM, new ConcurrentSkipListMap<>());
    private final List<Owned<DeviceDriver>> drivers = new CopyOnWriteArrayList<>();
    private final List<Owned<BusListener>> listeners = new CopyOnWriteArrayList<>();
    private final List<BusListener> coreListeners = new CopyOnWriteArrayList<>();

    private record Owned<T>(T value, ModuleRef owner) {
    }

    /**
     * @param lock the host's configuration lock
     * @param port where devices' DMA goes
     */
    public Buses(ReentrantLock lock, DmaPort port) {
        this.lock = lock;
        this.port = port;
    }

    /**
     * Adds a kernel core listener (the iommu core), told before other listeners on add and after them on
     * remove.
     *
     * @param listener the listener
     */
    public void addCoreListener(BusListener listener) {
        coreListeners.add(listener);
    }

    /**
     * Adds a PCI device (at boot, or hot-add).
     *
     * @param spec the device
     * @return the device
     * @throws IommuException {@link Errno#EEXIST} if the address is taken
     */
    public PciDevice addPci(PciDeviceSpec spec) {
        PciDevice device = new PciDevice(spec, port);
        lock.lock();
        try {
            long before = nextMmio;
            long size = spec.bar0Size();
            if (size != 0) {
                long at = (nextMmio + size - 1) & -size;
                if (at + size <= MMIO_END) {
                    device.config().assignBar0(at);
                    nextMmio = at + size;
                }
            }
            try {
                return add(device, spec.driver());
            } catch (RuntimeException e) {
                nextMmio = before;
                throw e;
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Adds a platform device.
     *
     * @param spec the device
     * @return the device
     * @throws IommuException {@link Errno#EEXIST} if the name is taken
     */
    public PlatformDevice addPlatform(PlatformDeviceSpec spec) {
        return add(new PlatformDevice(spec, port), spec.driver());
    }

    private <D extends BusDevice> D add(D device, String stockDriver) {
        lock.lock();
        try {
            var map = devices.get(device.bus());
            if (map.containsKey(device.name())) {
                throw new IommuException(Errno.EEXIST, "a device named " + device.name() + " is already on the "
                        + device.bus().sysfsName() + " bus");
            }
            map.put(device.name(), device);
            for (BusListener l : coreListeners) {
                l.deviceAdded(device);
            }
            for (Owned<BusListener> l : listeners) {
                l.value().deviceAdded(device);
            }
            if (stockDriver != null) {
                if (findDriver(device.bus(), stockDriver).isEmpty()) {
                    registerDriver(new StockDriver(stockDriver, device.bus()), ModuleRef.KERNEL);
                }
                bind(device, stockDriver);
            }
            return device;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Removes a device (hot-remove): it stops being present at once, its driver is unbound and it leaves its
     * iommu group.
     *
     * @param name the device's name
     * @throws IommuException {@link Errno#ENODEV} if no such device is present
     */
    public void remove(String name) {
        lock.lock();
        try {
            BusDevice device = require(name);
            device.markRemoved();
            for (Owned<BusListener> l : listeners) {
                l.value().deviceRemoved(device);
            }
            unbind(device);
            for (BusListener l : coreListeners) {
                l.deviceRemoved(device);
            }
            devices.get(device.bus()).remove(name);
        } finally {
            lock.unlock();
        }
    }

    /**
     * @param name a device name
     * @return the present device
     * @throws IommuException {@link Errno#ENODEV} naming the device and the devices present
     */
    public BusDevice require(String name) {
        return find(name).orElseThrow(() -> new IommuException(Errno.ENODEV,
                "no device " + name + " on this host; present: " + names()));
    }

    /**
     * @param address a PCI address, {@code DDDD:BB:DD.F}
     * @return the present PCI device
     * @throws IommuException {@link Errno#ENODEV} if none is there
     * @throws IllegalArgumentException for a malformed address
     */
    public PciDevice pci(String address) {
        BusDevice device = devices.get(BusType.PCI).get(PciAddress.parse(address).toString());
        if (device == null) {
            throw new IommuException(Errno.ENODEV, "no PCI device at " + address + "; present: " + names());
        }
        return (PciDevice) device;
    }

    /**
     * @param name a device name
     * @return the device, if present
     */
    public Optional<BusDevice> find(String name) {
        for (var map : devices.values()) {
            BusDevice d = map.get(name);
            if (d != null) {
                return Optional.of(d);
            }
        }
        return Optional.empty();
    }

    /**
     * @param bus a bus
     * @return its devices in name order
     */
    public List<BusDevice> devices(BusType bus) {
        return List.copyOf(devices.get(bus).values());
    }

    /** @return every present device, PCI first */
    public List<BusDevice> all() {
        List<BusDevice> out = new ArrayList<>(devices(BusType.PCI));
        out.addAll(devices(BusType.PLATFORM));
        return out;
    }

    private List<String> names() {
        return all().stream().map(BusDevice::name).toList();
    }

    /**
     * @param driver a driver
     * @param owner who registered it
     * @throws IommuException {@link Errno#EEXIST} if the bus has a driver of that name
     */
    public void registerDriver(DeviceDriver driver, ModuleRef owner) {
        lock.lock();
        try {
            if (findDriver(driver.bus(), driver.name()).isPresent()) {
                throw new IommuException(Errno.EEXIST, "a driver named " + driver.name()
                        + " is already registered on the " + driver.bus().sysfsName() + " bus");
            }
            drivers.add(new Owned<>(driver, owner));
        } finally {
            lock.unlock();
        }
    }

    /**
     * Unbinds the driver from its devices and unregisters it; nothing happens for an unknown driver.
     *
     * @param driver a registered driver
     */
    public void unregisterDriver(DeviceDriver driver) {
        lock.lock();
        try {
            for (BusDevice d : devices(driver.bus())) {
                if (driver.name().equals(d.driver())) {
                    unbind(d);
                }
            }
            drivers.removeIf(o -> o.value() == driver);
        } finally {
            lock.unlock();
        }
    }

    /**
     * @param bus a bus
     * @param name a driver name
     * @return the registered driver
     */
    public Optional<DeviceDriver> findDriver(BusType bus, String name) {
        for (Owned<DeviceDriver> o : drivers) { // a loop, not a stream: a host's boot looks drivers up
            DeviceDriver d = o.value();
            if (d.bus() == bus && d.name().equals(name)) {
                return Optional.of(d);
            }
        }
        return Optional.empty();
    }

    /**
     * Binds a driver to a device; see {@link DeviceRegistry#bindDriver}.
     *
     * @param device the device
     * @param driverName the driver
     */
    public void bind(BusDevice device, String driverName) {
        lock.lock();
        try {
            if (!device.isPresent()) {
                throw new IommuException(Errno.ENODEV, "device " + device.name() + " has been removed");
            }
            DeviceDriver driver = findDriver(device.bus(), driverName).orElseThrow(() -> new IommuException(
                    Errno.ENODEV, "no driver named " + driverName + " on the " + device.bus().sysfsName()
                    + " bus; registered: " + drivers.stream().filter(o -> o.value().bus() == device.bus())
                    .map(o -> o.value().name()).toList()));
            if (device.driver() != null) {
                throw new IommuException(Errno.EBUSY, "device " + device.name() + " is already bound to "
                        + device.driver() + ": unbind it first");
            }
            // as iommu_device_use_default_domain: a kernel driver cannot take a device user space does DMA for
            Object owner = device.group() == null ? null : device.group().dmaOwner();
            if (owner != null && !driver.driverManagedDma()) {
                throw new IommuException(Errno.EBUSY, "cannot bind " + driverName + " to " + device.name()
                        + ": its iommu group " + device.group().id() + " is owned by " + owner
                        + " for user-space DMA; release the group first");
            }
            // as the kernel's really_probe: the device names its driver while probe runs, so probe's log
            // lines carry the driver's prefix; a refusal takes it back
            device.setDriver(driverName);
            try {
                driver.probe(device);
            } catch (RuntimeException e) {
                device.setDriver(null);
                throw e;
            }
            for (Owned<BusListener> l : listeners) {
                l.value().driverBound(device, driverName);
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Unbinds whatever driver a device has; nothing happens when it has none.
     *
     * @param device the device
     */
    public void unbind(BusDevice device) {
        lock.lock();
        try {
            String name = device.driver();
            if (name == null) {
                return;
            }
            findDriver(device.bus(), name).ifPresent(d -> d.remove(device));
            device.setDriver(null);
            for (Owned<BusListener> l : listeners) {
                l.value().driverUnbound(device, name);
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * @param listener a bus listener
     * @param owner who added it
     */
    public void addListener(BusListener listener, ModuleRef owner) {
        listeners.add(new Owned<>(listener, owner));
    }

    /** @param listener a listener to drop */
    public void removeListener(BusListener listener) {
        listeners.removeIf(o -> o.value() == listener);
    }

    /**
     * Drops every driver and listener an owner registered, as unloading a module must.
     *
     * @param owner the owner
     * @return how many registrations were dropped
     */
    public int removeAllOwnedBy(ModuleRef owner) {
        lock.lock();
        try {
            int n = 0;
            for (Owned<DeviceDriver> d : drivers) {
                if (d.owner() == owner) {
                    unregisterDriver(d.value());
                    n++;
                }
            }
            int before = listeners.size();
            listeners.removeIf(o -> o.owner() == owner);
            return n + before - listeners.size();
        } finally {
            lock.unlock();
        }
    }

    /**
     * The api view of the buses for one module.
     *
     * @param owner the module
     * @return a {@link DeviceRegistry} whose registrations belong to {@code owner}
     */
    public DeviceRegistry view(ModuleRef owner) {
        return new DeviceRegistry() {
            @Override
            public List<Device> devices(BusType bus) {
                return List.copyOf(Buses.this.devices(bus));
            }

            @Override
            public Optional<Device> find(String name) {
                return Buses.this.find(name).map(Device.class::cast);
            }

            @Override
            public Optional<Device> find(PciAddress address) {
                return find(address.toString());
            }

            @Override
            public Optional<String> driverOf(Device device) {
                return Optional.ofNullable(((BusDevice) device).driver());
            }

            @Override
            public void bindDriver(Device device, String driver) {
                bind((BusDevice) device, driver);
            }

            @Override
            public void unbindDriver(Device device) {
                unbind((BusDevice) device);
            }

            @Override
            public void registerDriver(DeviceDriver driver) {
                Buses.this.registerDriver(driver, owner);
            }

            @Override
            public void unregisterDriver(DeviceDriver driver) {
                Buses.this.unregisterDriver(driver);
            }

            @Override
            public void addListener(BusListener listener) {
                Buses.this.addListener(listener, owner);
            }

            @Override
            public void removeListener(BusListener listener) {
                Buses.this.removeListener(listener);
            }
        };
    }
}
