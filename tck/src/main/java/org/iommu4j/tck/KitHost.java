package org.iommu4j.tck;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.Capability;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.module.LoadFacts;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;

/**
 * One simulated machine with the backend under test loaded (or about to be), and what the kit does to it: load
 * and unload the backend with its dependencies, give the kit's device to VFIO, open a user-space session on it.
 */
public final class KitHost {
    /** The iova a type1 container maps the session buffer at. */
    public static final long TYPE1_IOVA = 0x100000;

    private final Host host;
    private final List<BackendProvider> dependencies;
    private final BackendProvider provider;
    private final Map<String, String> parameters;
    private final List<LoadedModule> loaded = new ArrayList<>();

    KitHost(Host host, List<BackendProvider> dependencies, BackendProvider provider, Map<String, String> parameters) {
        this.host = host;
        this.dependencies = List.copyOf(dependencies);
        this.provider = provider;
        this.parameters = Map.copyOf(parameters);
    }

    /** @return the machine */
    public Host host() {
        return host;
    }

    /** @return the device the kit assigns and DMAs with */
    public BusDevice device() {
        return host.buses().require(BackendCompatibilityKit.DEVICE);
    }

    /**
     * Loads the dependencies (with their command-line parameters only) and then the backend with the claimed
     * parameters.
     *
     * @return the backend's module
     */
    public LoadedModule load() {
        return load(parameters);
    }

    /**
     * @param params the backend's parameters for this load
     * @return the backend's module
     */
    public LoadedModule load(Map<String, String> params) {
        int before = loaded.size();
        try {
            for (BackendProvider d : dependencies) {
                String name = d.info().name();
                if (host.modules().find(name).isEmpty()) {
                    loaded.add(host.modules().insert(d, Map.of(), new LoadFacts("tck dependency", true)));
                }
            }
            LoadedModule m = host.modules().insert(provider, params, new LoadFacts("tck", true));
            loaded.add(m);
            return m;
        } catch (RuntimeException e) {
            // what this load brought in goes again, so that a failed load leaves the host as it was
            while (loaded.size() > before) {
                host.modules().remove(loaded.remove(loaded.size() - 1).name());
            }
            throw e;
        }
    }

    /** @return the backend's module, loaded */
    public LoadedModule module() {
        return host.modules().require(provider.info().name());
    }

    /** Unloads the backend and then its dependencies, newest first. */
    public void unloadAll() {
        for (int i = loaded.size() - 1; i >= 0; i--) {
            LoadedModule m = loaded.get(i);
            if (host.modules().find(m.name()).filter(x -> x == m).isPresent()) {
                host.modules().remove(m.name());
            }
        }
        loaded.clear();
    }

    /**
     * A user-space driver's session on the kit's device: bound to VFIO, container and group open and joined, an
     * iommu type set.
     *
     * @param process the process that opened it
     * @param container the container
     * @param group the open group
     * @param type the iommu type set
     */
    public record Session(UserProcess process, VfioContainer container, VfioGroupFile group, int type)
            implements AutoCloseable {

        /**
         * Maps a fresh buffer of the process for the device.
         *
         * @param bytes the buffer's size, whole pages
         * @return the mapping and the buffer's virtual address
         */
        public Mapped map(long bytes) {
            boolean contiguous = type == Vfio.NOIOMMU_IOMMU;
            long va = contiguous ? process.mmapContiguous(bytes) : process.mmap(bytes);
            long iova = type == Vfio.TYPE1_IOMMU || type == Vfio.TYPE1v2_IOMMU ? TYPE1_IOVA : Vfio.ANY_IOVA;
            if (type == Vfio.NOIOMMU_IOMMU) {
                iova = process.virtToPhys(va);
            }
            try {
                return new Mapped(va, container.mapDma(process, va, bytes, iova, IommuProt.READ | IommuProt.WRITE));
            } catch (RuntimeException e) {
                process.munmap(va);
                throw e;
            }
        }

        @Override
        public void close() {
            container.close(process);
            group.close(process);
        }
    }

    /**
     * A process buffer mapped for the device.
     *
     * @param va its virtual address in the process
     * @param mapping the VFIO mapping
     */
    public record Mapped(long va, VfioDmaMapping mapping) {
    }

    /** Binds the kit's device to VFIO. */
    public void bind() {
        host.vfio().bind(BackendCompatibilityKit.DEVICE);
    }

    /** @return the kit's device's group, after it was bound or probed */
    public Group group() {
        return device().group();
    }

    /**
     * Opens a session on the kit's device, which must be bound.
     *
     * @param capabilities the process's capabilities
     * @param type the iommu type to set
     * @return the session
     */
    public Session open(Set<Capability> capabilities, int type) {
        UserProcess p = host.spawn("tck-driver", 0, capabilities);
        return open(p, type);
    }

    /**
     * @param process the process opening it
     * @param type the iommu type to set
     * @return the session
     */
    public Session open(UserProcess process, int type) {
        VfioContainer container = host.vfio().openContainer(process);
        VfioGroupFile group;
        try {
            group = host.vfio().openGroup(process, group().id());
        } catch (RuntimeException e) {
            container.close(process);
            throw e;
        }
        try {
            group.setContainer(process, container);
            container.setIommu(process, type);
        } catch (RuntimeException e) {
            container.close(process);
            group.close(process);
            throw e;
        }
        return new Session(process, container, group, type);
    }

    /** @return the capabilities a user needs for the kit's device's group: CAP_SYS_RAWIO unless it is isolated */
    public Set<Capability> capabilitiesFor() {
        return group().isolated() ? Set.of(Capability.CAP_IPC_LOCK)
                : Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK);
    }
}
