package org.iommu4j.loader;

/**
 * A plugin the loader could not read: its path and what went wrong. It hides no other backend.
 *
 * @param path the plugin's jar or directory; for a class-path entry, the jar its class or services file came
 *     from ({@code class path} when the error names neither)
 * @param cause what went wrong
 */
public record BrokenPlugin(String path, String cause) {
}
