package org.iommu4j.tck;

import java.util.List;
import java.util.Set;
import java.util.function.Supplier;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.proc.UserProcess;

/**
 * The claims a backend makes by what it tells the kernel, for checking a backend whose author declared none
 * ({@code iommuctl check}): loaded on a probe host, a backend that gives the kit's device an isolated group claims
 * isolation, one whose ops allocate {@code UNMANAGED} domains claims translation, the VFIO types a container
 * offers are claimed, and so on. The kit then checks that each holds. A parameter {@code enable_unsafe_*} is taken
 * as the opt-in to VFIO without isolation, and a {@code hide} parameter is given the kit's device.
 */
public final class ObservedClaims {
    private ObservedClaims() {
    }

    /**
     * @param provider the backend
     * @param dependencies providers of what it depends on, in load order
     * @param host makes the host to probe on
     * @return what it claims by its behaviour
     */
    public static BackendClaims of(BackendProvider provider, List<BackendProvider> dependencies,
            Supplier<Host> host) {
        ModuleInfo info = provider.info();
        BackendClaims.Builder b = BackendClaims.builder().dmaApi();
        for (ParameterSpec p : info.parameters()) {
            if (p.name().startsWith("enable_unsafe_")) {
                b.unsafeOptIn(p.name());
            } else if (p.name().equals("hide")) {
                b.parameter("hide", "(" + BackendCompatibilityKit.DEVICE + ")");
            }
        }
        BackendClaims partial = b.build();
        KitHost h = new KitHost(host.get(), dependencies, provider, partial.parameters());
        h.load();
        IommuOps ops = h.host().iommu().ops(BusType.PCI).filter(o -> h.host().iommu().opsOwner(BusType.PCI)
                .map(r -> r.name().equals(h.module().name())).orElse(false)).orElse(null);
        if (ops != null) {
            b.pageSizes(ops.pageSizeBitmap());
            try {
                IommuDomain d = ops.allocateDomain(DomainType.UNMANAGED);
                d.free();
                b.translation();
            } catch (IommuException e) {
                // no domains for VFIO: no translation claimed
            }
        }
        Group g = h.device().group();
        if (g != null && g.domain().map(d -> d.type() == DomainType.IDENTITY).orElse(true)) {
            b.identityDomains();
        }
        try {
            h.host().dma().freeCoherent(h.device(), h.host().dma().allocateCoherent(h.device(),
                    PhysicalMemory.PAGE_SIZE));
            b.coherentAllocation();
        } catch (IommuException e) {
            // no coherent allocation
        }
        long high = 6L << 30;
        if (h.host().memory().size() > high + PhysicalMemory.PAGE_SIZE) {
            var narrow = h.host().buses().require(BackendCompatibilityKit.NARROW_DEVICE);
            try {
                long dma = h.host().dma().map(narrow, high, PhysicalMemory.PAGE_SIZE, DmaDirection.TO_DEVICE);
                h.host().dma().unmap(narrow, dma, PhysicalMemory.PAGE_SIZE, DmaDirection.TO_DEVICE);
                if (dma != high) {
                    b.bounceBuffering();
                }
            } catch (IommuException e) {
                // refused: no bounce buffering
            }
        }
        try {
            h.bind();
            if (h.group().isolated()) {
                b.isolation();
            }
            UserProcess p = h.host().spawn("tck-probe", 0, Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
            var container = h.host().vfio().openContainer(p);
            var group = h.host().vfio().openGroup(p, h.group().id());
            group.setContainer(p, container);
            for (int t : BackendClaims.KNOWN_VFIO_TYPES) {
                if (container.checkExtension(p, t) > 0) {
                    b.vfioTypes(t);
                }
            }
            container.close(p);
            group.close(p);
        } catch (IommuException e) {
            // not bindable: no VFIO type, no isolation claimed
        }
        h.unloadAll();
        return b.build();
    }
}
