package org.iommu4j.loader;

import java.nio.file.Path;
import java.security.cert.Certificate;
import java.util.List;

/**
 * Where the loader looks and whom it trusts.
 *
 * @param pluginDirectories directories of out-of-tree backends: each sub-directory (all its jars) or each jar
 *     directly inside is one backend
 * @param applicationLoader the class loader whose class path holds the in-tree backends, or null for none
 * @param trustedCertificates signers whose signed plugin jars count as signed (the kernel's keyring)
 */
public record LoaderConfig(List<Path> pluginDirectories, ClassLoader applicationLoader,
        List<Certificate> trustedCertificates) {

    /**
     * Copies the lists.
     *
     * @param pluginDirectories see the record description
     * @param applicationLoader see the record description
     * @param trustedCertificates see the record description
     */
    public LoaderConfig {
        pluginDirectories = List.copyOf(pluginDirectories);
        trustedCertificates = List.copyOf(trustedCertificates);
    }

    /** @return the class path of this library's class loader, no plugin directory, no trusted key */
    public static LoaderConfig classPathOnly() {
        return new LoaderConfig(List.of(), LoaderConfig.class.getClassLoader(), List.of());
    }

    /**
     * @param directories plugin directories to search as well
     * @return a copy that also searches them
     */
    public LoaderConfig withPluginDirectories(Path... directories) {
        return new LoaderConfig(List.of(directories), applicationLoader, trustedCertificates);
    }

    /**
     * @param certificates signers to trust
     * @return a copy that trusts them
     */
    public LoaderConfig withTrustedCertificates(List<Certificate> certificates) {
        return new LoaderConfig(pluginDirectories, applicationLoader, certificates);
    }
}
