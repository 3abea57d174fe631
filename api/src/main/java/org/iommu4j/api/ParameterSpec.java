package org.iommu4j.api;

import java.util.regex.Pattern;

/**
 * A module parameter a backend declares, the kernel's {@code module_param} plus {@code MODULE_PARM_DESC}.
 * Values come from the load call and from the kernel command line ({@code <module>.<name>=<value>}), are
 * checked against {@link #type()}, and can be changed later through the host when {@link #writable()}.
 *
 * @param name the parameter's name, lower case, digits and underscores
 * @param type how values parse
 * @param defaultValue the value when none is given, in any form {@code type} accepts
 * @param description one line for {@code modinfo}
 * @param writable whether the value may change after load (sysfs mode 0644 rather than 0444)
 */
public record ParameterSpec(String name, ParameterType type, String defaultValue, String description,
        boolean writable) {

    private static final Pattern NAME = Pattern.compile("[a-z0-9_]+");

    /**
     * Checks the name and that the default parses.
     *
     * @param name see the record description
     * @param type see the record description
     * @param defaultValue see the record description
     * @param description see the record description
     * @param writable see the record description
     * @throws IllegalArgumentException for a bad name, a missing field or a default the type refuses
     */
    public ParameterSpec {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new IllegalArgumentException(
                    "parameter name '" + name + "' is invalid: use lower case letters, digits and underscores");
        }
        if (type == null || defaultValue == null || description == null) {
            throw new IllegalArgumentException("parameter " + name + " needs a type, a default and a description");
        }
        try {
            type.normalize(name, defaultValue);
        } catch (InvalidParameterException e) {
            throw new IllegalArgumentException("default of parameter " + name + " is invalid: " + e.getMessage(), e);
        }
    }

    /** @return how {@code modinfo} prints it: {@code name:description (type)} */
    public String modinfoLine() {
        String kind = type == ParameterType.STRING ? "charp" : type.name().toLowerCase(java.util.Locale.ROOT);
        return name + ":" + description + " (" + kind + ")";
    }
}
