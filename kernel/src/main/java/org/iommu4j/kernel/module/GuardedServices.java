package org.iommu4j.kernel.module;

import java.util.List;
import java.util.Optional;
import org.iommu4j.api.BusListener;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.DeviceDriver;
import org.iommu4j.api.DeviceRegistry;
import org.iommu4j.api.DmaOps;
import org.iommu4j.api.DmaOpsRegistry;
import org.iommu4j.api.IommuCore;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.ModuleParameters;
import org.iommu4j.api.ParameterListener;
import org.iommu4j.api.PciAddress;
import org.iommu4j.api.SymbolTable;
import org.iommu4j.api.VfioDriverRegistry;
import org.iommu4j.api.VfioIommuDriver;

/**
 * The kernel services of an out-of-tree module: the same as an in-tree module's, except that whatever the
 * module hands the kernel to call back (ops, drivers, listeners, exported services) is wrapped by its
 * {@link ContextLoaderGuard}.
 */
final class GuardedServices {
    private GuardedServices() {
    }

    static DeviceRegistry devices(DeviceRegistry base, ContextLoaderGuard g) {
        return new DeviceRegistry() {
            @Override
            public List<Device> devices(BusType bus) {
                return base.devices(bus);
            }

            @Override
            public Optional<Device> find(String name) {
                return base.find(name);
            }

            @Override
            public Optional<Device> find(PciAddress address) {
                return base.find(address);
            }

            @Override
            public Optional<String> driverOf(Device device) {
                return base.driverOf(device);
            }

            @Override
            public void bindDriver(Device device, String driver) {
                base.bindDriver(device, driver);
            }

            @Override
            public void unbindDriver(Device device) {
                base.unbindDriver(device);
            }

            @Override
            public void registerDriver(DeviceDriver driver) {
                base.registerDriver(g.guard(DeviceDriver.class, driver));
            }

            @Override
            public void unregisterDriver(DeviceDriver driver) {
                base.unregisterDriver(g.guard(DeviceDriver.class, driver));
            }

            @Override
            public void addListener(BusListener listener) {
                base.addListener(g.guard(BusListener.class, listener));
            }

            @Override
            public void removeListener(BusListener listener) {
                base.removeListener(g.guard(BusListener.class, listener));
            }
        };
    }

    static IommuCore iommu(IommuCore base, ContextLoaderGuard g) {
        return new IommuCore() {
            @Override
            public void registerOps(BusType bus, IommuOps ops) {
                base.registerOps(bus, g.guard(IommuOps.class, ops));
            }

            @Override
            public void unregisterOps(BusType bus, IommuOps ops) {
                base.unregisterOps(bus, g.guard(IommuOps.class, ops));
            }

            @Override
            public void reprobe(Device device) {
                base.reprobe(device);
            }

            @Override
            public IommuGroup allocateGroup(String name, boolean isolated) {
                return base.allocateGroup(name, isolated);
            }

            @Override
            public Optional<IommuGroup> groupOf(Device device) {
                return base.groupOf(device);
            }
        };
    }

    static DmaOpsRegistry dma(DmaOpsRegistry base, ContextLoaderGuard g) {
        return new DmaOpsRegistry() {
            @Override
            public void setDeviceOps(Device device, DmaOps ops) {
                base.setDeviceOps(device, g.guard(DmaOps.class, ops));
            }

            @Override
            public void clearDeviceOps(Device device) {
                base.clearDeviceOps(device);
            }

            @Override
            public void setDefaultOps(DmaOps ops) {
                base.setDefaultOps(g.guard(DmaOps.class, ops));
            }

            @Override
            public void clearDefaultOps(DmaOps ops) {
                base.clearDefaultOps(g.guard(DmaOps.class, ops));
            }

            @Override
            public DmaOps directOps() {
                return base.directOps();
            }
        };
    }

    static VfioDriverRegistry vfio(VfioDriverRegistry base, ContextLoaderGuard g) {
        return new VfioDriverRegistry() {
            @Override
            public void register(VfioIommuDriver driver) {
                base.register(g.guard(VfioIommuDriver.class, driver));
            }

            @Override
            public void unregister(VfioIommuDriver driver) {
                base.unregister(g.guard(VfioIommuDriver.class, driver));
            }
        };
    }

    static SymbolTable symbols(SymbolTable base, ContextLoaderGuard g) {
        return new SymbolTable() {
            @Override
            public <T> void export(Class<T> type, T implementation) {
                base.export(type, g.guard(type, implementation));
            }

            @Override
            public <T> T lookup(Class<T> type) {
                return base.lookup(type);
            }

            @Override
            public void unexport(Class<?> type) {
                base.unexport(type);
            }
        };
    }

    static ModuleParameters parameters(ModuleParameters base, ContextLoaderGuard g) {
        return new ModuleParameters() {
            @Override
            public String get(String name) {
                return base.get(name);
            }

            @Override
            public void addListener(ParameterListener listener) {
                base.addListener(g.guard(ParameterListener.class, listener));
            }
        };
    }
}
