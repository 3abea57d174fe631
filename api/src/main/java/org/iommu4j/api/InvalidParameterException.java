package org.iommu4j.api;

/**
 * A module or kernel parameter that is unknown ({@link Errno#ENOENT}, as the kernel's {@code parse_args}
 * returns for it) or whose value does not parse ({@link Errno#EINVAL}).
 */
public class InvalidParameterException extends IommuException {
    private static final long serialVersionUID = 1L;

    private final String parameter;

    /**
     * @param parameter the parameter's full name as given, for example {@code noiommu.enable_unsafe_noiommu_mode}
     * @param message what was wrong and what would be valid
     */
    public InvalidParameterException(String parameter, String message) {
        this(Errno.EINVAL, parameter, message);
    }

    /**
     * @param errno {@link Errno#ENOENT} for an unknown parameter, {@link Errno#EINVAL} for a bad value,
     *     {@link Errno#EPERM} for a parameter that cannot change after load
     * @param parameter the parameter's full name as given
     * @param message what was wrong and what would be valid
     */
    public InvalidParameterException(Errno errno, String parameter, String message) {
        super(errno, message);
        this.parameter = parameter;
    }

    /** @return the parameter's name as given */
    public String parameter() {
        return parameter;
    }
}
