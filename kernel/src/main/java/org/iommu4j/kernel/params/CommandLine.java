package org.iommu4j.kernel.params;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.KernelCommandLine;
import org.iommu4j.api.ModuleInfo;

/**
 * The kernel command line, split as the kernel's {@code next_arg} splits it: words separated by white space,
 * double quotes grouping (a quote may open a word or follow its {@code =}, and is removed), and {@code --}
 * ending the kernel's own parameters (what follows belongs to init). iommu4j adds one rule: white space inside
 * balanced parentheses does not split, so {@code xen-pciback.hide=(0000:06:0d.0) (07:00.*)} is not valid but
 * {@code xen-pciback.hide=(0000:06:0d.0)(07:00.*)} and a quoted value with spaces are.
 */
public final class CommandLine implements KernelCommandLine {
    private static final String VALID_KEY = "letters, digits, '_', '-' and '.' (as in module.param)";

    private final List<Word> words;
    private final List<String> initArguments;

    private record Word(String key, String value) {
        String text() {
            return value == null ? key : key + "=" + value;
        }
    }

    private CommandLine(List<Word> words, List<String> initArguments) {
        this.words = List.copyOf(words);
        this.initArguments = List.copyOf(initArguments);
    }

    /**
     * Whether a value is an unsigned decimal of 1 to {@code maxDigits} digits, checked without a regular
     * expression (a host is built without compiling one: their first use spins lambda classes, milliseconds of a
     * cold JVM's start).
     *
     * @param value the value
     * @param maxDigits the most digits allowed
     * @return whether it is one
     */
    public static boolean isDecimal(String value, int maxDigits) {
        if (value.isEmpty() || value.length() > maxDigits) {
            return false;
        }
        for (int i = 0; i < value.length(); i++) {
            if (value.charAt(i) < '0' || value.charAt(i) > '9') {
                return false;
            }
        }
        return true;
    }

    /**
     * Parses a command line.
     *
     * @param text the line; null or blank for none
     * @return the parsed line
     * @throws InvalidParameterException naming the bad word and what would be valid
     */
    public static CommandLine parse(String text) {
        List<Word> words = new ArrayList<>();
        List<String> init = new ArrayList<>();
        if (text == null) {
            return new CommandLine(words, init);
        }
        int i = 0;
        boolean afterDashes = false;
        while (true) {
            while (i < text.length() && Character.isWhitespace(text.charAt(i))) {
                i++;
            }
            if (i >= text.length()) {
                break;
            }
            int start = i;
            StringBuilder word = new StringBuilder();
            boolean quoted = false;
            int depth = 0;
            for (; i < text.length(); i++) {
                char c = text.charAt(i);
                if (c == '"') {
                    quoted = !quoted;
                    continue;
                }
                if (!quoted) {
                    if (Character.isWhitespace(c) && depth == 0) {
                        break;
                    }
                    if (c == '(') {
                        depth++;
                    } else if (c == ')') {
                        depth--;
                        if (depth < 0) {
                            throw bad(text.substring(start, end(text, i)), "a ')' closes no '('");
                        }
                    }
                }
                word.append(c);
            }
            String raw = text.substring(start, i);
            if (quoted) {
                throw bad(raw, "a quote is not closed");
            }
            if (depth != 0) {
                throw bad(raw, "a '(' is not closed");
            }
            if (afterDashes) {
                init.add(word.toString());
            } else if (word.toString().equals("--")) {
                afterDashes = true;
            } else {
                words.add(split(raw, word.toString()));
            }
        }
        return new CommandLine(words, init);
    }

    private static int end(String text, int from) {
        int e = from;
        while (e < text.length() && !Character.isWhitespace(text.charAt(e))) {
            e++;
        }
        return e;
    }

    private static Word split(String raw, String word) {
        int eq = word.indexOf('=');
        String key = eq < 0 ? word : word.substring(0, eq);
        String value = eq < 0 ? null : word.substring(eq + 1);
        if (key.isEmpty()) {
            throw bad(raw, "the parameter name is empty; expected name=value or module.param=value");
        }
        for (int i = 0; i < key.length(); i++) {
            char c = key.charAt(i);
            if (!(Character.isLetterOrDigit(c) && c < 128) && c != '_' && c != '-' && c != '.') {
                throw bad(raw, "'" + c + "' is not allowed in a parameter name; use " + VALID_KEY);
            }
        }
        int dot = key.indexOf('.');
        if (dot == 0 || dot == key.length() - 1) {
            throw bad(raw, (dot == 0 ? "the module name" : "the parameter name after the '.'")
                    + " is empty; expected module.param=value");
        }
        return new Word(key, value);
    }

    private static InvalidParameterException bad(String word, String problem) {
        return new InvalidParameterException(word, "invalid kernel command line word '" + word + "': " + problem);
    }

    @Override
    public List<String> words() {
        return words.stream().map(Word::text).toList();
    }

    /** @return the words after {@code --}, for init */
    public List<String> initArguments() {
        return initArguments;
    }

    @Override
    public Optional<String> get(String key) {
        String wanted = ModuleInfo.normalizeName(key);
        String found = null;
        boolean any = false;
        for (Word w : words) {
            if (ModuleInfo.normalizeName(w.key()).equals(wanted)) {
                found = w.value() == null ? "" : w.value();
                any = true;
            }
        }
        return any ? Optional.of(found) : Optional.empty();
    }

    /**
     * The {@code <module>.<param>} words for one module.
     *
     * @param module a module name ({@code -} and {@code _} are the same)
     * @return parameter to raw value (null for a bare word), last occurrence winning, in first-seen order
     */
    public Map<String, String> moduleParameters(String module) {
        String prefix = ModuleInfo.normalizeName(module) + ".";
        Map<String, String> out = new LinkedHashMap<>();
        for (Word w : words) {
            String key = ModuleInfo.normalizeName(w.key());
            if (key.startsWith(prefix)) {
                out.put(key.substring(prefix.length()), w.value());
            }
        }
        return out;
    }

    /** @return the words joined by spaces, values with white space quoted, as {@code /proc/cmdline} shows them */
    @Override
    public String toString() {
        List<String> out = new ArrayList<>();
        for (Word w : words) {
            String v = w.value();
            out.add(v == null ? w.key() : w.key() + "=" + (v.chars().anyMatch(Character::isWhitespace)
                    ? "\"" + v + "\"" : v));
        }
        if (!initArguments.isEmpty()) {
            out.add("--");
            out.addAll(initArguments);
        }
        return String.join(" ", out);
    }
}
