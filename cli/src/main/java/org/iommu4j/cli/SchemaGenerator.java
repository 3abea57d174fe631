package org.iommu4j.cli;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.github.victools.jsonschema.generator.CustomDefinition;
import com.github.victools.jsonschema.generator.Option;
import com.github.victools.jsonschema.generator.OptionPreset;
import com.github.victools.jsonschema.generator.SchemaGeneratorConfigBuilder;
import com.github.victools.jsonschema.generator.SchemaVersion;
import com.github.victools.jsonschema.module.jackson.JacksonModule;
import com.github.victools.jsonschema.module.jackson.JacksonOption;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.PciAddress;
import org.iommu4j.cli.Values.Address;
import org.iommu4j.cli.Values.FaultName;
import org.iommu4j.cli.Values.IommuType;
import org.iommu4j.cli.Values.Iova;
import org.iommu4j.cli.Values.Memlock;
import org.iommu4j.cli.Values.Prot;
import org.iommu4j.cli.Values.Size;
import org.iommu4j.cli.Values.SyncFor;
import org.iommu4j.kernel.fault.FaultInjection;

/**
 * Generates the JSON Schema (draft 2020-12) of {@link ScenarioFile} with victools' jsonschema-generator and its
 * Jackson module, at build time (the cli's pom runs {@link #main} after compiling): the types and their Jackson
 * annotations are the one description of the format, and the value kinds of {@link Values} get the forms their
 * parsers accept. The build only: victools is not in the runnable jar, which carries the generated file.
 */
public final class SchemaGenerator {
    private SchemaGenerator() {
    }

    /** The same patterns as {@link Values}' parsers, in the schema's regular expression dialect. */
    static final String SIZE_PATTERN = "^(0[xX][0-9a-fA-F]+|[0-9]+) ?([kKmMgGtT](iB)?)?$";
    static final String ADDRESS_PATTERN = "^\\s*(0[xX][0-9a-fA-F]+|[0-9]+)\\s*$";
    static final String PCI_PATTERN = "^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[01][0-9a-fA-F]\\.[0-7]$";

    /**
     * @return the schema, as pretty-printed JSON with a final newline
     */
    static String generate() {
        ObjectMapper json = new ObjectMapper();
        SchemaGeneratorConfigBuilder config = new SchemaGeneratorConfigBuilder(json, SchemaVersion.DRAFT_2020_12,
                OptionPreset.PLAIN_JSON)
                .with(new JacksonModule(JacksonOption.RESPECT_JSONPROPERTY_REQUIRED,
                        JacksonOption.RESPECT_JSONPROPERTY_ORDER))
                .with(Option.FORBIDDEN_ADDITIONAL_PROPERTIES_BY_DEFAULT, Option.PLAIN_DEFINITION_KEYS,
                        Option.DEFINITIONS_FOR_ALL_OBJECTS, Option.MAP_VALUES_AS_ADDITIONAL_PROPERTIES);
        config.forTypesInGeneral()
                .withDefinitionNamingStrategy((key, context) -> key.getType().getErasedType().getSimpleName())
                .withCustomDefinitionProvider((type, context) -> {
                    ObjectNode custom = valueKind(json, type.getErasedType());
                    return custom == null ? null : new CustomDefinition(custom,
                            CustomDefinition.DefinitionType.STANDARD, CustomDefinition.AttributeInclusion.YES);
                });
        config.forFields().withDefaultResolver(field -> {
            JsonProperty p = field.getAnnotationConsideringFieldAndGetter(JsonProperty.class);
            if (p == null || p.defaultValue().isEmpty() && !field.getType().isInstanceOf(String.class)) {
                return null;
            }
            if (p.defaultValue().isEmpty()) {
                return null;
            }
            Class<?> t = field.getType().getErasedType();
            if (t == Integer.class || t == Long.class) {
                return new BigInteger(p.defaultValue());
            }
            if (t == Boolean.class) {
                return Boolean.valueOf(p.defaultValue());
            }
            if (t == Size.class && p.defaultValue().matches("[0-9]+")) {
                return new BigInteger(p.defaultValue());
            }
            return p.defaultValue();
        });
        ObjectNode schema = new com.github.victools.jsonschema.generator.SchemaGenerator(config.build())
                .generateSchema(ScenarioFile.class);
        mergeStepKinds(schema);
        schema.put("$id", "https://iommu4j.org/schema/scenario-" + ScenarioFile.VERSION + ".json");
        schema.put("title", "iommu4j scenario, version " + ScenarioFile.VERSION);
        try {
            return json.copy().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(schema) + "\n";
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The Jackson module describes a step as its record's definition ({@code Open-1}, closed to other fields)
     * plus a second one that adds the {@code "step"} discriminator ({@code Open-2}); a closed definition cannot
     * be extended, so the two are merged into one ({@code Open}) with {@code "step"} first and required.
     */
    private static void mergeStepKinds(ObjectNode schema) {
        ObjectNode defs = (ObjectNode) schema.get("$defs");
        java.util.Map<String, String> renamed = new java.util.LinkedHashMap<>();
        for (String name : toList(defs.fieldNames())) {
            if (!name.endsWith("-2")) {
                continue;
            }
            String base = name.substring(0, name.length() - 2);
            ObjectNode wrapper = (ObjectNode) defs.get(name);
            ObjectNode record = (ObjectNode) defs.get(base + "-1");
            ObjectNode merged = record.deepCopy();
            ObjectNode props = merged.putObject("properties");
            props.set("step", wrapper.get("properties").get("step"));
            if (record.has("properties")) {
                props.setAll((ObjectNode) record.get("properties"));
            }
            ArrayNode required = merged.putArray("required");
            required.add("step");
            if (record.has("required")) {
                required.addAll((ArrayNode) record.get("required"));
            }
            defs.remove(name);
            defs.remove(base + "-1");
            defs.set(base, merged);
            renamed.put("#/$defs/" + name, "#/$defs/" + base);
        }
        rewriteRefs(schema, renamed);
    }

    private static void rewriteRefs(com.fasterxml.jackson.databind.JsonNode node, java.util.Map<String, String> renamed) {
        if (node instanceof ObjectNode o) {
            com.fasterxml.jackson.databind.JsonNode ref = o.get("$ref");
            if (ref != null && renamed.containsKey(ref.asText())) {
                o.put("$ref", renamed.get(ref.asText()));
            }
            o.elements().forEachRemaining(child -> rewriteRefs(child, renamed));
        } else if (node instanceof ArrayNode a) {
            a.elements().forEachRemaining(child -> rewriteRefs(child, renamed));
        }
    }

    /** The schema of a value kind that its own parser reads, or null for a type the generator describes. */
    private static ObjectNode valueKind(ObjectMapper json, Class<?> type) {
        ObjectNode n = json.createObjectNode();
        if (type == Size.class) {
            anyOf(n, integer(json, null), string(json, SIZE_PATTERN));
            n.put("description", Values.SIZE_FORM);
        } else if (type == Address.class) {
            anyOf(n, integer(json, new BigInteger("18446744073709551615")), string(json, ADDRESS_PATTERN));
            n.put("description", Values.ADDRESS_FORM);
        } else if (type == Iova.class) {
            anyOf(n, integer(json, new BigInteger("18446744073709551615")), string(json, ADDRESS_PATTERN),
                    names(json, "any", "phys"));
            n.put("description", Values.IOVA_FORM);
        } else if (type == Memlock.class) {
            anyOf(n, integer(json, null), string(json, SIZE_PATTERN), names(json, "unlimited"));
            n.put("description", Values.MEMLOCK_FORM);
        } else if (type == Prot.class) {
            n.setAll(names(json, "r", "w", "rw"));
            n.put("description", Values.PROT_FORM);
        } else if (type == IommuType.class) {
            n.setAll(names(json, "TYPE1", "TYPE1v2", "NOIOMMU", "SWIOTLB", "ANY"));
            n.put("description", Values.TYPE_FORM);
        } else if (type == FaultName.class) {
            n.setAll(names(json, FaultInjection.FAIL_PAGE_ALLOC, FaultInjection.FAILSLAB, FaultInjection.FAIL_IOMMU));
        } else if (type == SyncFor.class) {
            n.setAll(names(json, "cpu", "device"));
        } else if (type == Errno.class) {
            n.setAll(names(json, Arrays.stream(Errno.values()).map(Enum::name).toArray(String[]::new)));
            n.put("description", "An errno name.");
        } else if (type == Capability.class) {
            n.setAll(names(json, Arrays.stream(Capability.values()).map(Enum::name).toArray(String[]::new)));
            n.put("description", "A capability name.");
        } else if (type == PciAddress.class) {
            n.setAll(string(json, PCI_PATTERN));
            n.put("description", PciAddress.FORM);
        } else {
            return null;
        }
        return n;
    }

    private static java.util.List<String> toList(java.util.Iterator<String> names) {
        java.util.List<String> out = new java.util.ArrayList<>();
        names.forEachRemaining(out::add);
        return out;
    }

    private static void anyOf(ObjectNode n, ObjectNode... forms) {
        ArrayNode any = n.putArray("anyOf");
        Arrays.stream(forms).forEach(any::add);
    }

    private static ObjectNode integer(ObjectMapper json, BigInteger max) {
        ObjectNode n = json.createObjectNode().put("type", "integer").put("minimum", 0);
        if (max != null) {
            n.put("maximum", max);
        }
        return n;
    }

    private static ObjectNode string(ObjectMapper json, String pattern) {
        return json.createObjectNode().put("type", "string").put("pattern", pattern);
    }

    private static ObjectNode names(ObjectMapper json, String... values) {
        ObjectNode n = json.createObjectNode().put("type", "string");
        ArrayNode e = n.putArray("enum");
        Arrays.stream(values).forEach(e::add);
        return n;
    }

    /**
     * Writes the schema.
     *
     * @param args the files to write it to
     * @throws IOException if one cannot be written
     */
    public static void main(String[] args) throws IOException {
        String schema = generate();
        for (String file : args) {
            Path p = Path.of(file);
            Files.createDirectories(p.toAbsolutePath().getParent());
            Files.writeString(p, schema);
        }
    }
}
