package org.iommu4j.api;

/**
 * A failure of a kernel operation, with the errno the kernel would return and a message that names the
 * input and what would be valid. Unchecked, like every failure in this API; the state the operation touched
 * is left as it was before the call unless the subclass says otherwise.
 */
public class IommuException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final Errno errno;

    /**
     * @param errno the kernel's error number for this failure
     * @param message what was asked, why it failed, and what would be valid
     */
    public IommuException(Errno errno, String message) {
        super(message);
        this.errno = java.util.Objects.requireNonNull(errno, "errno");
    }

    /**
     * @param errno the kernel's error number for this failure
     * @param message what was asked, why it failed, and what would be valid
     * @param cause the underlying failure
     */
    public IommuException(Errno errno, String message, Throwable cause) {
        super(message, cause);
        this.errno = java.util.Objects.requireNonNull(errno, "errno");
    }

    /** @return the errno a syscall would return (negated) for this failure */
    public Errno errno() {
        return errno;
    }

    /** @return the class, the errno name and the message */
    @Override
    public String toString() {
        return getClass().getName() + ": " + errno + ": " + getMessage();
    }
}
