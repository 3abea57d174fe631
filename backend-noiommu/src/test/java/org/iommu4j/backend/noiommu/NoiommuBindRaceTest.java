package org.iommu4j.backend.noiommu;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.Vfio;
import org.iommu4j.api.VfioDmaMapping;
import org.iommu4j.kernel.Host;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.vfio.VfioContainer;
import org.iommu4j.kernel.vfio.VfioDeviceFile;
import org.iommu4j.kernel.vfio.VfioGroupFile;
import org.iommu4j.testsupport.Seeded;
import org.junit.jupiter.api.Test;

/**
 * VFIO bind and unbind racing a user program that opens the device's group, sets up a container, maps a
 * buffer, lets the device write into it and tears everything down. Every refusal on either side must be a typed
 * error (the racing program meets ENODEV, EBUSY, EINVAL or ENOENT as the device comes and goes); when both stop
 * nothing is left: no page pinned, no group file open, the device unbinds and noiommu unloads. Bounded.
 */
class NoiommuBindRaceTest {
    private static final String NIC = "0000:06:0d.0";
    private static final int ROUNDS = Seeded.count("iommu4j.concurrency.rounds", 2);

    @Test
    void bindAndUnbindRacingGroupOpensLeaveNothingBehind() throws Exception {
        for (int round = 0; round < ROUNDS; round++) {
            race();
        }
    }

    private static void race() throws Exception {
        Host host = Host.builder().memory(256L << 20).pciDevice(PciDeviceSpec.of(NIC)).build();
        host.modules().insert(new NoiommuProvider(), Map.of(NoiommuProvider.ENABLE, "1"), "class path");
        UserProcess root = host.spawn("hct_test", 0, Set.of(Capability.CAP_SYS_RAWIO, Capability.CAP_IPC_LOCK));
        long va = root.mmapContiguous(4 * 4096);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicLong sessions = new AtomicLong();
        AtomicLong refusals = new AtomicLong();
        List<String> wrong = Collections.synchronizedList(new ArrayList<>());
        int iterations = 2000;
        long deadline = System.nanoTime() + 20_000_000_000L;
        java.util.concurrent.atomic.AtomicBoolean done = new java.util.concurrent.atomic.AtomicBoolean();
        Thread binder = new Thread(() -> {
            try {
                // at least 2000 binds and unbinds, and on until the program got 20 whole sessions in between
                for (int i = 0; (i < iterations || sessions.get() < 20) && System.nanoTime() < deadline; i++) {
                    try {
                        if (i % 2 == 0) {
                            host.vfio().bind(NIC);
                        } else {
                            host.vfio().unbind(NIC);
                        }
                    } catch (IommuException e) {
                        if (e.errno() != Errno.EBUSY && e.errno() != Errno.EINVAL && wrong.size() < 5) {
                            wrong.add("bind/unbind: " + e.errno() + ": " + e.getMessage());
                        }
                    }
                }
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            } finally {
                done.set(true);
            }
        });
        Thread program = new Thread(() -> {
            try {
                for (int i = 0; !done.get(); i++) {
                    VfioContainer container = null;
                    VfioGroupFile group = null;
                    VfioDeviceFile device = null;
                    VfioDmaMapping m = null;
                    try {
                        Group g = host.pci(NIC).group();
                        if (g == null) {
                            continue;
                        }
                        container = host.vfio().openContainer(root);
                        group = host.vfio().openGroup(root, g.id());
                        group.setContainer(root, container);
                        container.setIommu(root, Vfio.NOIOMMU_IOMMU);
                        device = group.getDevice(root, NIC);
                        m = container.mapDma(root, va, 4 * 4096, root.virtToPhys(va), IommuProt.READ | IommuProt.WRITE);
                        host.pci(NIC).dmaWrite(m.iova() + 8, new byte[] {(byte) i});
                        if (root.read(va + 8, 1)[0] != (byte) i && wrong.size() < 5) {
                            wrong.add("the device's write did not reach the process in session " + i);
                        }
                        container.unmapDma(root, m.iova(), m.size());
                        m = null;
                        sessions.incrementAndGet();
                    } catch (IommuException e) {
                        refusals.incrementAndGet();
                        if (!Set.of(Errno.ENODEV, Errno.EBUSY, Errno.EINVAL, Errno.ENOENT, Errno.EPERM)
                                .contains(e.errno()) && wrong.size() < 5) {
                            wrong.add("program: " + e.errno() + ": " + e.getMessage());
                        }
                    } finally {
                        if (m != null) {
                            container.unmapDma(root, m.iova(), m.size());
                        }
                        if (device != null) {
                            device.close(root);
                        }
                        if (group != null) {
                            group.close(root);
                        }
                        if (container != null) {
                            container.close(root);
                        }
                    }
                }
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
            }
        });
        binder.start();
        program.start();
        binder.join(60_000);
        program.join(60_000);
        assertThat(binder.isAlive() || program.isAlive()).as("a thread is stuck").isFalse();
        assertThat(failure.get()).isNull();
        assertThat(wrong).isEmpty();
        assertThat(sessions.get()).as("sessions that ran").isPositive();
        for (int p = 0; p < 4; p++) {
            assertThat(root.pinCount(va + p * 4096L)).as("pins of page %d", p).isZero();
        }
        assertThat(root.lockedPages()).isZero();
        if (host.pci(NIC).driver() != null) {
            host.vfio().unbind(NIC);
        }
        host.modules().remove("noiommu");
        assertThat(host.modules().find("noiommu")).isEmpty();
    }
}
