package org.iommu4j.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's first command in a fresh copy of the repository: {@code ./iommuctl demo} builds the runnable jar
 * (nothing is built in the copy yet) and prints the comparison table.
 */
class LauncherTest {
    private static final Path ROOT = Path.of("..").toAbsolutePath().normalize();

    @Test
    void theLauncherBuildsTheJarInAFreshCopyAndRunsTheDemo(@TempDir Path copy) throws Exception {
        copySources(ROOT, copy);
        assertThat(copy.resolve("cli/target")).doesNotExist();

        Process p = new ProcessBuilder("bash", copy.resolve("iommuctl").toString(), "demo")
                .directory(copy.toFile())
                .redirectErrorStream(false)
                .start();
        Path errors = copy.resolve("launcher-stderr.txt");
        Thread drain = new Thread(() -> {
            try {
                Files.copy(p.getErrorStream(), errors, StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException e) {
                // the assertion on stdout says what went wrong
            }
        });
        drain.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor(8, TimeUnit.MINUTES)).isTrue();
        drain.join();
        assertThat(p.exitValue()).as("stderr: %s", Files.exists(errors) ? Files.readString(errors) : "").isZero();
        assertThat(out).startsWith("iommu4j demo on the embedded host")
                .contains("backend  VFIO type")
                .containsPattern("xen +VFIO_TYPE1v2_IOMMU\\(3\\) +/dev/vfio/0 +yes");
        assertThat(copy.resolve("cli/target/iommuctl.jar")).exists();
    }

    /** The files a fresh clone has: everything but build output, the VCS and local tool state. */
    private static void copySources(Path from, Path to) throws IOException {
        List<String> skipped = List.of("target", ".git", ".idea");
        try (Stream<Path> walk = Files.walk(from)) {
            for (Path p : walk.toList()) {
                Path rel = from.relativize(p);
                boolean skip = false;
                for (Path part : rel) {
                    skip |= skipped.contains(part.toString());
                }
                if (skip || rel.toString().isEmpty()) {
                    continue;
                }
                Path target = to.resolve(rel.toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target, StandardCopyOption.COPY_ATTRIBUTES);
                }
            }
        }
    }
}
