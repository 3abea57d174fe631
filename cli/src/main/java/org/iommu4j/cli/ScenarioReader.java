package org.iommu4j.cli;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonDeserializer;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.exc.InvalidTypeIdException;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.module.SimpleModule;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.PciAddress;
import org.iommu4j.cli.Values.Address;
import org.iommu4j.cli.Values.BadValue;
import org.iommu4j.cli.Values.FaultName;
import org.iommu4j.cli.Values.IommuType;
import org.iommu4j.cli.Values.Iova;
import org.iommu4j.cli.Values.Memlock;
import org.iommu4j.cli.Values.Prot;
import org.iommu4j.cli.Values.Size;
import org.iommu4j.cli.Values.SyncFor;

/**
 * Reads a scenario file strictly: UTF-8 JSON, then the version (absent: version 1, rewritten to version 2's
 * form with version 1's defaults), then Jackson binds {@link ScenarioFile} with unknown fields, scalar coercion,
 * floats for whole numbers and nulls refused, each value through its kind's parser ({@link Values}). Every error
 * is a {@link BadInput} whose path is the JSON path ({@code steps[3].bytes}) and whose message shows the value
 * and what is accepted.
 */
final class ScenarioReader {
    private ScenarioReader() {
    }

    /**
     * A file as read: its format's version as written, and the content in version 2's form.
     *
     * @param version 1 or 2
     * @param scenario the content
     */
    record Read(int version, ScenarioFile scenario) {
    }

    /**
     * @param file a scenario file
     * @return it, bound
     * @throws BadInput for anything that is not a well-formed scenario
     */
    static Read read(Path file) {
        return parse(file.toString(), text(file));
    }

    private static String text(Path file) {
        byte[] bytes;
        try {
            if (Files.isDirectory(file)) {
                throw new BadInput(null, "cannot read scenario " + file + ": it is a directory");
            }
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new BadInput(null, "cannot read scenario " + file + ": no such file");
        } catch (AccessDeniedException e) {
            throw new BadInput(null, "cannot read scenario " + file + ": permission denied");
        } catch (IOException e) {
            throw new BadInput(null, "cannot read scenario " + file + ": " + e.getMessage());
        }
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new BadInput(null, "scenario " + file + " is not UTF-8 text: a scenario is a JSON file in UTF-8");
        }
    }

    /**
     * @param name the file's name, for messages
     * @param text its content
     * @return it, bound
     * @throws BadInput for anything that is not a well-formed scenario
     */
    static Read parse(String name, String text) {
        JsonNode root;
        try {
            root = MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            JsonLocation at = e.getLocation();
            throw new BadInput(null, "scenario " + name + " is not valid JSON" + (at == null ? ""
                    : " at line " + at.getLineNr() + ", column " + at.getColumnNr()) + ": " + jsonProblem(e));
        }
        if (root == null || !root.isObject()) {
            throw new BadInput(null, "scenario " + name + " is not a JSON object: expected {\"version\": 2, \"host\":"
                    + " {...}, \"steps\": [...]} (see docs/scenarios.md)");
        }
        JsonNode v = root.get("version");
        int version;
        if (v == null) {
            version = 1;
        } else if (v.isInt() && (v.intValue() == 1 || v.intValue() == ScenarioFile.VERSION)) {
            version = v.intValue();
        } else {
            throw new BadInput("version", v + " is not a scenario version: expected 2 (or 1, the form without"
                    + " \"version\", whose steps say \"do\")");
        }
        rejectNulls(root, "", version(root));
        ObjectNode form = (ObjectNode) root;
        if (version == 1) {
            form = toVersion2(form);
        }
        try {
            return new Read(version, MAPPER.treeToValue(form, ScenarioFile.class));
        } catch (JsonProcessingException e) {
            throw translate(e, form, version);
        }
    }

    private static int version(JsonNode root) {
        return root.has("version") ? 2 : 1;
    }

    /** A JSON null anywhere is refused: leave a field out for its default. */
    private static void rejectNulls(JsonNode node, String path, int version) {
        if (node.isNull()) {
            throw new BadInput(path, "null is not allowed: leave the field out for its default (see"
                    + " docs/scenarios.md)");
        }
        if (node.isObject()) {
            node.properties().forEach(e -> rejectNulls(e.getValue(), join(path, e.getKey()), version));
        } else if (node.isArray()) {
            for (int i = 0; i < node.size(); i++) {
                rejectNulls(node.get(i), path + "[" + i + "]", version);
            }
        }
    }

    /** Why the JSON did not parse, without the parser's internals. */
    private static String jsonProblem(JsonProcessingException e) {
        String m = Iommuctl.oneLine(e.getOriginalMessage());
        if (m.contains("ALLOW_COMMENTS") || m.contains("maybe a (non-standard) comment")) {
            return "comments are not JSON (say it in \"description\")";
        }
        if (m.startsWith("Duplicate field")) {
            return m.replace("Duplicate field", "duplicate key");
        }
        return m.replaceAll(" ?\\(?(for|since) [^()]*Feature[^()]*\\)?", "")
                .replaceAll("\\s*\\((?:JSON String, Number, Array, Object or token )?'null', 'true', 'false' or"
                        + " NaN\\)", "");
    }

    // ---- version 1 ---------------------------------------------------------------------------------------

    /**
     * Rewrites a version 1 file to version 2's form: {@code "do"} becomes {@code "step"}, expect-error's inner
     * {@code "step"} becomes {@code "try"}, module parameter values become text, and the fields version 1
     * let default get their version 1 defaults (map: 4096 bytes, iova any, prot rw; open: type any; sync: for
     * the CPU).
     */
    private static ObjectNode toVersion2(ObjectNode root) {
        ObjectNode out = root.deepCopy();
        out.put("version", 1);
        for (JsonNode b : out.path("backends")) {
            stringifyParams(b.get("params"));
        }
        JsonNode steps = out.get("steps");
        if (steps instanceof ArrayNode list) {
            for (int i = 0; i < list.size(); i++) {
                rewriteStep(list.get(i), "steps[" + i + "]");
            }
        }
        return out;
    }

    private static void stringifyParams(JsonNode params) {
        if (params instanceof ObjectNode o) {
            for (Map.Entry<String, JsonNode> e : o.properties()) {
                if (e.getValue().isIntegralNumber() || e.getValue().isBoolean()) {
                    e.setValue(TextNode.valueOf(e.getValue().asText()));
                }
            }
        }
    }

    private static void rewriteStep(JsonNode node, String path) {
        if (!(node instanceof ObjectNode step)) {
            return;
        }
        JsonNode kind = step.get("do");
        if (kind == null) {
            if (step.path("step").isTextual()) {
                throw new BadInput(path + ".step", "\"step\" names a step's kind in version 2: add \"version\": 2"
                        + " at the top of the file, or write \"do\" as version 1 does");
            }
            return; // reported as a missing "do" when bound
        }
        boolean wraps = kind.asText().equals("expect-error");
        if (!wraps && step.has("step")) {
            throw new BadInput(path + ".step", "unknown field \"step\" in a " + kind.asText() + " step: only"
                    + " expect-error takes a \"step\" in version 1");
        }
        JsonNode inner = wraps ? step.remove("step") : null;
        ObjectNode copy = step.deepCopy();
        copy.remove("do");
        step.removeAll();
        step.set("step", kind);
        step.setAll(copy);
        if (inner != null) {
            rewriteStep(inner, path + ".step");
            step.set("try", inner);
        }
        switch (step.path("step").asText()) {
            case "load" -> stringifyParams(step.get("params"));
            case "map" -> {
                step.putIfAbsent("bytes", JsonNodeFactory.instance.numberNode(4096));
                step.putIfAbsent("iova", TextNode.valueOf("any"));
                step.putIfAbsent("prot", TextNode.valueOf("rw"));
            }
            case "open" -> {
                JsonNode type = step.get("type");
                if (type == null) {
                    step.put("type", "ANY");
                } else if (type.isTextual() || type.isIntegralNumber()) {
                    step.put("type", IommuType.canonical(type.asText()));
                }
            }
            case "sync" -> step.putIfAbsent("for", TextNode.valueOf("cpu"));
            default -> {
            }
        }
    }

    // ---- binding -----------------------------------------------------------------------------------------

    /** A value its parser refused, with the parser's message. */
    private static final class Refused extends JsonMappingException {
        private static final long serialVersionUID = 1L;

        Refused(JsonParser p, String message) {
            super(p, message);
        }
    }

    private static final ObjectMapper MAPPER = mapper();

    private static ObjectMapper mapper() {
        SimpleModule values = new SimpleModule("iommu4j-scenario-values");
        values.addDeserializer(String.class, scalar(JsonToken.VALUE_STRING, "text: expected a JSON string",
                JsonParser::getText));
        values.addDeserializer(Boolean.class, new Strict<>("true or false: expected true or false (JSON booleans,"
                + " not strings)") {
            @Override
            Boolean convert(JsonParser p) throws IOException {
                return p.currentToken() == JsonToken.VALUE_TRUE ? Boolean.TRUE
                        : p.currentToken() == JsonToken.VALUE_FALSE ? Boolean.FALSE : null;
            }
        });
        values.addDeserializer(Integer.class, whole(Integer.MIN_VALUE, Integer.MAX_VALUE, BigInteger::intValue));
        values.addDeserializer(Long.class, whole(Long.MIN_VALUE, Long.MAX_VALUE, BigInteger::longValue));
        values.addDeserializer(Size.class, new Strict<>("a size: expected " + Values.SIZE_FORM) {
            @Override
            Size convert(JsonParser p) throws IOException {
                return p.currentToken() == JsonToken.VALUE_NUMBER_INT ? Size.of(p.getBigIntegerValue(),
                        p.getText()) : p.currentToken() == JsonToken.VALUE_STRING ? Size.parse(p.getText()) : null;
            }
        });
        values.addDeserializer(Address.class, new Strict<>("an address: expected " + Values.ADDRESS_FORM) {
            @Override
            Address convert(JsonParser p) throws IOException {
                return p.currentToken() == JsonToken.VALUE_NUMBER_INT ? Address.of(p.getBigIntegerValue(),
                        p.getText()) : p.currentToken() == JsonToken.VALUE_STRING ? Address.parse(p.getText())
                        : null;
            }
        });
        values.addDeserializer(Iova.class, new Strict<>("an iova: expected " + Values.IOVA_FORM) {
            @Override
            Iova convert(JsonParser p) throws IOException {
                return p.currentToken() == JsonToken.VALUE_NUMBER_INT
                        ? new Iova(null, Address.of(p.getBigIntegerValue(), p.getText()))
                        : p.currentToken() == JsonToken.VALUE_STRING ? Iova.parse(p.getText()) : null;
            }
        });
        values.addDeserializer(Memlock.class, new Strict<>("a memlock limit: expected " + Values.MEMLOCK_FORM) {
            @Override
            Memlock convert(JsonParser p) throws IOException {
                return p.currentToken() == JsonToken.VALUE_NUMBER_INT
                        ? new Memlock(Size.of(p.getBigIntegerValue(), p.getText()).bytes())
                        : p.currentToken() == JsonToken.VALUE_STRING ? Memlock.parse(p.getText()) : null;
            }
        });
        values.addDeserializer(Prot.class, text("a protection: expected " + Values.PROT_FORM, Prot::parse));
        values.addDeserializer(IommuType.class, text("an iommu type: expected " + Values.TYPE_FORM,
                IommuType::parse));
        values.addDeserializer(FaultName.class, text("a fault-injection capability: expected " + Values.FAULT_FORM,
                FaultName::parse));
        values.addDeserializer(SyncFor.class, text("a sync direction: expected " + SyncFor.FORM, SyncFor::parse));
        values.addDeserializer(Errno.class, text("an errno name: expected one of " + Values.errnoNames(),
                Values::errno));
        values.addDeserializer(Capability.class, text("a capability: expected one of " + Values.capabilityNames(),
                Values::capability));
        values.addDeserializer(PciAddress.class, text("a PCI address: expected " + PciAddress.FORM,
                Values::pciAddress));
        return JsonMapper.builder()
                .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
                .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES,
                        DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES,
                        DeserializationFeature.FAIL_ON_NUMBERS_FOR_ENUMS,
                        DeserializationFeature.FAIL_ON_TRAILING_TOKENS,
                        DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY,
                        DeserializationFeature.FAIL_ON_INVALID_SUBTYPE,
                        DeserializationFeature.FAIL_ON_MISSING_EXTERNAL_TYPE_ID_PROPERTY)
                .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT,
                        DeserializationFeature.ACCEPT_SINGLE_VALUE_AS_ARRAY)
                .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
                .addModule(values)
                .build();
    }

    /** A deserializer that takes only the tokens {@link #convert} accepts, and refuses null. */
    private abstract static class Strict<T> extends JsonDeserializer<T> {
        private final String expected;

        Strict(String expected) {
            this.expected = expected;
        }

        /** @return the value, or null if the token is of the wrong kind; throws {@link BadValue} if refused */
        abstract T convert(JsonParser p) throws IOException;

        @Override
        public T deserialize(JsonParser p, DeserializationContext ctxt) throws IOException {
            T value;
            try {
                value = convert(p);
            } catch (BadValue e) {
                throw new Refused(p, e.getMessage());
            }
            if (value == null) {
                String shown = p.currentToken() == JsonToken.VALUE_STRING ? Values.quote(p.getText())
                        : p.currentToken().isScalarValue() ? p.getText() : p.readValueAsTree().toString();
                throw new Refused(p, shown + " is not " + expected);
            }
            return value;
        }

        @Override
        public Object getAbsentValue(DeserializationContext ctxt) {
            return null;
        }

        @Override
        public T getNullValue(DeserializationContext ctxt) throws JsonMappingException {
            throw new Refused(ctxt.getParser(), "null is not " + expected + " (leave the field out for its"
                    + " default)");
        }
    }

    private interface TextParser<T> {
        T parse(JsonParser p) throws IOException;
    }

    private static <T> Strict<T> scalar(JsonToken token, String expected, TextParser<T> parser) {
        return new Strict<>(expected) {
            @Override
            T convert(JsonParser p) throws IOException {
                return p.currentToken() == token ? parser.parse(p) : null;
            }
        };
    }

    private static <T> Strict<T> text(String expected, Function<String, T> parser) {
        return scalar(JsonToken.VALUE_STRING, expected, p -> parser.apply(p.getText()));
    }

    private static <T extends Number> Strict<T> whole(long min, long max, Function<BigInteger, T> exact) {
        return new Strict<>("a whole number: expected a JSON number without a fraction or quotes, " + min + " to "
                + max) {
            @Override
            T convert(JsonParser p) throws IOException {
                if (p.currentToken() != JsonToken.VALUE_NUMBER_INT) {
                    return null;
                }
                BigInteger n = p.getBigIntegerValue();
                if (n.compareTo(BigInteger.valueOf(min)) < 0 || n.compareTo(BigInteger.valueOf(max)) > 0) {
                    throw new BadValue(n + " is out of range: expected " + min + " to " + max);
                }
                return exact.apply(n);
            }
        };
    }

    // ---- errors ------------------------------------------------------------------------------------------

    private static final Pattern MISSING = Pattern.compile("Missing required creator property '([^']+)'");

    private static BadInput translate(JsonProcessingException e, JsonNode form, int version) {
        List<JsonMappingException.Reference> refs = e instanceof JsonMappingException m ? m.getPath() : List.of();
        String path = path(refs, version);
        String message = Iommuctl.oneLine(e.getOriginalMessage());
        Throwable root = e;
        while (root.getCause() instanceof Refused r) {
            root = r;
        }
        if (e instanceof Refused || root instanceof Refused) {
            return new BadInput(path, Iommuctl.oneLine(((JsonProcessingException) root).getOriginalMessage()));
        }
        if (e instanceof UnrecognizedPropertyException u) {
            String field = u.getPropertyName();
            String at = refs.isEmpty() || !field.equals(refs.get(refs.size() - 1).getFieldName())
                    ? join(path, field) : path;
            List<String> known = u.getKnownPropertyIds().stream().map(String::valueOf).sorted().toList();
            String kind = stepKind(form, at.equals(path) ? refs.subList(0, refs.size() - 1) : refs);
            return new BadInput(at, "unknown field \"" + field + "\"" + (kind == null ? "" : " in a " + kind
                    + " step") + ": expected " + (known.isEmpty() ? "none" : String.join(", ", known)));
        }
        if (e instanceof InvalidTypeIdException t) {
            String key = version == 1 ? "do" : "step";
            String at = join(path, key);
            if (t.getTypeId() == null) {
                JsonNode node = at(form, refs);
                if (node != null && !node.isObject()) {
                    return new BadInput(path, node + " is not a step: expected an object like {\"" + key
                            + "\": \"bind\", \"device\": \"0000:06:0d.0\"}");
                }
                return new BadInput(at, "missing: every step names its kind, one of " + stepNames());
            }
            return new BadInput(at, Values.quote(t.getTypeId()) + " is not a step: expected one of " + stepNames());
        }
        Matcher missing = MISSING.matcher(message);
        if (missing.find()) {
            String field = missing.group(1);
            String name = version == 1 && field.equals("try") ? "step" : field;
            boolean named = !refs.isEmpty() && field.equals(refs.get(refs.size() - 1).getFieldName());
            return new BadInput(named ? path : join(path, name), "missing: " + required(form,
                    named ? refs.subList(0, refs.size() - 1) : refs, field));
        }
        if (e instanceof MismatchedInputException mi) {
            JsonNode node = at(form, refs);
            Class<?> target = mi.getTargetType();
            String shown = node == null ? "the value" : node.toString();
            if (target != null && Collection.class.isAssignableFrom(target)) {
                return new BadInput(path, shown + " is not a list: expected a JSON array [...]");
            }
            if (target != null && Map.class.isAssignableFrom(target)) {
                return new BadInput(path, shown + " is not an object: expected {\"name\": \"value\", ...}");
            }
            if (target != null && target.isRecord()) {
                return new BadInput(path, shown + " is not an object: expected {...} with the fields of "
                        + target.getSimpleName() + " (see docs/scenarios.md)");
            }
        }
        return new BadInput(path.isEmpty() ? null : path, message);
    }

    private static String stepNames() {
        return String.join(", ", ScenarioFile.Step.NAMES);
    }

    /** Says what a missing required field takes. */
    private static String required(JsonNode form, List<JsonMappingException.Reference> refs, String field) {
        String kind = stepKind(form, refs);
        return (kind == null ? "required" : ("aeiou".indexOf(kind.charAt(0)) >= 0 ? "an " : "a ") + kind + " step needs \"" + field
                + "\"") + " (see docs/scenarios.md)";
    }

    /** The kind of the step the path is in, if it ends in one. */
    private static String stepKind(JsonNode form, List<JsonMappingException.Reference> refs) {
        JsonNode node = at(form, refs);
        return node != null && node.isObject() && node.path("step").isTextual()
                && ScenarioFile.Step.NAMES.contains(node.path("step").asText()) ? node.path("step").asText() : null;
    }

    private static JsonNode at(JsonNode form, List<JsonMappingException.Reference> refs) {
        JsonNode node = form;
        for (JsonMappingException.Reference r : refs) {
            if (node == null) {
                return null;
            }
            node = r.getFieldName() != null ? node.get(r.getFieldName()) : node.get(r.getIndex());
        }
        return node;
    }

    /** The references as a JSON path, {@code steps[3].try.bytes}; version 1 says {@code step} for {@code try}. */
    static String path(List<JsonMappingException.Reference> refs, int version) {
        StringBuilder sb = new StringBuilder();
        for (JsonMappingException.Reference r : refs) {
            if (r.getFieldName() != null) {
                String name = version == 1 && r.getFieldName().equals("try") ? "step" : r.getFieldName();
                sb.append(sb.length() == 0 ? "" : ".").append(name);
            } else if (r.getIndex() >= 0) {
                sb.append('[').append(r.getIndex()).append(']');
            }
        }
        return sb.toString();
    }

    static String join(String path, String field) {
        return path.isEmpty() ? field : path + "." + field;
    }

    static String list(Collection<?> items) {
        return items.stream().map(String::valueOf).collect(Collectors.joining(", "));
    }

    static <T> List<T> orEmpty(List<T> list) {
        return list == null ? List.of() : new ArrayList<>(list);
    }
}
