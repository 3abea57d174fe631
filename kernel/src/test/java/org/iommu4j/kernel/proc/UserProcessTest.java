package org.iommu4j.kernel.proc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.PinnedPages;
import org.iommu4j.kernel.Host;
import org.junit.jupiter.api.Test;

class UserProcessTest {
    private final Host host = Host.builder().build();
    private final UserProcess process = host.spawn("qemu", 1000, Set.of(Capability.CAP_IPC_LOCK));

    @Test
    void anOrdinaryBufferIsBackedByPhysicallyScatteredPages() {
        long va = process.mmap(4 * 4096);
        long[] frames = process.pagemap(va, 4 * 4096);

        assertThat(frames).hasSize(4).doesNotHaveDuplicates();
        for (int i = 1; i < frames.length; i++) {
            assertThat(frames[i]).isNotEqualTo(frames[i - 1] + 4096);
        }
        assertThat(process.pin(va, 4 * 4096).firstDiscontinuity()).isEqualTo(1);
    }

    @Test
    void aContiguousBufferIsOneRunOfFrames() {
        long va = process.mmapContiguous(5 * 4096);
        long[] frames = process.pagemap(va, 5 * 4096);
        for (int i = 1; i < frames.length; i++) {
            assertThat(frames[i]).isEqualTo(frames[0] + 4096L * i);
        }
        assertThat(process.virtToPhys(va + 4100)).isEqualTo(frames[1] + 4);
    }

    @Test
    void writesReachTheFramesThePagemapNames() {
        long va = process.mmap(3 * 4096);
        byte[] data = new byte[6000];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i * 7);
        }
        process.write(va + 3000, data);

        assertThat(process.read(va + 3000, data.length)).isEqualTo(data);
        byte[] viaPhys = new byte[4096 - 3000];
        host.memory().read(process.virtToPhys(va + 3000), viaPhys, 0, viaPhys.length);
        assertThat(viaPhys).isEqualTo(java.util.Arrays.copyOf(data, viaPhys.length));
    }

    @Test
    void unmappedAddressesAreEfaultWithTheAddressNamed() {
        long va = process.mmap(4096);
        assertThatThrownBy(() -> process.write(va + 4000, new byte[200]))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("address 0x%x is not mapped in qemu:%d", va + 4096, process.pid()))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThat(process.read(va + 4000, 96)).containsOnly(0);
    }

    @Test
    void pinsAreCountedPerPageAndReleased() {
        long va = process.mmap(2 * 4096);
        PinnedPages a = process.pin(va, 2 * 4096);
        PinnedPages b = process.pin(va + 4096, 10);

        assertThat(process.pinCount(va)).isEqualTo(1);
        assertThat(process.pinCount(va + 4096)).isEqualTo(2);
        assertThat(process.lockedPages()).isEqualTo(3);

        process.unpin(a);
        process.unpin(b);
        assertThat(process.lockedPages()).isZero();
        assertThat(process.pinCount(va + 4096)).isZero();
        assertThatThrownBy(() -> process.unpin(b)).hasMessageStartingWith("unpin of frame 0x");
    }

    @Test
    void aPinnedFrameOutlivesMunmapAndIsFreedAtItsLastUnpin() {
        long free = host.pageAllocator().freePageCount();
        long va = process.mmap(2 * 4096);
        PinnedPages pinned = process.pin(va, 4096);

        process.munmap(va);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free - 2);
        process.unpin(pinned);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
    }

    @Test
    void exitRunsHooksThenFreesMemory() {
        long free = host.pageAllocator().freePageCount();
        process.mmap(8 * 4096);
        process.mmapContiguous(8 * 4096);
        StringBuilder order = new StringBuilder();
        process.onExit(() -> order.append("first;"));
        process.onExit(() -> order.append("second;"));

        process.exit();
        assertThat(order).hasToString("second;first;");
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
        assertThat(process.isAlive()).isFalse();
        assertThatThrownBy(() -> process.mmap(1))
                .hasMessage("process qemu:" + process.pid() + " has exited")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ESRCH);
    }

    @Test
    void credentialsAreExplicit() {
        UserProcess root = host.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO));
        assertThat(root.capable(Capability.CAP_SYS_RAWIO)).isTrue();
        assertThat(process.capable(Capability.CAP_SYS_RAWIO)).isFalse();
        assertThat(root.pid()).isEqualTo(process.pid() + 1);
        assertThat(root).hasToString("hct_test:" + root.pid());
    }
}
