package org.iommu4j.kernel.bus;

/**
 * Where a device's bus-master accesses go: the host routes each through the translation in force for the
 * device. Implemented by the kernel's DMA engine; a device model only calls {@link BusDevice#dmaWrite} and
 * {@link BusDevice#dmaRead}.
 */
public interface DmaPort {

    /**
     * @param device the device writing
     * @param busAddress first bus address
     * @param src bytes
     * @param offset first index in {@code src}
     * @param length bytes to write
     */
    void write(BusDevice device, long busAddress, byte[] src, int offset, int length);

    /**
     * @param device the device reading
     * @param busAddress first bus address
     * @param dst destination
     * @param offset first index in {@code dst}
     * @param length bytes to read
     */
    void read(BusDevice device, long busAddress, byte[] dst, int offset, int length);
}
