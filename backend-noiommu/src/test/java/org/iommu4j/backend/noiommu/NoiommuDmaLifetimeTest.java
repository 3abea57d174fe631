package org.iommu4j.backend.noiommu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Map;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.kernel.module.ModuleState;
import org.junit.jupiter.api.Test;

/** Issue 11 #3 through noiommu: an unbalanced unmap cannot make its live-mapping count drop under a mapping. */
class NoiommuDmaLifetimeTest {
    private static final String NIC = "0000:06:0d.0";
    private final Host host = Host.builder().pciDevice(PciDeviceSpec.of(NIC)).build();
    private final PciDevice nic = host.pci(NIC);

    @Test
    void aBogusUnmapNeitherCancelsALiveMappingNorLeavesANegativeCount() {
        LoadedModule noiommu = host.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, "1"),
                "class path");
        host.dma().unmap(nic, 0xdead000L, 64, DmaDirection.FROM_DEVICE);
        assertThat(host.dma().liveMappings(noiommu)).isZero();
        long a = host.dma().map(nic, 0x10_0000, 512, DmaDirection.FROM_DEVICE);
        host.dma().unmap(nic, 0xbad000L, 64, DmaDirection.FROM_DEVICE);
        assertThat(host.dma().liveMappings(noiommu)).isEqualTo(1);
        assertThatThrownBy(() -> host.modules().remove("noiommu")).hasMessage("Module noiommu is in use")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EAGAIN);
        assertThat(noiommu.state()).isEqualTo(ModuleState.LIVE);

        host.dma().unmap(nic, a, 512, DmaDirection.FROM_DEVICE);
        host.modules().remove("noiommu");
        assertThat(noiommu.state()).isEqualTo(ModuleState.UNLOADED);
        assertThat(host.modules().modules()).isEmpty();
    }
}
