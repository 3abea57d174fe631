package org.iommu4j.api;

import java.util.List;
import java.util.Optional;

/**
 * The host's kernel command line, for the parameters that belong to no module ({@code swiotlb=force}) and for
 * reading the words themselves. A module's own {@code <module>.<param>} words arrive already parsed in its
 * {@link ModuleParameters}.
 */
public interface KernelCommandLine {

    /** @return the words in order, quotes removed, as {@code /proc/cmdline} splits them */
    List<String> words();

    /**
     * @param key a parameter name, for example {@code swiotlb} or {@code xen-pciback.hide}
     * @return the value of the last word {@code key=value}; an empty string for a bare {@code key}
     */
    Optional<String> get(String key);
}
