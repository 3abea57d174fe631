package org.iommu4j.api;

/** Told when one of a module's parameters changes after load. */
@FunctionalInterface
public interface ParameterListener {

    /**
     * A parameter is changing. Throw to refuse the change: the old value stays.
     *
     * @param name the parameter's name (without the module prefix)
     * @param oldValue the value before, in normal form
     * @param newValue the value after, in normal form
     * @throws IommuException to refuse the change
     */
    void parameterChanged(String name, String oldValue, String newValue);
}
