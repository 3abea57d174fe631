package org.iommu4j.kernel.fault;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.iommu4j.api.DmaDirection;
import org.iommu4j.api.DmaMappingException;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.proc.UserProcess;
import org.junit.jupiter.api.Test;

class FaultInjectionTest {
    private final Host host = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
    private final UserProcess app = host.spawn("app", 1000, Set.of());

    private static String dump(String name, long interval, int probability, long space, int times) {
        return "FAULT_INJECTION: forcing a failure.\nname " + name + ", interval " + interval + ", probability "
                + probability + ", space " + space + ", times " + times;
    }

    @Test
    void everyCapabilityIsOffAtBootAndFailsNothingUntilArmed() {
        for (FaultAttr a : host.faults().all()) {
            for (int i = 0; i < 1000; i++) {
                assertThat(a.shouldFail(4096)).isFalse();
            }
            assertThat(a.injected()).isZero();
        }
        assertThat(host.faults().all()).extracting(FaultAttr::name)
                .containsExactly("fail_page_alloc", "failslab", "fail_iommu");
    }

    @Test
    void theBootOptionFailsTheFirstPageAllocationsAndTheFailedCallsLeaveNothingAllocated() {
        Host armed = Host.builder().commandLine("fail_page_alloc=1,100,0,2").build();
        UserProcess p = armed.spawn("app", 1000, Set.of());
        long free = armed.pageAllocator().freePageCount();

        for (int i = 0; i < 2; i++) {
            assertThatThrownBy(() -> p.mmap(4096))
                    .isInstanceOf(IommuException.class)
                    .hasMessage("out of memory: no free page for a user mapping")
                    .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        }
        assertThat(armed.pageAllocator().freePageCount()).isEqualTo(free);
        p.write(p.mmap(4096), new byte[] {1});
        assertThat(armed.pageAllocator().freePageCount()).isEqualTo(free - 1);
        assertThat(armed.faults().pageAlloc().injected()).isEqualTo(2);
        assertThat(armed.faults().pageAlloc().timesLeft()).isZero();
        assertThat(armed.log().messages()).containsSubsequence(
                dump("fail_page_alloc", 1, 100, 0, 2), dump("fail_page_alloc", 1, 100, 0, 1));
    }

    @Test
    void aBootOptionThatDoesNotParseIsReportedAndIgnored() {
        Host host = Host.builder().commandLine("failslab=1,100 fail_iommu=1,101,0,1").build();
        assertThat(host.log().messages()).contains(
                "FAULT_INJECTION: failed to parse arguments: failslab=1,100"
                        + " (expected <interval>,<probability>,<space>,<times>)",
                "FAULT_INJECTION: failed to parse arguments: fail_iommu=1,101,0,1"
                        + " (fail_iommu: probability 101 is invalid: expected 0 to 100 (percent))");
        assertThat(host.faults().slab().shouldFail(1)).isFalse();
        assertThat(host.faults().iommu().shouldFail(1)).isFalse();
    }

    @Test
    void aMultiPageMmapThatFailsHalfwayGivesBackThePagesItHadTaken() {
        long free = host.pageAllocator().freePageCount();
        host.faults().pageAlloc().configure(5, 100, 0, 1);
        assertThatThrownBy(() -> app.mmap(8 * 4096))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
        long va = app.mmap(8 * 4096);
        assertThat(app.pagemap(va, 8 * 4096)).hasSize(8);
    }

    @Test
    void spaceLetsCallsThroughUntilItsBudgetIsSpentAsTheKernelCountsIt() {
        FaultAttr attr = host.faults().slab();
        attr.configure(1, 100, 8192, 1);
        assertThat(attr.shouldFail(4096)).isFalse();   // 8192 > 4096: the budget drops to 4096
        assertThat(attr.shouldFail(4096)).isTrue();    // 4096 is not > 4096: this one fails
        assertThat(attr.shouldFail(4096)).isFalse();   // times used up
    }

    @Test
    void intervalPicksEveryNthCallAndTimesBoundsTheFailures() {
        FaultAttr attr = host.faults().slab();
        attr.setVerbose(0);
        attr.configure(3, 100, 0, 2);
        List<Integer> failed = new ArrayList<>();
        for (int call = 1; call <= 12; call++) {
            if (attr.shouldFail(64)) {
                failed.add(call);
            }
        }
        assertThat(failed).containsExactly(3, 6);
        assertThat(host.log().messages()).noneMatch(m -> m.startsWith("FAULT_INJECTION"));
    }

    @Test
    void aProbabilityBelow100IsReproducibleFromTheSeed() {
        List<Boolean> first = pattern(Host.builder().faultSeed(42).build());
        List<Boolean> again = pattern(Host.builder().faultSeed(42).build());
        List<Boolean> other = pattern(Host.builder().faultSeed(7).build());
        assertThat(again).isEqualTo(first);
        assertThat(other).isNotEqualTo(first);
        assertThat(first.stream().filter(b -> b).count()).isBetween(60L, 140L);
    }

    private static List<Boolean> pattern(Host host) {
        FaultAttr attr = host.faults().slab();
        attr.setVerbose(0);
        attr.configure(1, 50, 0, -1);
        List<Boolean> out = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            out.add(attr.shouldFail(64));
        }
        return out;
    }

    @Test
    void badKnobsAreRefusedByNameAndChangeNothing() {
        FaultAttr attr = host.faults().pageAlloc();
        assertThatThrownBy(() -> attr.configure(0, 100, 0, 1))
                .hasMessage("fail_page_alloc: interval 0 is invalid: expected 1 or more");
        assertThatThrownBy(() -> attr.configure(1, -1, 0, 1))
                .hasMessage("fail_page_alloc: probability -1 is invalid: expected 0 to 100 (percent)");
        assertThatThrownBy(() -> attr.configure(1, 100, -5, 1))
                .hasMessage("fail_page_alloc: space -5 is invalid: expected 0 or more bytes");
        assertThatThrownBy(() -> attr.configure(1, 100, 0, -2))
                .hasMessage("fail_page_alloc: times -2 is invalid: expected -1 (no limit) or 0 or more");
        assertThatThrownBy(() -> host.faults().attr("fail_futex"))
                .hasMessage("no fault-injection capability 'fail_futex': expected one of fail_page_alloc, failslab,"
                        + " fail_iommu");
        assertThat(attr.shouldFail(4096)).isFalse();
    }

    @Test
    void failIommuFailsDmaMappingsOnlyForADeviceThatOptedIn() {
        PciDevice nic = host.pci("0000:06:0d.0");
        long buffer = host.pageAllocator().allocateContiguous(1, Long.MAX_VALUE);
        host.faults().iommu().configure(1, 100, 0, -1);
        assertThat(host.dma().map(nic, buffer, 4096, DmaDirection.TO_DEVICE)).isEqualTo(buffer);
        host.dma().unmap(nic, buffer, 4096, DmaDirection.TO_DEVICE);

        nic.setFailIommu(true);
        long live = host.dma().liveMappings(ModuleRef.KERNEL);
        assertThatThrownBy(() -> host.dma().map(nic, buffer, 4096, DmaDirection.TO_DEVICE))
                .isInstanceOf(DmaMappingException.class)
                .hasMessage("0000:06:0d.0: iommu_alloc failed: no DMA address space for 4096 bytes")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        long free = host.pageAllocator().freePageCount();
        assertThatThrownBy(() -> host.dma().allocateCoherent(nic, 8192))
                .isInstanceOf(DmaMappingException.class);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
        assertThat(host.dma().liveMappings(ModuleRef.KERNEL)).isEqualTo(live);

        host.faults().iommu().disable();
        assertThat(host.dma().map(nic, buffer, 4096, DmaDirection.TO_DEVICE)).isEqualTo(buffer);
    }

    @Test
    void aCoherentAllocationThatThePageAllocatorFailsLeavesNothingBehind() {
        PciDevice nic = host.pci("0000:06:0d.0");
        long free = host.pageAllocator().freePageCount();
        long live = host.dma().liveMappings(ModuleRef.KERNEL);
        host.faults().pageAlloc().configure(1, 100, 0, 1);
        assertThatThrownBy(() -> host.dma().allocateCoherent(nic, 16384))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
        assertThat(host.dma().liveMappings(ModuleRef.KERNEL)).isEqualTo(live);
    }
}
