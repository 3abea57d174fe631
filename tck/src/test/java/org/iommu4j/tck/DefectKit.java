package org.iommu4j.tck;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import org.iommu4j.api.ApiVersion;
import org.iommu4j.api.BackendProvider;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * The kit on {@link ReferenceBackend} with the defect named by the configuration parameter {@value #DEFECT} (none:
 * the correct backend). Run only through the JUnit Platform test kit; a nested class, so that surefire does not
 * run it on its own.
 */
@ExtendWith(DefectKit.DefectResolver.class)
class DefectKit extends BackendCompatibilityKit {
    static final String DEFECT = "iommu4j.tck.defect";
    private final ReferenceBackend.Defect defect;
    private Path jar;

    DefectKit(ReferenceBackend.Defect defect) {
        this.defect = defect;
    }

    /** Resolves the constructor's defect from the configuration parameter. */
    static final class DefectResolver implements ParameterResolver {
        @Override
        public boolean supportsParameter(ParameterContext p, ExtensionContext e) {
            return p.getParameter().getType() == ReferenceBackend.Defect.class;
        }

        @Override
        public Object resolveParameter(ParameterContext p, ExtensionContext e) {
            return e.getConfigurationParameter(DEFECT).filter(s -> !s.isEmpty()).map(ReferenceBackend.Defect::valueOf)
                    .orElse(null);
        }
    }

    @Override
    protected BackendProvider createProvider() {
        return new ReferenceBackend(defect);
    }

    @Override
    protected BackendClaims claims() {
        return ReferenceBackend.claims(defect);
    }

    /** A jar as the backend's build would make it: services file and manifest (no classes: the kit reads those two). */
    @Override
    protected Optional<Path> builtJar() {
        if (jar == null) {
            try {
                jar = Files.createTempFile("tck-test-backend", ".jar");
                jar.toFile().deleteOnExit();
                Manifest m = new Manifest();
                m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
                m.getMainAttributes().putValue(ApiVersion.MANIFEST_ATTRIBUTE, ApiVersion.CURRENT.toString());
                m.getMainAttributes().putValue("Iommu4j-Backend-Name",
                        defect == ReferenceBackend.Defect.MANIFEST_NAME ? "tck-other" : "tck-test");
                try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), m)) {
                    if (defect != ReferenceBackend.Defect.NO_SERVICE_FILE) {
                        out.putNextEntry(new JarEntry("META-INF/services/" + BackendProvider.class.getName()));
                        out.write((ReferenceBackend.class.getName() + "\n").getBytes(StandardCharsets.UTF_8));
                        out.closeEntry();
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return Optional.of(jar);
    }
}
