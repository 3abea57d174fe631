package org.iommu4j.loader;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Path;
import java.security.CodeSigner;
import java.security.cert.Certificate;
import java.util.Enumeration;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * Whether a plugin jar is signed by a trusted key: every entry outside {@code META-INF} must be signed, and
 * one of its signers' certificates must be trusted — the module-signing check of the kernel, for jars.
 */
final class JarSignatures {
    private JarSignatures() {
    }

    static boolean signedByTrustedKey(Path jar, List<Certificate> trusted) {
        if (trusted.isEmpty()) {
            return false;
        }
        try (JarFile file = new JarFile(jar.toFile(), true)) {
            Enumeration<JarEntry> entries = file.entries();
            byte[] buffer = new byte[8192];
            boolean any = false;
            while (entries.hasMoreElements()) {
                JarEntry e = entries.nextElement();
                if (e.isDirectory() || e.getName().startsWith("META-INF/")) {
                    continue;
                }
                try (InputStream in = file.getInputStream(e)) {
                    while (in.read(buffer) >= 0) {
                        // reading the entry whole is what verifies its digest
                    }
                }
                CodeSigner[] signers = e.getCodeSigners();
                if (signers == null || !trustedAmong(signers, trusted)) {
                    return false;
                }
                any = true;
            }
            return any;
        } catch (IOException | SecurityException e) {
            return false;
        }
    }

    private static boolean trustedAmong(CodeSigner[] signers, List<Certificate> trusted) {
        for (CodeSigner s : signers) {
            for (Certificate c : s.getSignerCertPath().getCertificates()) {
                if (trusted.contains(c)) {
                    return true;
                }
            }
        }
        return false;
    }
}
