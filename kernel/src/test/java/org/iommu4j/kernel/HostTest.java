package org.iommu4j.kernel;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Set;
import org.iommu4j.api.TaintFlag;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.mem.SparseMemory;
import org.iommu4j.kernel.proc.UserProcess;
import org.junit.jupiter.api.Test;

class HostTest {
    @Test
    void aSixtyFourGibibyteHostStartsAndUsesMemoryOnlyForWhatWasWritten() {
        Host host = Host.builder().memory(64L << 30).build();
        assertThat(host.memory().size()).isEqualTo(64L << 30);
        assertThat(host.memory().residentBytes()).isZero();

        host.memory().write((64L << 30) - 8, new byte[] {1, 2, 3, 4, 5, 6, 7, 8}, 0, 8);
        UserProcess p = host.spawn("big", 0, Set.of());
        long va = p.mmap(16 * 4096);
        p.write(va, new byte[] {42});

        // one chunk at the top for the raw write, one for the process's pages (taken from the top down)
        assertThat(host.memory().residentBytes()).isLessThanOrEqualTo(2L * SparseMemory.CHUNK_SIZE);
        assertThat(p.read(va, 1)).containsExactly(42);
    }

    @Test
    void twoHostsShareNothing() {
        Host a = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        Host b = Host.builder().pciDevice(PciDeviceSpec.of("0000:06:0d.0")).build();
        a.pci("0000:06:0d.0").dmaWrite(0x1000, new byte[] {7});
        a.taint().add(TaintFlag.USER, "test", "only a");

        byte[] fromB = new byte[1];
        b.memory().read(0x1000, fromB, 0, 1);
        assertThat(fromB).containsExactly(0);
        assertThat(b.taint().taintedString()).isEqualTo("Not tainted");
        assertThat(a.spawn("x", 0, Set.of()).pid()).isEqualTo(b.spawn("y", 0, Set.of()).pid());
    }

    @Test
    void bootLogsTheCommandLine() {
        Host host = Host.builder().commandLine("noiommu.enable_unsafe_noiommu_mode=1").build();
        assertThat(host.log().messages()).contains("Kernel command line: noiommu.enable_unsafe_noiommu_mode=1");
    }

    @Test
    void threadsAreSpreadOverCpusAndKeepTheirs() throws Exception {
        Host host = Host.builder().cpus(4).build();
        int mine = host.currentCpu();
        int[] other = new int[1];
        Thread t = new Thread(() -> other[0] = host.currentCpu());
        t.start();
        t.join();
        assertThat(host.currentCpu()).isEqualTo(mine);
        assertThat(other[0]).isNotEqualTo(mine).isBetween(0, 3);
    }

    /**
     * Far more threads than the CPU table has slots, so that ids share slots: each thread still gets the CPU of
     * its turn (round robin in the order of first calls) and keeps it, however often the slots are overwritten.
     */
    @Test
    void twoHundredThreadsEachKeepTheCpuOfTheirTurn() throws Exception {
        Host host = Host.builder().cpus(3).build();
        int threads = 200;
        int[][] seen = new int[threads][50];
        for (int t = 0; t < threads; t++) {
            int me = t;
            Thread thread = new Thread(() -> seen[me][0] = host.currentCpu());
            thread.start();
            thread.join(); // one at a time: thread t is the t-th to ask
        }
        Thread[] again = new Thread[threads];
        java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
        for (int t = 0; t < threads; t++) {
            int me = t;
            again[t] = new Thread(() -> {
                // a fresh thread: its turn comes after the first 200, in start order
                seen[me][1] = host.currentCpu();
                try {
                    go.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                for (int i = 2; i < 50; i++) {
                    seen[me][i] = host.currentCpu();
                }
            });
            again[t].start();
            while (again[t].getState() != Thread.State.WAITING && again[t].isAlive()) {
                Thread.onSpinWait();
            }
        }
        go.countDown();
        for (Thread t : again) {
            t.join();
        }
        for (int t = 0; t < threads; t++) {
            assertThat(seen[t][0]).as("thread %d", t).isEqualTo(t % 3);
            int turn = (threads + t) % 3;
            for (int i = 1; i < 50; i++) {
                assertThat(seen[t][i]).as("second thread %d, call %d", t, i).isEqualTo(turn);
            }
        }
    }

    @Test
    void badSizesAreRefusedWithTheValidRange() {
        assertThatThrownBy(() -> Host.builder().memory(1000))
                .hasMessage("memory size 1000 is invalid: expected a multiple of 4 KiB from 16 MiB to 1 TiB");
        assertThatThrownBy(() -> Host.builder().cpus(0)).hasMessage("CPU count 0 is invalid: expected 1 to 256");
    }
}
