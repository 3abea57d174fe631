package org.iommu4j.cli;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import picocli.CommandLine.Command;

/** {@code iommuctl schema}: the scenario format's JSON Schema, generated from {@link ScenarioFile} at build time. */
@Command(name = "schema", mixinStandardHelpOptions = true,
        description = "Print the JSON Schema (draft 2020-12) of scenario files, version " + ScenarioFile.VERSION
                + ".")
final class SchemaCommand extends CommandBase {
    /** Where the build puts the schema in the jar. */
    static final String RESOURCE = "/org/iommu4j/cli/scenario.schema.json";

    /** @return the schema as the build generated it */
    static String schema() {
        try (InputStream in = SchemaCommand.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("the jar has no " + RESOURCE + ": build it with mvn package");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + RESOURCE + ": " + e.getMessage(), e);
        }
    }

    @Override
    public Integer call() {
        out().print(schema());
        out().flush();
        return 0;
    }
}
