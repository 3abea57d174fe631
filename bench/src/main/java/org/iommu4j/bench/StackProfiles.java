package org.iommu4j.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The hot frames of each benchmark, read from the human-readable log of a JMH run with {@code -prof stack} (JMH's
 * JSON result keeps no profiler text). Each profile lists, for the measured threads' RUNNABLE samples, the share of
 * each top frame with its callers; samples JMH could not attribute ("stack is empty") are left out of the shares,
 * and their fraction is kept apart.
 */
public final class StackProfiles {
    private static final Pattern BENCHMARK = Pattern.compile("^# Benchmark: (\\S+)");
    private static final Pattern PARAMETERS = Pattern.compile("^# Parameters: \\((.*)\\)\\s*$");
    private static final Pattern ENTRY = Pattern.compile("^\\s*([0-9.]+)%\\s+([0-9.]+)%\\s+(\\S.*)$");
    private static final Pattern CALLER = Pattern.compile("^\\s{8,}(\\S.*)$");

    private final Map<String, Profile> profiles = new LinkedHashMap<>();

    /**
     * One top frame.
     *
     * @param share its percentage of the RUNNABLE samples that had a stack
     * @param frames the top frame first, then its callers as far as the profile recorded them
     */
    public record Frame(double share, List<String> frames) {
        /** @return "22.9% LiveMappings.take ← DmaApi.take", with package names cut */
        public String describe() {
            List<String> shortNames = new ArrayList<>();
            for (String f : frames) {
                shortNames.add(shorten(f));
            }
            return String.format(Locale.ROOT, "%.1f%% %s", share, String.join(" ← ", shortNames));
        }
    }

    /**
     * One benchmark's profile.
     *
     * @param unattributed percentage of the RUNNABLE samples with no stack JMH could attribute
     * @param frames the hot frames, hottest first
     */
    public record Profile(double unattributed, List<Frame> frames) {
    }

    /**
     * @param log the text JMH printed for a run with {@code -prof stack}
     */
    public StackProfiles(List<String> log) {
        String benchmark = null;
        String params = "";
        for (int i = 0; i < log.size(); i++) {
            String line = log.get(i);
            Matcher b = BENCHMARK.matcher(line);
            if (b.find()) {
                benchmark = b.group(1);
                params = "";
                continue;
            }
            Matcher p = PARAMETERS.matcher(line);
            if (p.find()) {
                params = p.group(1);
                continue;
            }
            if (benchmark != null && line.startsWith("....[Thread state: RUNNABLE]")) {
                i = readRunnable(log, i + 1, key(benchmark, params));
            }
        }
    }

    /** Reads one RUNNABLE section from line {@code from}; returns the index of its last line. */
    private int readRunnable(List<String> log, int from, String key) {
        List<Double> shares = new ArrayList<>();
        List<List<String>> stacks = new ArrayList<>();
        double unattributed = 0;
        int i = from;
        for (; i < log.size() && !log.get(i).startsWith("...."); i++) {
            String line = log.get(i);
            Matcher e = ENTRY.matcher(line);
            if (e.find()) {
                String frame = e.group(3).strip();
                double share = Double.parseDouble(e.group(2));
                if (frame.startsWith("<stack is empty")) {
                    unattributed += share;
                } else if (!frame.equals("<other>")) {
                    shares.add(share);
                    stacks.add(new ArrayList<>(List.of(frame)));
                }
                continue;
            }
            Matcher c = CALLER.matcher(line);
            if (c.find() && !stacks.isEmpty() && !line.isBlank()) {
                stacks.get(stacks.size() - 1).add(c.group(1).strip());
            }
        }
        double attributed = 100 - unattributed;
        List<Frame> frames = new ArrayList<>();
        for (int k = 0; k < stacks.size(); k++) {
            double share = attributed <= 0 ? 0 : shares.get(k) * 100 / attributed;
            frames.add(new Frame(share, List.copyOf(stacks.get(k))));
        }
        profiles.put(key, new Profile(unattributed, List.copyOf(frames)));
        return i - 1;
    }

    /** The key {@link Report} uses: the benchmark without the package, then its parameters but nslabs, sorted. */
    static String key(String benchmark, String params) {
        List<String> parts = new ArrayList<>();
        if (!params.isBlank()) {
            for (String kv : params.split(",")) {
                String[] pair = kv.split("=", 2);
                String name = pair[0].strip();
                if (!name.equals("nslabs")) {
                    parts.add(name + "=" + (pair.length > 1 ? pair[1].strip() : ""));
                }
            }
        }
        parts.sort(null);
        return Report.shortName(benchmark) + (parts.isEmpty() ? "" : parts.toString());
    }

    /**
     * @param key a benchmark key as {@link Report} builds it
     * @return its profile, if the log had one
     */
    public Optional<Profile> profile(String key) {
        return Optional.ofNullable(profiles.get(key));
    }

    /** @return every profile read, by benchmark key */
    public Map<String, Profile> all() {
        return profiles;
    }

    /** {@code org.iommu4j.kernel.dma.DmaApi.take} becomes {@code DmaApi.take}. */
    static String shorten(String frame) {
        String f = frame.strip();
        int paren = f.indexOf('(');
        String name = paren < 0 ? f : f.substring(0, paren);
        int method = name.lastIndexOf('.');
        int type = method < 0 ? -1 : name.lastIndexOf('.', method - 1);
        return (type < 0 ? name : name.substring(type + 1)) + (paren < 0 ? "" : f.substring(paren));
    }
}
