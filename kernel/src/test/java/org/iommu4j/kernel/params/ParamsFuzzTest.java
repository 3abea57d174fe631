package org.iommu4j.kernel.params;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.Errno;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.ParameterType;

/**
 * Coverage-guided fuzz targets for the kernel command line and module parameters. In {@code mvn verify} each
 * runs its committed regression corpus ({@code src/test/resources/org/iommu4j/kernel/params/ParamsFuzzTestInputs/
 * <method>/}); {@code -Pfuzz} ({@code JAZZER_FUZZ=1}) mutates inputs for the {@code maxDuration} given here.
 */
class ParamsFuzzTest {

    /**
     * Any text either parses or is refused with {@link InvalidParameterException} (EINVAL) naming the bad
     * word; what parses shows as {@code /proc/cmdline} does, and that text parses to the same words.
     */
    @FuzzTest(maxDuration = "60s")
    void commandLine(byte[] input) {
        String text = new String(input, StandardCharsets.UTF_8);
        CommandLine line;
        try {
            line = CommandLine.parse(text);
        } catch (InvalidParameterException e) {
            assertThat(e.errno()).isEqualTo(Errno.EINVAL);
            assertThat(e.getMessage()).startsWith("invalid kernel command line word '" + e.parameter() + "': ");
            assertThat(text).contains(e.parameter());
            return;
        }
        for (String word : line.words()) {
            assertThat(word).isNotBlank();
        }
        if (roundTrips(line)) {
            CommandLine again = CommandLine.parse(line.toString());
            assertThat(again.words()).isEqualTo(line.words());
            assertThat(again.initArguments()).isEqualTo(line.initArguments());
        }
    }

    /**
     * {@code toString} quotes values with white space only, as {@code /proc/cmdline} shows the words; a value
     * that held a quote or a parenthesis only thanks to quoting, or an init argument with white space, does not
     * read back the same way.
     */
    private static boolean roundTrips(CommandLine line) {
        for (String w : line.words()) {
            if (w.contains("\"") || w.contains("(") || w.contains(")")
                    || w.indexOf('=') < 0 && w.chars().anyMatch(Character::isWhitespace)) {
                return false;
            }
        }
        for (String a : line.initArguments()) {
            if (a.isEmpty() || a.chars().anyMatch(c -> Character.isWhitespace(c) || c == '"' || c == '(' || c == ')')) {
                return false;
            }
        }
        return true;
    }

    /**
     * Module parameters of every type with command-line and load-time values, then sysfs writes: only
     * {@link InvalidParameterException} escapes (ENOENT unknown, EINVAL bad value, EPERM read-only), a refused
     * write changes nothing, and an accepted value is kept in the type's normal form.
     */
    @FuzzTest(maxDuration = "60s")
    void moduleParameters(FuzzedDataProvider data) {
        ParameterType[] types = ParameterType.values();
        List<ParameterSpec> specs = new ArrayList<>();
        int n = data.consumeInt(1, 4);
        for (int i = 0; i < n; i++) {
            ParameterType type = types[data.consumeInt(0, types.length - 1)];
            String def = type == ParameterType.BOOL ? "N" : type == ParameterType.STRING ? "" : "0";
            specs.add(new ParameterSpec("p" + i, type, def, "parameter " + i, data.consumeBoolean()));
        }
        Map<String, String> fromCommandLine = values(data);
        Map<String, String> fromCall = values(data);
        ModuleParameterSet set;
        try {
            set = new ModuleParameterSet("m", specs, fromCommandLine, fromCall);
        } catch (InvalidParameterException e) {
            assertThat(e.errno()).isIn(Errno.ENOENT, Errno.EINVAL);
            assertThat(e.getMessage()).isNotBlank();
            return;
        }
        for (ParameterSpec s : specs) {
            String v = set.get(s.name());
            assertThat(s.type().normalize("m." + s.name(), v)).as("normal form of %s", s.name()).isEqualTo(v);
        }
        while (data.remainingBytes() > 0) {
            String name = name(data);
            String raw = data.consumeBoolean() ? null : data.consumeString(12);
            Map<String, String> before = Map.copyOf(set.values());
            try {
                set.set(name, raw);
            } catch (InvalidParameterException e) {
                assertThat(e.errno()).isIn(Errno.ENOENT, Errno.EINVAL, Errno.EPERM);
                assertThat(set.values()).isEqualTo(before);
                continue;
            }
            ParameterSpec s = specs.stream().filter(p -> p.name().equals(name.replace('-', '_'))).findFirst()
                    .orElseThrow();
            assertThat(s.writable()).isTrue();
            assertThat(set.get(s.name())).isEqualTo(s.type().normalize("m." + s.name(), raw));
        }
    }

    private static Map<String, String> values(FuzzedDataProvider data) {
        Map<String, String> out = new LinkedHashMap<>();
        for (int i = data.consumeInt(0, 3); i > 0; i--) {
            out.put(name(data), data.consumeBoolean() ? null : data.consumeString(12));
        }
        return out;
    }

    private static String name(FuzzedDataProvider data) {
        return data.consumeInt(0, 9) == 0 ? data.consumeAsciiString(4) : "p" + data.consumeInt(0, 4);
    }
}
