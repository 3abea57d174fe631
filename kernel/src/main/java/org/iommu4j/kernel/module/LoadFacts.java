package org.iommu4j.kernel.module;

import org.iommu4j.api.ModuleInfo;

/**
 * What the loader knows about a module's file that its metadata does not say.
 *
 * @param origin where it came from, for messages ({@code class path} or a jar's path)
 * @param signed whether its signature checked out against a trusted key (in-tree modules count as signed)
 * @param contextLoader the class loader to make the thread's context class loader around every call into the
 *     module (an out-of-tree plugin's), or null for none
 * @param info the metadata the loader read from the provider (once, when it found it) and decided on, such as
 *     in-tree or out-of-tree by where the jar came from; the kernel uses it instead of asking the provider
 *     again; null to ask the provider
 */
public record LoadFacts(String origin, boolean signed, ClassLoader contextLoader, ModuleInfo info) {

    /**
     * @param origin where it came from
     * @param signed whether it is signed by a trusted key
     * @param contextLoader the context class loader for calls into the module, or null
     */
    public LoadFacts(String origin, boolean signed, ClassLoader contextLoader) {
        this(origin, signed, contextLoader, null);
    }

    /**
     * @param origin where it came from
     * @param signed whether it is signed by a trusted key
     */
    public LoadFacts(String origin, boolean signed) {
        this(origin, signed, null);
    }

    /** @return facts for a module built with iommu4j and found on the class path */
    public static LoadFacts inTree() {
        return new LoadFacts("class path", true);
    }
}
