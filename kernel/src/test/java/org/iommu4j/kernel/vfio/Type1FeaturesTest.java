package org.iommu4j.kernel.vfio;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.charset.StandardCharsets;
import java.util.List;
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
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;

/**
 * The VFIO type 1 features users of Linux v6.12 rely on ({@code drivers/vfio/vfio_iommu_type1.c}): valid IOVA
 * ranges and reserved regions, {@code VFIO_IOMMU_GET_INFO}, the IOMMU's smallest page as the alignment unit,
 * interrupt remapping, and the live-update pair {@code VFIO_DMA_UNMAP_FLAG_VADDR} /
 * {@code VFIO_DMA_MAP_FLAG_VADDR}.
 */
class Type1FeaturesTest {
    private static final int RW = IommuProt.READ | IommuProt.WRITE;
    private static final String NIC = "0000:06:0d.0";
    private static final String GPU = "0000:07:00.0";
    private static final long RMRR = 0x7a000000L;

    private static Host host(String cmdline) {
        return Host.builder().commandLine(cmdline).pciDevice(PciDeviceSpec.of(NIC))
                .pciDevice(PciDeviceSpec.of(GPU).withRmrr(RMRR, 0x10000)).build();
    }

    /** A process with the NIC's group in a type 1 container. */
    private record Setup(Host host, UserProcess qemu, VfioContainer container, VfioGroupFile group,
            PciDevice nic) {
        VfioGroupFile open(String device) {
            host.vfio().bind(device);
            return host.vfio().openGroup(qemu, host.pci(device).group().id());
        }
    }

    private static Setup setup(String cmdline, PageTableIommu iommu) {
        Host host = host(cmdline);
        host.iommu().registerOps(BusType.PCI, iommu, ModuleRef.KERNEL);
        UserProcess qemu = host.spawn("qemu", 0, Set.of(Capability.CAP_IPC_LOCK));
        host.vfio().bind(NIC);
        VfioContainer c = host.vfio().openContainer(qemu);
        VfioGroupFile g = host.vfio().openGroup(qemu, host.pci(NIC).group().id());
        g.setContainer(qemu, c);
        c.setIommu(qemu, Vfio.TYPE1v2_IOMMU);
        return new Setup(host, qemu, c, g, host.pci(NIC));
    }

    private static Setup setup() {
        return setup("", new PageTableIommu());
    }

    @Nested
    class ReservedRegions {
        @Test
        void theMsiWindowIsNotAValidIovaAndAMapIntoItIsEinval() {
            Setup s = setup();
            long va = s.qemu().mmap(0x2000);
            assertThat(s.container().iommuInfo(s.qemu()).iovaRanges()).containsExactly(
                    new VfioIovaRange(0, 0xfedfffffL), new VfioIovaRange(0xfef00000L, -1L));
            assertThatThrownBy(() -> s.container().mapDma(s.qemu(), va, 0x2000, 0xfedff000L, RW))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("VFIO_IOMMU_MAP_DMA: iova 0xfedff000+0x2000 is outside the valid IOVA ranges: it meets"
                            + " the msi reserved region [0xfee00000-0xfeefffff] of iommu group 0; valid ranges:"
                            + " [[0x0-0xfedfffff], [0xfef00000-0xffffffffffffffff]]")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThat(s.qemu().lockedPages()).isZero();
            assertThat(s.container().mappings()).isEmpty();
            s.container().mapDma(s.qemu(), va, 0x2000, 0xfedfe000L, RW);
            s.container().mapDma(s.qemu(), s.qemu().mmap(0x1000), 0x1000, 0xfef00000L, RW);
            assertThat(s.container().mappings()).hasSize(2);
        }

        @Test
        void aDevicesRmrrIsExcludedOnceItsGroupJoinsAndAGroupWhoseRmrrHoldsAMappingCannotJoin() {
            Setup s = setup();
            long va = s.qemu().mmap(0x1000);
            s.container().mapDma(s.qemu(), va, 0x1000, RMRR + 0x4000, RW);
            VfioGroupFile gpu = s.open(GPU);
            assertThatThrownBy(() -> gpu.setContainer(s.qemu(), s.container()))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("vfio_iommu_type1_attach_group: iommu group 1 reserves [0x7a000000-0x7a00ffff]"
                            + " (direct (RMRR of 0000:07:00.0)), where the mapping at 0x7a004000+0x1000 lies; unmap it"
                            + " first")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThat(s.container().groupIds()).containsExactly(s.group().id());
            assertThat(gpu.status(s.qemu())).isEqualTo(new VfioGroupStatus(true, false));
            assertThat(s.host().pci(GPU).group().dmaOwner()).isNull();

            s.container().unmapDma(s.qemu(), RMRR + 0x4000, 0x1000);
            gpu.setContainer(s.qemu(), s.container());
            assertThat(s.container().iommuInfo(s.qemu()).iovaRanges()).containsExactly(
                    new VfioIovaRange(0, RMRR - 1), new VfioIovaRange(RMRR + 0x10000, 0xfedfffffL),
                    new VfioIovaRange(0xfef00000L, -1L));
            assertThatThrownBy(() -> s.container().mapDma(s.qemu(), va, 0x1000, RMRR, RW))
                    .hasMessageContaining("it meets the direct (RMRR of 0000:07:00.0) reserved region"
                            + " [0x7a000000-0x7a00ffff] of iommu group 1")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        }

        @Test
        void anRmrrMustBePageAlignedAndNotEmpty() {
            assertThatThrownBy(() -> PciDeviceSpec.of(GPU).withRmrr(0x1000, 0x800))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("RMRR [0x1000-0x17ff] of 0000:07:00.0 is invalid: expected a page-aligned, non-empty"
                            + " range");
        }
    }

    @Nested
    class GetInfo {
        @Test
        void reportsPageSizesTheCapabilityChainAndTheMappingsLeft() {
            Setup s = setup("vfio_iommu_type1.dma_entry_limit=10", new PageTableIommu());
            s.container().mapDma(s.qemu(), s.qemu().mmap(0x1000), 0x1000, 0x10000, RW);
            VfioIommuInfo info = s.container().iommuInfo(s.qemu());
            assertThat(info).isEqualTo(new VfioIommuInfo(VfioIommuInfo.FLAG_PGSIZES | VfioIommuInfo.FLAG_CAPS,
                    0x1000, List.of(new VfioIovaRange(0, 0xfedfffffL), new VfioIovaRange(0xfef00000L, -1L)),
                    0x1000, 268435456L, 9));
        }

        @Test
        void needsAnIommuType() {
            Host host = host("");
            host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
            UserProcess qemu = host.spawn("qemu", 0, Set.of());
            VfioContainer c = host.vfio().openContainer(qemu);
            assertThatThrownBy(() -> c.iommuInfo(qemu))
                    .hasMessage("the container has no iommu type: VFIO_SET_IOMMU first")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        }
    }

    @Nested
    class PageSize {
        @Test
        void theIommusSmallestPageIsTheAlignmentOfMapAndUnmap() {
            Setup s = setup("", new PageTableIommu().passThrough().pageSizes(0x10000L | 0x200000L));
            assertThat(s.container().iommuInfo(s.qemu()).iovaPgsizes()).isEqualTo(0x210000L);
            long small = s.qemu().mmap(0x1000);
            assertThatThrownBy(() -> s.container().mapDma(s.qemu(), small, 0x1000, 0x100000, RW))
                    .isInstanceOf(IommuException.class)
                    .hasMessage(String.format("VFIO_IOMMU_MAP_DMA: vaddr 0x%x iova 0x100000 size 0x1000: vaddr, iova"
                            + " and size must be multiples of the IOMMU's smallest page 0x10000 and size not 0", small))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);

            UserProcess vmm = s.host().spawn("vmm", 0, Set.of(Capability.CAP_IPC_LOCK));
            s.container().passTo(s.qemu(), vmm);
            long va = vmm.mmapContiguous(0x10000); // the first mapping of a process: 64 KiB aligned
            assertThat(va & 0xffff).isZero();
            s.container().mapDma(vmm, va, 0x10000, 0x100000, RW);
            s.nic().dmaWrite(0x10fff0, "64k-page".getBytes(StandardCharsets.US_ASCII));
            assertThat(vmm.read(va + 0xfff0, 8)).asString(StandardCharsets.US_ASCII).isEqualTo("64k-page");
            assertThatThrownBy(() -> s.container().unmapDma(vmm, 0x100000, 0x1000))
                    .hasMessage("VFIO_IOMMU_UNMAP_DMA: iova 0x100000 size 0x1000: both must be multiples of the"
                            + " IOMMU's smallest page 0x10000 and size not 0");
            assertThat(s.container().unmapDma(vmm, 0x100000, 0x10000)).isEqualTo(0x10000);
        }

        @Test
        void pageSizesBelowTheCpusPageBecomeTheCpusPage() {
            Setup s = setup("", new PageTableIommu().passThrough().pageSizes(0x200L | 0x400L | 0x1000L | 0x200000L));
            assertThat(s.container().iommuInfo(s.qemu()).iovaPgsizes()).isEqualTo(0x201000L);
            assertThat(s.container().iommuInfo(s.qemu()).migrationPgsizeBitmap()).isEqualTo(0x1000L);
        }
    }

    @Nested
    class InterruptRemapping {
        private static final String MESSAGE = "vfio_iommu_type1_attach_group: No interrupt remapping support.  Use"
                + " the module param \"allow_unsafe_interrupts\" to enable VFIO IOMMU support on this platform";

        @Test
        void aGroupWhoseIommuDoesNotRemapInterruptsIsRefusedWithTheKernelsWarning() {
            Host host = host("");
            host.iommu().registerOps(BusType.PCI, new PageTableIommu().withoutInterruptRemapping(), ModuleRef.KERNEL);
            UserProcess qemu = host.spawn("qemu", 0, Set.of());
            host.vfio().bind(NIC);
            VfioContainer c = host.vfio().openContainer(qemu);
            VfioGroupFile g = host.vfio().openGroup(qemu, host.pci(NIC).group().id());
            g.setContainer(qemu, c);
            assertThatThrownBy(() -> c.setIommu(qemu, Vfio.TYPE1v2_IOMMU))
                    .isInstanceOf(IommuException.class)
                    .hasMessage(MESSAGE + " (iommu group 0: the IOMMU of 0000:06:0d.0 does not isolate its MSIs; boot"
                            + " with vfio_iommu_type1.allow_unsafe_interrupts=1 to accept that)")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
            assertThat(host.log().messages()).contains(MESSAGE);
            assertThat(c.hasIommu()).isFalse();
            assertThat(c.groupIds()).containsExactly(g.id());
            assertThat(host.pci(NIC).group().currentDomain().type()).isEqualTo(org.iommu4j.api.DomainType.BLOCKED);
            assertThat(host.vfio().allowUnsafeInterrupts()).isFalse();
        }

        @Test
        void allowUnsafeInterruptsLetsItJoin() {
            Setup s = setup("vfio_iommu_type1.allow_unsafe_interrupts=1", new PageTableIommu()
                    .withoutInterruptRemapping());
            assertThat(s.host().vfio().allowUnsafeInterrupts()).isTrue();
            assertThat(s.container().iommuType()).hasValue(Vfio.TYPE1v2_IOMMU);
            assertThat(host("vfio_iommu_type1.allow_unsafe_interrupts=N").vfio().allowUnsafeInterrupts()).isFalse();
            assertThat(host("vfio_iommu_type1.allow_unsafe_interrupts").vfio().allowUnsafeInterrupts()).isTrue();
        }
    }

    @Nested
    class LiveUpdate {
        @Test
        void theVaddrIsInvalidatedWhileTheDeviceDmasOnAndANewProcessTakesTheMappingOver() {
            Setup s = setup();
            UserProcess old = s.qemu();
            assertThat(s.container().checkExtension(old, Vfio.UPDATE_VADDR)).isEqualTo(1);
            long va = old.mmap(2 * 4096);
            s.container().mapDma(old, va, 2 * 4096, 0x10000, RW);
            assertThat(s.container().unmapDma(old, 0x10000, 0x2000, Vfio.DMA_UNMAP_FLAG_VADDR)).isEqualTo(0x2000);
            assertThat(s.container().dmaRecords()).containsExactly(new VfioDmaRecord(0x10000, 0x2000, va, false, old));

            // the device keeps its access throughout
            s.nic().dmaWrite(0x10100, "during".getBytes(StandardCharsets.US_ASCII));
            assertThat(old.read(va + 0x100, 6)).asString(StandardCharsets.US_ASCII).isEqualTo("during");

            UserProcess next = s.host().spawn("qemu-new", 0, Set.of(Capability.CAP_IPC_LOCK));
            s.container().passTo(old, next);
            long newVa = next.mmap(2 * 4096);
            s.container().mapDmaVaddr(next, newVa, 0x2000, 0x10000);
            assertThat(s.container().dmaRecords()).containsExactly(
                    new VfioDmaRecord(0x10000, 0x2000, newVa, true, next));
            assertThat(old.lockedPages()).isZero();
            assertThat(next.lockedPages()).isEqualTo(2);
            assertThat(s.nic().dmaRead(0x10100, 6)).asString(StandardCharsets.US_ASCII).isEqualTo("during");

            assertThat(s.container().unmapDma(old, 0x10000, 0x2000)).isZero();
            assertThat(s.container().unmapDma(next, 0x10000, 0x2000)).isEqualTo(0x2000);
            assertThat(next.lockedPages()).isZero();
            assertThat(old.lockedPages()).isZero();
            assertThat(old.pinCount(va)).isZero();
        }

        @Test
        void theKernelsRulesForBothHalves() {
            Setup s = setup();
            UserProcess q = s.qemu();
            long va = q.mmap(3 * 4096);
            s.container().mapDma(q, va, 0x1000, 0x10000, RW);
            s.container().mapDma(q, va + 0x1000, 0x2000, 0x20000, RW);
            assertThatThrownBy(() -> s.container().mapDmaVaddr(q, va, 0x1000, 0x10000))
                    .hasMessage("VFIO_IOMMU_MAP_DMA: VFIO_DMA_MAP_FLAG_VADDR at iova 0x10000+0x1000: expected exactly"
                            + " the mapping at 0x10000+0x1000, with its vaddr invalidated (it is valid)")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThatThrownBy(() -> s.container().mapDmaVaddr(q, va, 0x1000, 0x40000))
                    .hasMessage("VFIO_IOMMU_MAP_DMA: VFIO_DMA_MAP_FLAG_VADDR at iova 0x40000+0x1000: nothing is mapped"
                            + " there")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOENT);

            assertThat(s.container().unmapDma(q, 0x20000, 0x2000, Vfio.DMA_UNMAP_FLAG_VADDR)).isEqualTo(0x2000);
            // a second invalidation over both fails and undoes the first mapping's invalidation it made
            assertThatThrownBy(() -> s.container().unmapDma(q, 0x10000, 0x20000, Vfio.DMA_UNMAP_FLAG_VADDR))
                    .hasMessage("VFIO_IOMMU_UNMAP_DMA: VFIO_DMA_UNMAP_FLAG_VADDR: the vaddr of the mapping at"
                            + " 0x20000+0x2000 is invalidated already; nothing was invalidated")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThat(s.container().dmaRecords()).extracting(VfioDmaRecord::vaddrValid).containsExactly(true, false);
            assertThatThrownBy(() -> s.container().mapDmaVaddr(q, va, 0x1000, 0x20000))
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);

            // attaching could need to pin: refused while a vaddr is invalid
            VfioGroupFile gpu = s.open(GPU);
            assertThatThrownBy(() -> gpu.setContainer(q, s.container()))
                    .hasMessage("VFIO_GROUP_SET_CONTAINER: 1 mapping(s) of the container have their vaddr invalidated"
                            + " (VFIO_DMA_UNMAP_FLAG_VADDR), and attaching a group could need to pin them: re-point"
                            + " them with VFIO_DMA_MAP_FLAG_VADDR first")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
            assertThat(s.host().pci(GPU).group().dmaOwner()).isNull();
            s.container().mapDmaVaddr(q, va + 0x1000, 0x2000, 0x20000);
            gpu.setContainer(q, s.container());
            assertThat(s.container().groupIds()).hasSize(2);

            // an invalidated mapping is unmapped as any other
            s.container().unmapDma(q, 0x10000, 0x1000, Vfio.DMA_UNMAP_FLAG_VADDR);
            assertThat(s.container().unmapDma(q, 0, 0, Vfio.DMA_UNMAP_FLAG_ALL)).isEqualTo(0x3000);
            assertThat(q.lockedPages()).isZero();
        }

        @Test
        void theNewOwnerMustHaveRoomForTheLockedPages() {
            Setup s = setup();
            long va = s.qemu().mmap(4 * 4096);
            s.container().mapDma(s.qemu(), va, 4 * 4096, 0x10000, RW);
            s.container().unmapDma(s.qemu(), 0x10000, 0x4000, Vfio.DMA_UNMAP_FLAG_VADDR);
            UserProcess small = s.host().spawn("small", 1000, Set.of(), 8192);
            s.container().passTo(s.qemu(), small);
            assertThatThrownBy(() -> s.container().mapDmaVaddr(small, 0x7f0000000000L, 0x4000, 0x10000))
                    .hasMessage("VFIO_IOMMU_MAP_DMA: VFIO_DMA_MAP_FLAG_VADDR: the mapping's 4 locked pages would pass"
                            + " RLIMIT_MEMLOCK (8192) of small:" + small.pid() + ", which has 0 locked; raise its"
                            + " RLIMIT_MEMLOCK or give it CAP_IPC_LOCK")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
            assertThat(s.container().dmaRecords()).extracting(VfioDmaRecord::vaddrValid, VfioDmaRecord::owner)
                    .containsExactly(org.assertj.core.groups.Tuple.tuple(false, s.qemu()));
            assertThat(s.qemu().lockedPages()).isEqualTo(4);
        }

        @Test
        void updateVaddrIsAnsweredOnlyOnceTheTypeIsSet() {
            Host host = host("");
            host.iommu().registerOps(BusType.PCI, new PageTableIommu(), ModuleRef.KERNEL);
            UserProcess qemu = host.spawn("qemu", 0, Set.of());
            VfioContainer c = host.vfio().openContainer(qemu);
            assertThat(c.checkExtension(qemu, Vfio.UPDATE_VADDR)).isZero();
            assertThat(c.checkExtension(qemu, Vfio.UNMAP_ALL)).isEqualTo(1);
        }
    }
}
