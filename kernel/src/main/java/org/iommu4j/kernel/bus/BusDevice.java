package org.iommu4j.kernel.bus;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;
import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.kernel.dma.DmaOpsBinding;
import org.iommu4j.kernel.iommu.Group;

/**
 * A device on a simulated bus. A device model drives it with {@link #dmaWrite} and {@link #dmaRead}, which go
 * through whatever translation the host has in force for it. The kernel's cores keep their per-device state
 * here (group, DMA ops, bound driver) so that the DMA hot path reads fields, not maps.
 */
public abstract sealed class BusDevice implements Device permits PciDevice, PlatformDevice {
    /**
     * Loads {@link Group} with this class. The DMA API asks every device for its group on every call, and the JIT
     * compiler does not inline {@link #group()} while its return type is not loaded ("unloaded signature
     * classes"), which it is not on a host without an IOMMU, where no group is ever made: the call then cost
     * dma-direct's map+unmap about 4 ns of its 23 (bench row 1).
     */
    @SuppressWarnings("unused")
    private static final Class<Group> GROUP_LOADED = Group.class;
    private final String name;
    private final BusType bus;
    private final DmaPort port;
    private final long minAlignMask;
    private final long segmentBoundaryMask;
    private final long busDmaLimit;
    private final AtomicLong faults = new AtomicLong();
    private volatile long dmaMask;
    private volatile boolean failIommu;
    private volatile long coherentDmaMask;
    private volatile boolean present = true;
    private volatile Group group;
    private volatile DmaOpsBinding dmaOps;
    private volatile String driver;
    private volatile Object iommuPrivate;
    private volatile Object dmaApiPrivate;
    private volatile boolean pci32BitWorkaround;

    BusDevice(String name, BusType bus, DmaPort port, long dmaMask, long coherentDmaMask, long busDmaLimit,
            long minAlignMask, long segmentBoundaryMask) {
        this.name = name;
        this.bus = bus;
        this.port = Objects.requireNonNull(port);
        this.dmaMask = dmaMask;
        this.coherentDmaMask = coherentDmaMask;
        this.busDmaLimit = busDmaLimit;
        this.minAlignMask = minAlignMask;
        this.segmentBoundaryMask = segmentBoundaryMask;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public BusType bus() {
        return bus;
    }

    @Override
    public long dmaMask() {
        return dmaMask;
    }

    @Override
    public long coherentDmaMask() {
        return coherentDmaMask;
    }

    @Override
    public long busDmaLimit() {
        return busDmaLimit;
    }

    @Override
    public long minAlignMask() {
        return minAlignMask;
    }

    @Override
    public long segmentBoundaryMask() {
        return segmentBoundaryMask;
    }

    @Override
    public boolean isPresent() {
        return present;
    }

    /**
     * The kernel's {@code dma_set_mask_and_coherent}: what the driver tells the kernel the device can reach.
     *
     * @param mask the new mask for streaming and coherent DMA
     */
    public void setDmaMask(long mask) {
        this.dmaMask = mask;
        this.coherentDmaMask = mask;
    }

    /**
     * The device writes memory at a bus address (a DMA write, bus mastering).
     *
     * @param busAddress the first bus address
     * @param src the bytes
     * @throws org.iommu4j.api.IommuFaultException if the translation refuses any byte: nothing is written
     * @throws org.iommu4j.api.IommuException {@link org.iommu4j.api.Errno#ENODEV} once the device is removed
     */
    public void dmaWrite(long busAddress, byte[] src) {
        port.write(this, busAddress, src, 0, src.length);
    }

    /**
     * @param busAddress the first bus address
     * @param src the bytes
     * @param offset first index in {@code src}
     * @param length bytes to write
     * @see #dmaWrite(long, byte[])
     */
    public void dmaWrite(long busAddress, byte[] src, int offset, int length) {
        port.write(this, busAddress, src, offset, length);
    }

    /**
     * The device reads memory at a bus address (a DMA read).
     *
     * @param busAddress the first bus address
     * @param length bytes
     * @return the bytes
     * @throws org.iommu4j.api.IommuFaultException if the translation refuses any byte
     */
    public byte[] dmaRead(long busAddress, int length) {
        if (length < 0) { // a typed error, not NegativeArraySizeException
            throw new org.iommu4j.api.IommuException(org.iommu4j.api.Errno.EINVAL, "DMA read length " + length
                    + " is invalid: expected 0 to " + org.iommu4j.api.AddressRange.MAX_ARRAY_LENGTH + " bytes");
        }
        byte[] dst = new byte[length];
        port.read(this, busAddress, dst, 0, length);
        return dst;
    }

    /**
     * @param busAddress the first bus address
     * @param dst destination
     * @param offset first index in {@code dst}
     * @param length bytes
     * @see #dmaRead(long, int)
     */
    public void dmaRead(long busAddress, byte[] dst, int offset, int length) {
        port.read(this, busAddress, dst, offset, length);
    }

    /** @return how many of this device's DMA accesses faulted */
    public long faultCount() {
        return faults.get();
    }

    /** Counts a fault; for the DMA engine. */
    public void countFault() {
        faults.incrementAndGet();
    }

    /** @return the device's iommu group, or null; for the kernel's cores */
    public Group group() {
        return group;
    }

    /** @param group the device's group, or null; set by the iommu core only */
    public void setGroup(Group group) {
        this.group = group;
    }

    /** @return the device's own DMA ops, or null; for the DMA API */
    public DmaOpsBinding dmaOps() {
        return dmaOps;
    }

    /** @param binding the device's own DMA ops, or null; set by the DMA API only */
    public void setDmaOps(DmaOpsBinding binding) {
        this.dmaOps = binding;
    }

    /**
     * The powerpc per-device {@code fail_iommu} switch: whether the host's {@code fail_iommu} fault-injection
     * attribute may fail this device's DMA API maps and coherent allocations.
     *
     * @param enabled on or off (off at boot)
     */
    public void setFailIommu(boolean enabled) {
        this.failIommu = enabled;
    }

    /** @return whether {@code fail_iommu} applies to this device */
    public boolean failIommu() {
        return failIommu;
    }

    /** @return the DMA API's per-device record of live mappings, or null before the device's first call */
    public Object dmaApiPrivate() {
        return dmaApiPrivate;
    }

    /** @param data the DMA API's per-device record; set by the DMA API only */
    public void setDmaApiPrivate(Object data) {
        this.dmaApiPrivate = data;
    }

    /** @return the IOMMU driver's private data ({@code dev_iommu_priv_get}), or null */
    public Object iommuPrivate() {
        return iommuPrivate;
    }

    /** @param data the IOMMU driver's private data, or null; set by the iommu core only */
    public void setIommuPrivate(Object data) {
        this.iommuPrivate = data;
    }

    /**
     * @return whether iommu-dma still tries IOVAs below 4 GiB first for this device
     *     ({@code dev->iommu->pci_32bit_workaround})
     */
    public boolean pci32BitWorkaround() {
        return pci32BitWorkaround;
    }

    /** @param on the 32-bit-first flag; set by iommu-dma only */
    public void setPci32BitWorkaround(boolean on) {
        this.pci32BitWorkaround = on;
    }

    /** @return the name of the bound driver, or null */
    public String driver() {
        return driver;
    }

    void setDriver(String driver) {
        this.driver = driver;
    }

    void markRemoved() {
        present = false;
    }

    /**
     * The {@code dev_printk} prefix: the bound driver's name, or the bus's when none is bound, then the
     * device's name, for example {@code vfio-pci 0000:00:07.0}.
     *
     * @return the prefix, without the colon
     */
    public String logPrefix() {
        String d = driver;
        return (d != null ? d : bus.sysfsName()) + " " + name;
    }

    @Override
    public String toString() {
        return name;
    }
}
