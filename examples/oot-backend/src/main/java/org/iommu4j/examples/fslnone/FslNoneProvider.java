package org.iommu4j.examples.fslnone;

import org.iommu4j.api.Backend;
import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.DomainType;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuCore;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuGroup;
import org.iommu4j.api.IommuOps;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.ModuleInfo;

/**
 * {@code fsl-none}, an out-of-tree backend: the "dummy iommu driver that implements only the add/remove device
 * ops" the seed thread first proposed for embedded boards without an IOMMU. Every device on PCI and the
 * platform bus gets a group of its own, so that group-based code works; nothing translates and nothing is
 * isolated. A third party writes a backend like this against the api alone.
 */
public final class FslNoneProvider implements BackendProvider {
    private static final ModuleInfo INFO = ModuleInfo.builder("fsl-none")
            .version("0.1.0")
            .description("dummy IOMMU driver: groups for every device, no translation, no isolation")
            .author("an out-of-tree vendor")
            .license("GPL v2")
            .inTree(false)
            .build();

    @Override
    public ModuleInfo info() {
        return INFO;
    }

    @Override
    public Backend start(KernelServices kernel) {
        IommuOps ops = new IommuOps() {
            @Override
            public boolean probeDevice(Device device) {
                return true;
            }

            @Override
            public IommuGroup deviceGroup(Device device, IommuCore groups) {
                return groups.allocateGroup("fsl-none", false);
            }

            @Override
            public DomainType defaultDomainType(Device device) {
                return DomainType.IDENTITY;
            }

            @Override
            public IommuDomain allocateDomain(DomainType type) {
                throw new IommuException(Errno.EOPNOTSUPP, "fsl-none has no IOMMU hardware: no " + type.sysfsName()
                        + " domains");
            }
        };
        kernel.iommu().registerOps(BusType.PLATFORM, ops);
        kernel.iommu().registerOps(BusType.PCI, ops);
        return new Backend() {
            @Override
            public void stop() {
                kernel.iommu().unregisterOps(BusType.PCI, ops);
                kernel.iommu().unregisterOps(BusType.PLATFORM, ops);
            }
        };
    }
}
