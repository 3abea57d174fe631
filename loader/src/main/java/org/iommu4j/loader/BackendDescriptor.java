package org.iommu4j.loader;

import org.iommu4j.api.BackendProvider;
import org.iommu4j.api.ModuleInfo;

/**
 * What the loader knows about one backend after reading it once: its manifest and the one answer of its
 * provider's {@code info()}, with the facts the loader decided for itself (in-tree or not, from where the jar
 * came from; signed or not). Everything later (listing, modinfo, load) uses this record, never the provider's
 * {@code info()} again, so that a provider whose answer changes between calls is seen one way only.
 *
 * @param name the module name, normalised
 * @param className the provider class, or {@code (not instantiated)}
 * @param origin {@code class path}, or the plugin's jar or directory
 * @param location the jar or directory the provider came from, for messages
 * @param fromPlugin found in a plugin directory (or given as the plugin under test)
 * @param signed signed by a trusted key (class-path backends count as signed)
 * @param info the metadata as read once, {@code inTree} decided by the loader; null when not instantiated
 * @param refusal why it cannot be loaded, or null
 * @param provider the provider, or null when refused
 * @param plugin the plugin it came from, or null for the class path
 */
record BackendDescriptor(String name, String className, String origin, String location, boolean fromPlugin,
        boolean signed, ModuleInfo info, String refusal, BackendProvider provider, Plugin plugin) {

    /** @return whether it can be loaded */
    boolean loadable() {
        return refusal == null;
    }

    /** @return a class and where it came from, for messages */
    String describe() {
        return className + " (" + location + ")";
    }
}
