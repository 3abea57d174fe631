package org.iommu4j.api;

/**
 * The kernel error numbers iommu4j uses, with their Linux values and {@code strerror} texts. An
 * {@link IommuException} carries one, so a caller can react the way a C program reacts to {@code -errno}.
 */
public enum Errno {
    /** Operation not permitted: a capability such as CAP_SYS_RAWIO is missing. */
    EPERM(1, "Operation not permitted"),
    /** No such file or directory: an unknown symbol, module or node. */
    ENOENT(2, "No such file or directory"),
    /** No such process: the process has exited. */
    ESRCH(3, "No such process"),
    /** Input/output error. */
    EIO(5, "Input/output error"),
    /** No such device or address. */
    ENXIO(6, "No such device or address"),
    /** Exec format error: a module that cannot be loaded as it is built. */
    ENOEXEC(8, "Exec format error"),
    /** Bad file descriptor: a file that was closed. */
    EBADF(9, "Bad file descriptor"),
    /** Resource temporarily unavailable; the kernel's EWOULDBLOCK for a module in use. */
    EAGAIN(11, "Resource temporarily unavailable"),
    /** Cannot allocate memory. */
    ENOMEM(12, "Cannot allocate memory"),
    /** Bad address: a device access the IOMMU refused, or an address outside memory. */
    EFAULT(14, "Bad address"),
    /** Device or resource busy. */
    EBUSY(16, "Device or resource busy"),
    /** File exists: an overlapping mapping, a duplicate registration. */
    EEXIST(17, "File exists"),
    /** No such device: a device that was removed, or no driver for a request. */
    ENODEV(19, "No such device"),
    /** Invalid argument. */
    EINVAL(22, "Invalid argument"),
    /** Inappropriate ioctl for device: an operation this backend does not offer. */
    ENOTTY(25, "Inappropriate ioctl for device"),
    /** No space left on device: a table or id space is full. */
    ENOSPC(28, "No space left on device"),
    /** Argument out of domain / range. */
    ERANGE(34, "Numerical result out of range"),
    /** Operation not supported. */
    EOPNOTSUPP(95, "Operation not supported"),
    /** Key was rejected by service: an unsigned module under signature enforcement. */
    EKEYREJECTED(129, "Key was rejected by service");

    private final int number;
    private final String description;

    Errno(int number, String description) {
        this.number = number;
        this.description = description;
    }

    /** @return the Linux value, positive (a syscall returns its negation) */
    public int number() {
        return number;
    }

    /** @return the {@code strerror} text */
    public String description() {
        return description;
    }

    /**
     * The kernel's name for {@link #EAGAIN} where it means "in use": {@code EWOULDBLOCK} is the same number.
     *
     * @return {@link #EAGAIN}
     */
    public static Errno ewouldblock() {
        return EAGAIN;
    }
}
