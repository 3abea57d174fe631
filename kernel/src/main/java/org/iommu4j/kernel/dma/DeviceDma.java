package org.iommu4j.kernel.dma;

import java.util.concurrent.atomic.LongAdder;
import org.iommu4j.api.AddressRange;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.DmaPort;
import org.iommu4j.kernel.iommu.Group;
import org.iommu4j.kernel.log.KernelLogBuffer;

/**
 * Routes devices' DMA to memory through the translation in force: none when the device has no group or its
 * group has no domain (bus address = physical address), else the group's current domain, page by page.
 * An access is checked whole before a byte moves, so a fault writes nothing; it is logged, counted on the
 * device and the host, and thrown as {@link IommuFaultException}.
 *
 * <p>This is the device-DMA hot path: it allocates nothing unless it faults and takes no lock. A mapping
 * removed concurrently with an access can still cut the access short, as on hardware.
 */
public final class DeviceDma implements DmaPort {
    private final PhysicalMemory memory;
    private final KernelLogBuffer log;
    private final LongAdder faults = new LongAdder();

    /**
     * @param memory the host's memory
     * @param log the kernel log, where faults are reported
     */
    public DeviceDma(PhysicalMemory memory, KernelLogBuffer log) {
        this.memory = memory;
        this.log = log;
    }

    /** @return how many device accesses faulted on this host */
    public long faultCount() {
        return faults.sum();
    }

    @Override
    public void write(BusDevice device, long busAddress, byte[] src, int offset, int length) {
        AddressRange.requireSlice(src.length, offset, length);
        transfer(device, busAddress, src, offset, length, true);
    }

    @Override
    public void read(BusDevice device, long busAddress, byte[] dst, int offset, int length) {
        AddressRange.requireSlice(dst.length, offset, length);
        transfer(device, busAddress, dst, offset, length, false);
    }

    private void transfer(BusDevice device, long address, byte[] buffer, int offset, int length, boolean write) {
        if (!device.isPresent()) {
            throw new IommuException(Errno.ENODEV, "device " + device.name() + " has been removed");
        }
        if (length == 0) {
            return;
        }
        long last = address + length - 1;
        // bus addresses are unsigned: an IOVA may lie above 2^63 (iommu.forcedac=1 hands out the top of the space)
        if (Long.compareUnsigned(last, address) < 0 || Long.compareUnsigned(last, device.dmaMask()) > 0) {
            throw maskFault(device, address, length, write);
        }
        Group group = device.group();
        IommuDomain domain = group == null ? null : group.currentDomain();
        if (domain == null) {
            if (Long.compareUnsigned(last, memory.size()) >= 0) {
                throw fault(device, address, write, "no memory there (memory ends at 0x"
                        + Long.toHexString(memory.size()) + ")");
            }
            move(address, buffer, offset, length, write);
            return;
        }
        int access = write ? IommuProt.WRITE : IommuProt.READ;
        long pageEnd = PhysicalMemory.pageAlignDown(address) + PhysicalMemory.PAGE_OFFSET_MASK;
        boolean onePage = Long.compareUnsigned(last, pageEnd) <= 0;
        long firstPhys = translate(device, group, domain, address, onePage ? last : pageEnd, access, write);
        if (onePage) {
            // the common case: one translation, one copy
            move(firstPhys, buffer, offset, length, write);
            return;
        }
        // every page is checked before a byte moves; a physically contiguous transfer is then one copy
        boolean contiguous = true;
        long expected = firstPhys + (pageEnd - address + 1);
        for (long page = pageEnd + 1; ; page += PhysicalMemory.PAGE_SIZE) {
            long end = page + PhysicalMemory.PAGE_OFFSET_MASK;
            boolean lastPage = Long.compareUnsigned(last, end) <= 0;
            long phys = translate(device, group, domain, page, lastPage ? last : end, access, write);
            contiguous &= phys == expected;
            expected = phys + PhysicalMemory.PAGE_SIZE;
            if (lastPage) {
                break;
            }
        }
        if (contiguous) {
            move(firstPhys, buffer, offset, length, write);
            return;
        }
        long runBus = address;
        long runPhys = firstPhys;
        long runLength = 0;
        for (long at = address; ; ) {
            long chunkEnd = PhysicalMemory.pageAlignDown(at) + PhysicalMemory.PAGE_OFFSET_MASK;
            boolean lastPage = Long.compareUnsigned(last, chunkEnd) <= 0;
            if (lastPage) {
                chunkEnd = last;
            }
            long phys = at == address ? runPhys : group.translate(domain, at, access);
            if (phys < 0) {
                throw fault(device, at, write, "unmapped during the access");
            }
            if (phys != runPhys + runLength) {
                move(runPhys, buffer, offset + (int) (runBus - address), (int) runLength, write);
                runBus = at;
                runPhys = phys;
                runLength = 0;
            }
            runLength += chunkEnd - at + 1;
            if (lastPage) {
                break;
            }
            at = chunkEnd + 1;
        }
        move(runPhys, buffer, offset + (int) (runBus - address), (int) runLength, write);
    }

    /**
     * Translates the page of {@code at} for the access, faulting as the IOMMU would: not mapped, not allowed, the
     * driver failed, or a translation outside memory.
     *
     * @param at the first byte of the access in this page
     * @param chunkEnd the last byte of the access in this page
     * @return the physical address of {@code at}
     */
    private long translate(BusDevice device, Group group, IommuDomain domain, long at, long chunkEnd, int access,
            boolean write) {
        long phys = group.translate(domain, at, access);
        if (phys < 0) {
            throw fault(device, at, write, phys == IommuDomain.FAULT_PERMISSION
                    ? "mapping does not allow " + (write ? "writes" : "reads")
                    : phys == Group.FAULT_DRIVER_ERROR ? "the IOMMU driver of " + group.opsOwner() + " failed"
                    : "not mapped");
        }
        if (phys + (chunkEnd - at) >= memory.size()) {
            throw fault(device, at, write, "translates to 0x" + Long.toHexString(phys) + ", outside memory");
        }
        return phys;
    }

    private void move(long phys, byte[] buffer, int offset, int length, boolean write) {
        if (write) {
            memory.write(phys, buffer, offset, length);
        } else {
            memory.read(phys, buffer, offset, length);
        }
    }

    private IommuFaultException fault(BusDevice device, long address, boolean write, String reason) {
        device.countFault();
        faults.increment();
        String message = String.format("iommu fault: DMA %s at bus address 0x%x: %s", write ? "write" : "read",
                address, reason);
        log.log(LogLevel.ERR, device.logPrefix() + ": " + message);
        return new IommuFaultException(device.name(), address, write, device.name() + ": " + message);
    }

    /**
     * The fault of a transfer the device cannot put on the bus: it names the first byte beyond the DMA mask
     * (not the start, which may be inside it), or says that the transfer wraps past 2^64.
     */
    private IommuFaultException maskFault(BusDevice device, long address, int length, boolean write) {
        long mask = device.dmaMask();
        long last = address + length - 1;
        String span = String.format(" (the %d-byte transfer starts at 0x%x)", length, address);
        if (Long.compareUnsigned(address, mask) > 0) {
            return fault(device, address, write, String.format("beyond the device's DMA mask 0x%x", mask));
        }
        if (mask != -1L && Long.compareUnsigned(last, mask) > 0) {
            return fault(device, mask + 1, write, String.format("beyond the device's DMA mask 0x%x", mask) + span);
        }
        return fault(device, address, write, String.format("the %d-byte transfer wraps past 2^64", length));
    }
}
