package org.iommu4j.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A coverage-guided fuzz target for the scenario reader, through the entry users have: {@code iommuctl run
 * FILE}. Whatever the file holds, the run ends with exit 0 (it ran), 1 (a step failed) or 2 (the scenario is
 * malformed), and a failure is one line on standard error saying what is wrong, never a bare exception name or
 * a stack trace. In {@code mvn verify} it replays its committed corpus
 * ({@code src/test/resources/org/iommu4j/cli/ScenarioFuzzTestInputs/scenarioFile/}); {@code -Pfuzz} mutates.
 */
class ScenarioFuzzTest {

    @FuzzTest(maxDuration = "120s")
    void scenarioFile(byte[] input) throws IOException {
        Path file = Files.createTempFile("scenario", ".json");
        try {
            Files.write(file, input);
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            int code = Iommuctl.execute(new String[] {"run", file.toString()}, new PrintWriter(out),
                    new PrintWriter(err), false);
            assertThat(code).as("exit code; stderr: %s", err).isIn(0, 1, 2);
            if (code != 0) {
                String e = err.toString();
                assertThat(e).as("stderr").startsWith("iommuctl run: ").endsWith(System.lineSeparator());
                assertThat(e.strip()).as("stderr").doesNotContain("\n")
                        .doesNotMatch("iommuctl run: [A-Za-z.]*(Exception|Error)")
                        .doesNotContain("\tat ");
            } else {
                assertThat(err.toString()).isEmpty();
            }
        } finally {
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }
}
