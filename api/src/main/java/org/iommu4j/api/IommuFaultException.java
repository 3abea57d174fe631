package org.iommu4j.api;

/**
 * A device's DMA that the translation in force refused: an IOMMU fault. The kernel logged and counted it, and
 * no byte of the access reached memory.
 */
public class IommuFaultException extends IommuException {
    private static final long serialVersionUID = 1L;

    private final String device;
    private final long address;
    private final boolean write;

    /**
     * @param device the device's name ({@code 0000:06:0d.0})
     * @param address the first bus address of the access that faulted
     * @param write whether the device was writing (else reading)
     * @param message the fault report
     */
    public IommuFaultException(String device, long address, boolean write, String message) {
        super(Errno.EFAULT, message);
        this.device = device;
        this.address = address;
        this.write = write;
    }

    /** @return the name of the device whose access faulted */
    public String device() {
        return device;
    }

    /** @return the bus address (iova) that faulted */
    public long address() {
        return address;
    }

    /** @return true for a DMA write, false for a DMA read */
    public boolean isWrite() {
        return write;
    }
}
