package org.iommu4j.api;

/**
 * A loaded module's parameters: the values it was given (or their defaults), in normal form, and
 * notification when one changes at run time.
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
     * @param name a declared INT, UINT or LONG parameter
     * @return its value
     */
    default long getLong(String name) {
        return Long.parseLong(get(name));
    }

    /**
     * Subscribes to run-time changes of this module's parameters.
     *
     * @param listener the listener
     */
    void addListener(ParameterListener listener);
}
