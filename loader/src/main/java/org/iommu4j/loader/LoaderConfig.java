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
 * @param pluginUnderTest a jar (or plugin directory) loaded as one more plugin, whose providers are not also
 *     discovered on the class path: a backend project's test loads its packaged jar this way although its
 *     {@code target/classes} on the test class path lists the same provider; or null
 */
public record LoaderConfig(List<Path> pluginDirectories, ClassLoader applicationLoader,
        List<Certificate> trustedCertificates, Path pluginUnderTest) {

    /**
     * Copies the lists.
     *
     * @param pluginDirectories see the record description
     * @param applicationLoader see the record description
     * @param trustedCertificates see the record description
     * @param pluginUnderTest see the record description
     */
    public LoaderConfig {
        pluginDirectories = List.copyOf(pluginDirectories);
        trustedCertificates = List.copyOf(trustedCertificates);
    }

    /**
     * @param pluginDirectories see the record description
     * @param applicationLoader see the record description
     * @param trustedCertificates see the record description
     */
    public LoaderConfig(List<Path> pluginDirectories, ClassLoader applicationLoader,
            List<Certificate> trustedCertificates) {
        this(pluginDirectories, applicationLoader, trustedCertificates, null);
    }

    /** @return the class path of this library's class loader, no plugin directory, no trusted key */
    public static LoaderConfig classPathOnly() {
        return new LoaderConfig(List.of(), LoaderConfig.class.getClassLoader(), List.of());
    }

    /**
     * The testing mode: the class path (the in-tree backends, and whatever the test's class path holds) plus one
     * plugin jar, loaded as the plugin directory would load it (out-of-tree, its own class loader), without the
     * class-path copies of its providers; see {@link #pluginUnderTest()}.
     *
     * @param jar the backend's packaged jar, for example {@code target/my-backend-1.0.jar}
     * @return the configuration
     */
    public static LoaderConfig testing(Path jar) {
        return classPathOnly().withPluginUnderTest(jar);
    }

    /**
     * @param directories plugin directories to search as well
     * @return a copy that also searches them
     */
    public LoaderConfig withPluginDirectories(Path... directories) {
        return new LoaderConfig(List.of(directories), applicationLoader, trustedCertificates, pluginUnderTest);
    }

    /**
     * @param certificates signers to trust
     * @return a copy that trusts them
     */
    public LoaderConfig withTrustedCertificates(List<Certificate> certificates) {
        return new LoaderConfig(pluginDirectories, applicationLoader, certificates, pluginUnderTest);
    }

    /**
     * @param jar the plugin under test; see {@link #pluginUnderTest()}
     * @return a copy that loads it
     */
    public LoaderConfig withPluginUnderTest(Path jar) {
        return new LoaderConfig(pluginDirectories, applicationLoader, trustedCertificates, jar);
    }
}
