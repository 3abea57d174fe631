package org.iommu4j.loader;

import java.util.Optional;
import org.iommu4j.api.ModuleInfo;

/**
 * A backend the loader found.
 *
 * @param name its module name, normalised ({@code -} as {@code _})
 * @param className the provider class
 * @param origin {@code class path}, or the plugin's jar or directory
 * @param inTree found on the class path rather than in a plugin directory
 * @param signed signed by a trusted key (in-tree backends count as signed)
 * @param info its metadata, or null when it was refused before being instantiated
 * @param refusal why it cannot be loaded (an incompatible API), if it cannot
 */
public record BackendCandidate(String name, String className, String origin, boolean inTree, boolean signed,
        ModuleInfo info, String refusal) {

    /** @return the metadata, if the provider was instantiated */
    public Optional<ModuleInfo> metadata() {
        return Optional.ofNullable(info);
    }

    /** @return whether it can be loaded */
    public boolean loadable() {
        return refusal == null;
    }
}
