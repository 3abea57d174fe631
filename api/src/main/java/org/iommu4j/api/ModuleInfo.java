package org.iommu4j.api;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A backend's module metadata, what {@code modinfo} shows: read by the loader before anything starts, to
 * check the API version, resolve dependencies, validate parameters and decide taint.
 *
 * @param name the module name; {@code -} and {@code _} are interchangeable when a user names it
 * @param version the backend's own version
 * @param description one line
 * @param author who to ask
 * @param license for example {@code GPL}, {@code Dual MIT/GPL} or {@code Proprietary}; a license the kernel
 *     does not count as GPL-compatible taints it with {@link TaintFlag#PROPRIETARY_MODULE}
 * @param inTree whether the backend is built with iommu4j itself; an out-of-tree one taints
 *     {@link TaintFlag#OOT_MODULE}. This is a claim the loader checks against where the jar came from: a
 *     backend found in a plugin directory is out-of-tree whatever it says here (the kernel, likewise, marks a
 *     module in-tree only when the build that made it says so, not when the module does)
 * @param apiVersions the API versions it runs on
 * @param depends names of modules it needs loaded first
 * @param parameters the parameters it accepts
 */
public record ModuleInfo(String name, String version, String description, String author, String license,
        boolean inTree, ApiVersionRange apiVersions, List<String> depends, List<ParameterSpec> parameters) {

    /**
     * Checks the fields and copies the lists.
     *
     * @param name see the record description
     * @param version see the record description
     * @param description see the record description
     * @param author see the record description
     * @param license see the record description
     * @param inTree see the record description
     * @param apiVersions see the record description
     * @param depends see the record description
     * @param parameters see the record description
     * @throws IllegalArgumentException naming the bad field
     */
    public ModuleInfo {
        if (!validName(name)) {
            throw new IllegalArgumentException("module name '" + name
                    + "' is invalid: use lower case letters, digits, '-' and '_', starting with a letter or digit");
        }
        Objects.requireNonNull(version, "version of module " + name);
        Objects.requireNonNull(description, "description of module " + name);
        Objects.requireNonNull(author, "author of module " + name);
        if (license == null || license.isBlank()) {
            throw new IllegalArgumentException("module " + name + " must declare a license");
        }
        Objects.requireNonNull(apiVersions, "apiVersions of module " + name);
        depends = List.copyOf(depends);
        parameters = List.copyOf(parameters);
        List<String> seen = new ArrayList<>();
        for (ParameterSpec p : parameters) {
            if (seen.contains(p.name())) {
                throw new IllegalArgumentException("module " + name + " declares parameter " + p.name() + " twice");
            }
            seen.add(p.name());
        }
    }

    /**
     * Starts metadata for a module, built against {@link ApiVersion#CURRENT}, out-of-tree unless said otherwise
     * (since 1.2; before, the builder defaulted to in-tree, which let a plugin dodge the out-of-tree taint when
     * loaded by a caller that trusted it).
     *
     * @param name the module name
     * @return a builder
     */
    public static Builder builder(String name) {
        return new Builder(name);
    }

    /**
     * The module name as the kernel keys it: {@code -} becomes {@code _}, so {@code xen-pciback} and
     * {@code xen_pciback} are one module.
     *
     * @param name a module name as a user wrote it
     * @return the normalised name
     */
    public static String normalizeName(String name) {
        return name.replace('-', '_');
    }

    /**
     * The kernel's {@code license_is_gpl_compatible}: GPL, GPL v2, GPL and additional rights, Dual BSD/GPL,
     * Dual MIT/GPL and Dual MPL/GPL. Any other license taints the kernel with
     * {@link TaintFlag#PROPRIETARY_MODULE} when the module loads.
     *
     * @return whether {@link #license()} is one of them
     */
    public boolean licenseIsGplCompatible() {
        return List.of("GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL")
                .contains(license);
    }

    /**
     * @param parameter a parameter name
     * @return its declaration, if the module has one
     */
    public java.util.Optional<ParameterSpec> parameter(String parameter) {
        return parameters.stream().filter(p -> p.name().equals(parameter)).findFirst();
    }

    /** Builds {@link ModuleInfo}. */
    public static final class Builder {
        private final String name;
        private String version = "0.0.0";
        private String description = "";
        private String author = "";
        private String license = "GPL";
        private boolean inTree;
        private ApiVersionRange apiVersions = ApiVersionRange.compatibleWith(ApiVersion.CURRENT);
        private final List<String> depends = new ArrayList<>();
        private final List<ParameterSpec> parameters = new ArrayList<>();

        private Builder(String name) {
            this.name = name;
        }

        /**
         * @param value the backend's version
         * @return this
         */
        public Builder version(String value) {
            this.version = value;
            return this;
        }

        /**
         * @param value one line
         * @return this
         */
        public Builder description(String value) {
            this.description = value;
            return this;
        }

        /**
         * @param value the author
         * @return this
         */
        public Builder author(String value) {
            this.author = value;
            return this;
        }

        /**
         * @param value the license, {@code GPL} by default
         * @return this
         */
        public Builder license(String value) {
            this.license = value;
            return this;
        }

        /**
         * @param value whether the backend ships with iommu4j; false by default (since 1.2). Only backends built
         *     in iommu4j's own repository say true; the loader treats a plugin-directory jar as out-of-tree
         *     whatever it says
         * @return this
         */
        public Builder inTree(boolean value) {
            this.inTree = value;
            return this;
        }

        /**
         * @param value the API versions the backend runs on
         * @return this
         */
        public Builder apiVersions(ApiVersionRange value) {
            this.apiVersions = value;
            return this;
        }

        /**
         * @param module a module to load first
         * @return this
         */
        public Builder depends(String module) {
            this.depends.add(module);
            return this;
        }

        /**
         * @param spec a parameter the module accepts
         * @return this
         */
        public Builder parameter(ParameterSpec spec) {
            this.parameters.add(spec);
            return this;
        }

        /** @return the metadata */
        public ModuleInfo build() {
            return new ModuleInfo(name, version, description, author, license, inTree, apiVersions, depends,
                    parameters);
        }
    }

    /**
     * Lower case letters, digits, '-' and '_', starting with a letter or a digit: checked without a regular
     * expression, whose first use spins lambda classes (milliseconds of a cold JVM's start).
     */
    private static boolean validName(String name) {
        if (name == null || name.isEmpty()) {
            return false;
        }
        for (int i = 0; i < name.length(); i++) {
            char c = name.charAt(i);
            boolean ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
            if (!ok) {
                return false;
            }
        }
        return true;
    }
}
