package org.iommu4j.cli;

import java.util.LinkedHashMap;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** {@code iommuctl modinfo NAME}. */
@Command(name = "modinfo", mixinStandardHelpOptions = true,
        description = "Show a backend's module metadata and parameters, as modinfo does.")
final class ModinfoCommand extends CommandBase {
    @Parameters(paramLabel = "NAME", description = "the backend")
    String name;

    @Override
    public Integer call() {
        CommandLineCheck.requireBackend(loader(), name, null, false);
        String text = loader().modinfo(name);
        var out = out();
        if (!json()) {
            out.print(text);
            return 0;
        }
        Map<String, Object> fields = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            int colon = line.indexOf(':');
            String key = line.substring(0, colon);
            String value = line.substring(colon + 1).strip();
            if (key.equals("parm")) {
                @SuppressWarnings("unchecked")
                java.util.List<String> parms = (java.util.List<String>) fields.computeIfAbsent("parm",
                        k -> new java.util.ArrayList<String>());
                parms.add(value);
            } else {
                fields.put(key, value);
            }
        }
        out.println(Json.write(fields));
        return 0;
    }
}
