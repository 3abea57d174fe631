package org.iommu4j.api;

/**
 * A loaded module's parameters: the values it was given (or their defaults), in normal form, and
 * notification when one changes at run time. Names match as the kernel matches them: {@code -} and {@code _}
 * are the same character.
 */
public interface ModuleParameters {

    /**
     * @param name a declared parameter
     * @return its current value in normal form (see {@link ParameterType#normalize})
     * @throws InvalidParameterException if the module declared no such parameter
     */
    String get(String name);

    /**
     * @param name a declared BOOL parameter
     * @return its value
     */
    default boolean getBool(String name) {
        return "Y".equals(get(name));
    }

    /**
     * @param name a declared INT, UINT, LONG or ULONG parameter
     * @return its value; a ULONG above {@link Long#MAX_VALUE} comes back as the same 64 bits, as C's
     *     {@code unsigned long} would (read it with {@link Long#toUnsignedString(long)} or compare it with
     *     {@link Long#compareUnsigned})
     */
    default long getLong(String name) {
        String value = get(name);
        return value.startsWith("-") ? Long.parseLong(value) : Long.parseUnsignedLong(value);
    }

    /**
     * Subscribes to run-time changes of this module's parameters.
     *
     * @param listener the listener
     */
    void addListener(ParameterListener listener);
}
