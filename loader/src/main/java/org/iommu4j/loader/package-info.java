/**
 * The {@code modprobe} of iommu4j: finds backends on the class path and in plugin directories, each plugin in
 * a class loader of its own that sees only the JDK and the api; picks one by name; checks its API version
 * before instantiating it; loads what it depends on first; and hands it to the host's kernel, which taints
 * for what it is.
 */
package org.iommu4j.loader;
