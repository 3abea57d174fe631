package org.iommu4j.backend.xen;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.iommu4j.api.BounceBufferPool;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.Vfio;
import org.iommu4j.backend.swiotlb.SwiotlbProvider;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.DmaMasks;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.LoadedModule;
import org.iommu4j.xen.P2mLayout;
import org.iommu4j.xen.XenDomain;
import org.iommu4j.xen.XenPlatform;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.testsupport.DmaApiModel;
import org.iommu4j.testsupport.DmaApiModel.Count;
import org.iommu4j.testsupport.PathCounts;
import org.iommu4j.testsupport.Seeded;
import org.iommu4j.testsupport.VfioModel;
import org.junit.jupiter.api.Test;

/**
 * The model-based stateful test of xen-swiotlb's DMA ops ({@link DmaApiModel}) in a guest of a small Xen
 * platform whose pages are scattered over machine memory (a seeded layout per sequence): buffers whose machine frames are not contiguous,
 * or lie past a device's mask, bounce. {@code -Pstress} raises the number of sequences
 * ({@code iommu4j.model.sequences}).
 */
class XenModelTest {
    static final int SEQUENCES = Seeded.count("iommu4j.model.sequences", 200);
    static final int STEPS = Seeded.count("iommu4j.model.steps", 500);
    private static final String NIC = "0000:06:0d.0";
    /** swiotlb exports its pool and, like a Linux module, leaves the export for unload to remove. */
    private static final String SWIOTLB_EXPORT = "swiotlb: left 1 registrations behind at exit; removed them";

    @Test
    void theDmaApiAgreesWithTheModelAfterEveryStep() {
        Map<DmaApiModel.Count, Long> totals = DmaApiModel.runSequences("XenModelTest.dma", SEQUENCES,
                r -> run(r::nextInt, STEPS, r.nextBoolean(), r.nextLong()));
        PathCounts.requireEveryPathBut(totals, Count.MAP_REFUSED);
    }

    /**
     * One sequence, also the Jazzer op-sequence target's body.
     *
     * @return the model, with what the sequence did
     * @param choices where the steps come from
     * @param steps how many
     * @param debug whether the host runs with DMA-API debugging
     * @param layoutSeed the seed of the guest's scattered p2m
     */
    static DmaApiModel run(DmaApiModel.Choices choices, int steps, boolean debug, long layoutSeed) {
        XenPlatform platform = platform(PciDeviceSpec.of("0000:06:0d.0"),
                PciDeviceSpec.of("0000:07:00.0").withDmaMask(DmaMasks.bits(32)));
        XenDomain guest = platform.createGuest("guest", 64L << 20, "", P2mLayout.scattered(layoutSeed),
                b -> b.dmaApiDebug(debug));
        Host host = guest.host();
        long freeAtBoot = host.pageAllocator().freePageCount();
        host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "4096"), "class path");
        LoadedModule xen = host.modules().insert(new XenProvider(), Map.of(), "class path");
        platform.attach("0000:06:0d.0", guest);
        platform.attach("0000:07:00.0", guest);
        BounceBufferPool pool = host.symbols().view(xen).lookup(BounceBufferPool.class);
        DmaApiModel model = new DmaApiModel(host, xen, new DmaApiModel.Backend() {
            @Override
            public Errno mapOutcome(PciDevice device, long phys, long size) {
                return null; // the pool (8 MiB, made machine-contiguous below 4 GiB) holds every buffer at once
            }

            @Override
            public boolean bounced(long dmaAddress) {
                long pfn = guest.hypercalls().mfnToPfn(dmaAddress >>> 12);
                return pfn >= 0 && pool.contains((pfn << 12) | (dmaAddress & 0xfff));
            }

            @Override
            public long slotsInUse() {
                return pool.stats().usedSlots();
            }
        }, List.of(host.pci("0000:06:0d.0"), host.pci("0000:07:00.0")));
        for (int i = 0; i < steps; i++) {
            model.step(choices);
        }
        model.teardown();
        host.modules().remove("xen");
        host.modules().remove("swiotlb");
        DmaApiModel.requireClean(host, freeAtBoot, SWIOTLB_EXPORT);
        return model;
    }

    @Test
    void vfioAgreesWithTheModelAfterEveryStep() {
        VfioModel.Totals run = VfioModel.runSequences("XenModelTest.vfio", SEQUENCES,
                r -> runVfio(r::nextInt, STEPS));
        Map<VfioModel.Count, Long> totals = run.counts();
        assertThat(run.checkedBytes()).as("bytes the device and the process read").isGreaterThan(1L << 20);
        PathCounts.requireEveryPathBut(totals, VfioModel.Count.BOUNCED);
    }

    /**
     * One VFIO sequence: a root process with its container on xen (type 1 v2 through the hypervisor, iovas the program chooses, so they clash).
     *
     * @param choices where the steps come from
     * @param steps how many
     * @return the model
     */
    static VfioModel runVfio(DmaApiModel.Choices choices, int steps) {
        XenPlatform platform = platform(PciDeviceSpec.of(NIC));
        XenDomain guest = platform.createGuest("guest", 64L << 20, "", P2mLayout.scattered(7), b -> b);
        Host host = guest.host();
        long freeAtBoot = host.pageAllocator().freePageCount();
        host.modules().insert(new SwiotlbProvider(), Map.of("nslabs", "4096"), "class path");
        LoadedModule xen = host.modules().insert(new XenProvider(), Map.of(), "class path");
        platform.attach(NIC, guest);
        BounceBufferPool pool = host.symbols().view(xen).lookup(BounceBufferPool.class);
        UserProcess p = host.spawn("qemu", 0, Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
        host.vfio().bind(NIC);
        long base = p.mmap(VfioModel.PAGES * 4096L);
        VfioContainer container = host.vfio().openContainer(p);
        VfioGroupFile group = host.vfio().openGroup(p, host.pci(NIC).group().id());
        group.setContainer(p, container);
        container.setIommu(p, Vfio.TYPE1v2_IOMMU);
        group.getDevice(p, NIC);
        VfioModel model = new VfioModel(p, container, host.pci(NIC), base, new VfioModel.Backend() {
            @Override
            public long iova(UserProcess process, long vaddr, long size, DmaApiModel.Choices c) {
                return 0x4000_0000L + c.pick(96) * 4096L;
            }

            @Override
            public boolean bounced(long iova) {
                return false;
            }

            @Override
            public long slotsInUse() {
                return pool.stats().usedSlots();
            }
        });
        for (int i = 0; i < steps; i++) {
            model.step(choices);
        }
        model.teardown();
        group.close(p);
        container.close(p);
        p.exit();
        host.vfio().unbind(NIC);
        host.modules().remove("xen");
        host.modules().remove("swiotlb");
        DmaApiModel.requireClean(host, freeAtBoot, SWIOTLB_EXPORT);
        return model;
    }

    /** A small machine whose Domain-0 holds the devices in pciback, ready to attach them to a guest. */
    private static XenPlatform platform(PciDeviceSpec... devices) {
        StringBuilder hide = new StringBuilder();
        XenPlatform.Builder b = XenPlatform.builder().machineMemory(1L << 30).dom0Memory(64L << 20);
        for (PciDeviceSpec d : devices) {
            b.pciDevice(d);
            hide.append('(').append(d.address()).append(')');
        }
        XenPlatform platform = b.dom0CommandLine("xen-pciback.hide=" + hide).build();
        Machines.loadDriver(platform.dom0().host(), Map.of());
        return platform;
    }
}
