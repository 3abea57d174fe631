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

    @Test
    void aMappingLargerThanMemoryIsRefusedAtOnceWithNothingAllocated() {
        long free = host.pageAllocator().freePageCount();
        assertThatThrownBy(() -> process.mmap(1L << 40))
                .isInstanceOf(IommuException.class)
                .hasMessage("mmap of 1099511627776 bytes in qemu:" + process.pid() + ": out of memory: it needs"
                        + " 268435456 pages and " + free + " are free")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThatThrownBy(() -> process.mmap((free + 1) * 4096))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.ENOMEM);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
        assertThatThrownBy(() -> process.mmap(1L << 50))
                .hasMessage("mmap length 1125899906842624 is invalid: expected 1 byte to 8 TiB")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
    }

    @Test
    void aHugeRangeOverASmallMappingIsEfaultNotAnOutOfMemoryError() {
        long va = process.mmap(4 * 4096);
        assertThatThrownBy(() -> process.pagemap(va, 1L << 40))
                .isInstanceOf(IommuException.class)
                .hasMessage(String.format("address 0x%x is not mapped in qemu:%d", va + 4 * 4096, process.pid()))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThatThrownBy(() -> process.pin(va, Long.MAX_VALUE))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThatThrownBy(() -> process.pagemap(va, -1L))
                .hasMessage(String.format("range 0x%x+0xffffffffffffffff wraps", va))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
        assertThat(process.lockedPages()).isZero();
        assertThat(process.pagemap(va + 100, 4 * 4096 - 100)).hasSize(4);
    }

    @Test
    void badLengthsAndSlicesAreTypedErrorsNamingTheInput() {
        long va = process.mmap(4096);
        assertThatThrownBy(() -> process.read(va, -1))
                .isInstanceOf(IommuException.class)
                .hasMessage("read length 18446744073709551615 is invalid: expected 0 to 2147483639 bytes in one call")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> process.read(va, new byte[4], 2, 3))
                .isInstanceOf(IommuException.class)
                .hasMessage("buffer slice offset 2 length 3 is invalid: expected 0 <= offset, 0 <= length, offset +"
                        + " length <= 4 (the buffer's length)");
        assertThatThrownBy(() -> process.write(va, new byte[4], 0, -1))
                .isInstanceOf(IommuException.class)
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> process.read(va, Integer.MAX_VALUE))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThatThrownBy(() -> process.read(va, 8192))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EFAULT);
    }

    @Test
    void onlyCapSysResourceRaisesTheHardMemlockLimit() {
        assertThat(process.memlockHardLimit()).isEqualTo(UserProcess.DEFAULT_MEMLOCK_LIMIT);
        process.setMemlockLimit(4096, 1L << 20);
        assertThat(process.memlockLimit()).isEqualTo(4096);
        assertThat(process.memlockHardLimit()).isEqualTo(1L << 20);
        process.setMemlockLimit(1L << 20);
        assertThatThrownBy(() -> process.setMemlockLimit(2L << 20))
                .isInstanceOf(IommuException.class)
                .hasMessage("setrlimit(RLIMIT_MEMLOCK): Operation not permitted: raising the hard limit from 1048576"
                        + " to 2097152 needs CAP_SYS_RESOURCE; qemu:" + process.pid() + " does not have it")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> process.setMemlockLimit(UserProcess.RLIM_INFINITY))
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EPERM);
        assertThatThrownBy(() -> process.setMemlockLimit(8192, 4096))
                .hasMessage("setrlimit(RLIMIT_MEMLOCK): soft limit 8192 is above the hard limit 4096: expected soft"
                        + " <= hard")
                .extracting(e -> ((IommuException) e).errno()).isEqualTo(Errno.EINVAL);
        assertThat(process.memlockLimit()).isEqualTo(1L << 20);
        assertThat(process.memlockHardLimit()).isEqualTo(1L << 20);

        UserProcess admin = host.spawn("admin", 0, Set.of(Capability.CAP_SYS_RESOURCE));
        admin.setMemlockLimit(UserProcess.RLIM_INFINITY);
        assertThat(admin.memlockLimit()).isEqualTo(UserProcess.RLIM_INFINITY);
        UserProcess unlimited = host.spawn("vm", 1000, Set.of(), UserProcess.RLIM_INFINITY);
        assertThat(unlimited.memlockHardLimit()).isEqualTo(UserProcess.RLIM_INFINITY);
    }

    @Test
    void forkCopiesTheAddressSpaceAndTheLimits() {
        long va = process.mmap(2 * 4096);
        long run = process.mmapContiguous(2 * 4096);
        process.write(va + 10, new byte[] {1, 2, 3});
        process.write(run, new byte[] {9});
        process.setMemlockLimit(1L << 20);
        long free = host.pageAllocator().freePageCount();

        UserProcess child = host.fork(process);
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free - 4);
        assertThat(child.read(va + 10, 3)).containsExactly(1, 2, 3);
        assertThat(child.read(run, 1)).containsExactly(9);
        assertThat(child.pagemap(run, 2 * 4096)[1]).isEqualTo(child.virtToPhys(run) + 4096);
        assertThat(child.memlockHardLimit()).isEqualTo(1L << 20);
        assertThat(child.uid()).isEqualTo(process.uid());
        child.write(va + 10, new byte[] {7});
        assertThat(process.read(va + 10, 1)).containsExactly(1);
        child.exit();
        assertThat(host.pageAllocator().freePageCount()).isEqualTo(free);
    }
}
