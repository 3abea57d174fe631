package org.iommu4j.kernel.sysfs;

/**
 * A file or a symbolic link in the sysfs view.
 *
 * @param path absolute path
 * @param content the file's text, or the link's target (relative, as {@code readlink} prints it)
 * @param link whether this is a symbolic link
 */
public record SysfsNode(String path, String content, boolean link) {
}
