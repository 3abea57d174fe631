package org.iommu4j.kernel.module;

import java.util.Optional;

import org.iommu4j.api.Device;
import org.iommu4j.api.DeviceRegistry;
import org.iommu4j.api.DmaOpsRegistry;
import org.iommu4j.api.IommuCore;
import org.iommu4j.api.KernelCommandLine;
import org.iommu4j.api.KernelLog;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.ModuleParameters;
import org.iommu4j.api.PageAllocator;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.SymbolTable;
import org.iommu4j.api.Taint;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.api.VfioDriverRegistry;
import org.iommu4j.api.XenHypercalls;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;

/**
 * The {@link KernelServices} a host hands one module: every registration made through it belongs to that
 * module, every taint is recorded against it, and every log line carries its name.
 */
public final class ModuleServices implements KernelServices {
    private final Host host;
    private final LoadedModule module;
    private final DeviceRegistry devices;
    private final IommuCore iommu;
    private final DmaOpsRegistry dma;
    private final VfioDriverRegistry vfio;
    private final SymbolTable symbols;

    private final ModuleParameters parameters;

    /**
     * @param host the host
     * @param module the module
     */
    public ModuleServices(Host host, LoadedModule module) {
        this(host, module, null);
    }

    /**
     * @param host the host
     * @param module the module
     * @param guard sets the module's context class loader around calls into it, or null for an in-tree module
     */
    ModuleServices(Host host, LoadedModule module, ContextLoaderGuard guard) {
        this.host = host;
        this.module = module;
        DeviceRegistry d = host.buses().view(module);
        IommuCore i = host.iommu().view(module);
        DmaOpsRegistry m = host.dma().view(module);
        VfioDriverRegistry v = host.vfioDrivers().view(module);
        SymbolTable s = host.symbols().view(module);
        if (guard == null) {
            this.devices = d;
            this.iommu = i;
            this.dma = m;
            this.vfio = v;
            this.symbols = s;
            this.parameters = module.parameters();
        } else {
            this.devices = GuardedServices.devices(d, guard);
            this.iommu = GuardedServices.iommu(i, guard);
            this.dma = GuardedServices.dma(m, guard);
            this.vfio = GuardedServices.vfio(v, guard);
            this.symbols = GuardedServices.symbols(s, guard);
            this.parameters = GuardedServices.parameters(module.parameters(), guard);
        }
    }

    @Override
    public String moduleName() {
        return module.name();
    }

    @Override
    public ModuleParameters parameters() {
        return parameters;
    }

    @Override
    public KernelCommandLine commandLine() {
        return host.commandLine();
    }

    @Override
    public PhysicalMemory memory() {
        return host.memory();
    }

    @Override
    public PageAllocator pageAllocator() {
        return host.pageAllocator();
    }

    @Override
    public DeviceRegistry devices() {
        return devices;
    }

    @Override
    public IommuCore iommu() {
        return iommu;
    }

    @Override
    public DmaOpsRegistry dma() {
        return dma;
    }

    @Override
    public VfioDriverRegistry vfio() {
        return vfio;
    }

    @Override
    public Taint taint() {
        return new Taint() {
            @Override
            public void add(TaintFlag flag, String event) {
                module.recordTaint(flag);
                host.taint().add(flag, module.name(), event);
            }

            @Override
            public boolean isSet(TaintFlag flag) {
                return host.taint().isSet(flag);
            }

            @Override
            public long mask() {
                return host.taint().mask();
            }
        };
    }

    @Override
    public KernelLog log() {
        return prefixedLog(module.name());
    }

    private KernelLog prefixedLog(String name) {
        return new KernelLog() {
            @Override
            public void log(LogLevel level, String message) {
                String prefix = name + ":";
                host.log().log(level, message.startsWith(prefix) ? message : prefix + " " + message);
            }

            @Override
            public void log(LogLevel level, Device device, String message) {
                host.log().log(level, ((BusDevice) device).logPrefix() + ": " + message);
            }

            @Override
            public KernelLog withPrefix(String prefix) {
                return prefixedLog(prefix);
            }

            @Override
            public void warn(String site, String message) {
                host.warnings().warn(module.name(), site, message);
            }

            @Override
            public boolean warnOnce(String site, String message) {
                return host.warnings().warnOnce(module.name(), site, message);
            }
        };
    }

    @Override
    public long uptimeNanos() {
        return host.uptimeNanos();
    }

    @Override
    public SymbolTable symbols() {
        return symbols;
    }

    @Override
    public int cpuCount() {
        return host.cpuCount();
    }

    @Override
    public int currentCpu() {
        return host.currentCpu();
    }

    @Override
    public Optional<XenHypercalls> xen() {
        return host.xen();
    }
}
