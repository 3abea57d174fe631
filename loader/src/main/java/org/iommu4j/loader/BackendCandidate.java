package org.iommu4j.loader;

import java.util.Optional;
import org.iommu4j.api.ModuleInfo;

/**
 * A backend the loader found, as {@code iommuctl backends} lists it.
 *
 * @param name its module name, normalised ({@code -} as {@code _})
 * @param className the provider class
 * @param origin {@code class path}, or the plugin's jar or directory
 * @param inTree counted as in-tree: found on the class path and saying so; a plugin-directory backend is
 *     out-of-tree whatever its metadata says
 * @param signed signed by a trusted key (in-tree backends count as signed)
 * @param info its metadata as the loader read it once (with {@code inTree} as decided here), or null when it
 *     was refused before being instantiated
 * @param refusal why it cannot be loaded (an incompatible API), if it cannot
 * @param standing how it stands against other backends of the same name
 * @param other for {@link Standing#OVERRIDES} the origin of the backend it overrides, for
 *     {@link Standing#OVERRIDDEN} the origin of the one that overrides it, for {@link Standing#DUPLICATE} the
 *     origins of the others; else null
 */
public record BackendCandidate(String name, String className, String origin, boolean inTree, boolean signed,
        ModuleInfo info, String refusal, Standing standing, String other) {

    /** How a backend stands against others of the same name, as depmod ranks a module in {@code updates/}. */
    public enum Standing {
        /** The only backend of its name (or the only loadable one): loading the name loads it. */
        ONLY,
        /**
         * A plugin with the name of a class-path backend: loading the name loads the plugin, which taints O as
         * any out-of-tree module, as a module in the kernel's {@code updates/} directory overrides the one that
         * shipped with the kernel.
         */
        OVERRIDES,
        /** A class-path backend a plugin of the same name overrides; it is not loaded while the plugin is there. */
        OVERRIDDEN,
        /** One of several backends of the same name at the same precedence: the name loads none of them. */
        DUPLICATE
    }

    /** @return the metadata, if the provider was instantiated */
    public Optional<ModuleInfo> metadata() {
        return Optional.ofNullable(info);
    }

    /** @return whether it can be loaded at all (its API is compatible); see {@link #standing()} for by-name */
    public boolean loadable() {
        return refusal == null;
    }

    /** @return whether loading its name loads this backend */
    public boolean selected() {
        return loadable() && (standing == Standing.ONLY || standing == Standing.OVERRIDES);
    }

    /**
     * @return what {@code iommuctl backends} prints: {@code ok}, {@code overrides in-tree <origin>},
     *     {@code overridden by <origin>}, {@code duplicate name (also <origins>)} or the refusal
     */
    public String status() {
        if (!loadable()) {
            return refusal;
        }
        return switch (standing) {
            case ONLY -> "ok";
            case OVERRIDES -> "overrides in-tree " + other;
            case OVERRIDDEN -> "overridden by " + other;
            case DUPLICATE -> "duplicate name (also " + other + ")";
        };
    }
}
