package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.testing.PageTableIommu;
import org.junit.jupiter.api.Test;

/** The type1 driver's per-process and per-container limits: RLIMIT_MEMLOCK and dma_entry_limit. */
class VfioLimitsTest {
    private static final int RW = IommuProt.READ | IommuProt.WRITE;

    private static VfioContainer open(Host host, UserProcess p) {
        host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
        PciDevice nic = host.pci("0000:06:0d.0");
        host.vfio().bind(nic.name());
        VfioContainer container = host.vfio().openContainer(p);
        host.vfio().openGroup(p, nic.group().id()).setContainer(p, container);
        container.setIommu(p, Vfio.TYPE1v2_IOMMU);
        return container;
    }

    private static Host host(String cmdline) {
        return Host.builder().commandLine(cmdline).pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
    }

    @Test
    void pinningPastRlimitMemlockWithoutCapIpcLockFailsAsType1DoesAndPinsNothing() {
        Host host = host("");
        UserProcess app = host.spawn("app", 1000, Set.of());
        assertThat(app.memlockLimit()).isEqualTo(8L << 20);
        app.setMemlockLimit(64 << 10);
        VfioContainer container = open(host, app);
        long a = app.mmap(48 << 10);
        long b = app.mmap(32 << 10);
        container.mapDma(app, a, 48 << 10, 0x100000, RW);

        assertThatThrownBy(() -> container.mapDma(app, b, 32 << 10, 0x200000, RW))
                .isInstanceOf(IommuException.class)
                .hasMessage("VFIO_IOMMU_MAP_DMA: vfio_pin_pages_remote: RLIMIT_MEMLOCK (65536) exceeded: app:1000"
                        + " has 12 pages locked and asks 8 more; raise its RLIMIT_MEMLOCK or give it CAP_IPC_LOCK")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(host.log().messages()).contains("vfio_pin_pages_remote: RLIMIT_MEMLOCK (65536) exceeded");
        assertThat(app.lockedPages()).isEqualTo(12);
        assertThat(app.pinCount(b)).isZero();
        assertThat(container.mappings()).hasSize(1);

        container.mapDma(app, b, 16 << 10, 0x200000, RW);
        assertThat(app.lockedPages()).isEqualTo(16);
        container.unmapDma(app, 0x100000, 48 << 10);
        container.mapDma(app, b + (16 << 10), 16 << 10, 0x300000, RW);
        assertThat(app.lockedPages()).isEqualTo(8);
    }

    @Test
    void capIpcLockOrAnInfiniteLimitLiftsIt() {
        Host host = host("");
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        qemu.setMemlockLimit(0);
        VfioContainer container = open(host, qemu);
        container.mapDma(qemu, qemu.mmap(1 << 20), 1 << 20, 0x100000, RW);
        assertThat(qemu.lockedPages()).isEqualTo(256);

        Host other = host("");
        UserProcess app = other.spawn("app", 1000, Set.of(), UserProcess.RLIM_INFINITY);
        VfioContainer c2 = open(other, app);
        c2.mapDma(app, app.mmap(16 << 20), 16 << 20, 0x1000000, RW);
        assertThat(app.lockedPages()).isEqualTo(4096);
        assertThatThrownBy(() -> app.setMemlockLimit(-2))
                .hasMessage("RLIMIT_MEMLOCK -2 is invalid: expected 0 or more bytes, or RLIM_INFINITY (-1)");
    }

    @Test
    void aContainerHoldsAtMostDmaEntryLimitMappings() {
        Host host = host("vfio_iommu_type1.dma_entry_limit=2");
        assertThat(host.vfio().dmaEntryLimit()).isEqualTo(2);
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        VfioContainer container = open(host, qemu);
        long va = qemu.mmap(3 * 4096);
        container.mapDma(qemu, va, 4096, 0x10000, RW);
        container.mapDma(qemu, va + 4096, 4096, 0x20000, RW);
        assertThatThrownBy(() -> container.mapDma(qemu, va + 8192, 4096, 0x30000, RW))
                .isInstanceOf(IommuException.class)
                .hasMessage("VFIO_IOMMU_MAP_DMA: the container holds 2 mappings, the most"
                        + " vfio_iommu_type1.dma_entry_limit allows; unmap some or raise the limit")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOSPC);
        assertThat(qemu.pinCount(va + 8192)).isZero();
        container.unmapDma(qemu, 0x10000, 4096);
        container.mapDma(qemu, va + 8192, 4096, 0x30000, RW);

        assertThat(host("").vfio().dmaEntryLimit()).isEqualTo(65535);
        Host bad = host("vfio_iommu_type1.dma_entry_limit=lots");
        assertThat(bad.vfio().dmaEntryLimit()).isEqualTo(65535);
        assertThat(bad.log().messages()).contains("vfio_iommu_type1: invalid value 'lots' for"
                + " vfio_iommu_type1.dma_entry_limit: expected 0 to 2147483647; using 65535");
    }

    @Test
    void aDmaEntryLimitThatIsNotADecimalIntKeepsTheDefaultAndSaysSo() {
        for (String bad : new String[] {"12a", "-1", "0x10", "2147483648", "99999999999"}) {
            Host host = Host.builder().commandLine("vfio_iommu_type1.dma_entry_limit=" + bad).build();
            assertThat(host.log().messages()).as(bad).contains("vfio_iommu_type1: invalid value '" + bad + "' for"
                    + " vfio_iommu_type1.dma_entry_limit: expected 0 to 2147483647; using 65535");
        }
        Host good = Host.builder().commandLine("vfio_iommu_type1.dma_entry_limit=2147483647").build();
        assertThat(good.log().messages()).noneMatch(m -> m.contains("invalid value"));
    }
}
