package org.iommu4j.loader;

/**
 * A plugin the loader could not read: its path and what went wrong. It hides no other backend.
 *
 * @param path the jar or directory
 * @param cause what went wrong
 */
public record BrokenPlugin(String path, String cause) {
}
