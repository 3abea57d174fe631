package org.iommu4j.testsupport;

import java.util.Random;

/**
 * Seeded random tests: every case runs on a {@link Random} made from a seed that the failure names, so a failing
 * case can be run again on its own.
 *
 * <p>This file is the one copy every module's tests share: the parent pom adds {@code test-support/java} as a
 * test source root of each module, so no module needs another module's test jar.
 *
 * <ul>
 *   <li>A failure is rethrown as an {@link AssertionError} whose message starts
 *       {@code seed=0x...(rerun with -Diommu4j.seed=0x...)}, with the original failure as its cause.</li>
 *   <li>{@code -Diommu4j.seed=0x...} runs that one seed instead of the whole series.</li>
 *   <li>{@code -Diommu4j.seed.base=N} (or {@code random}) moves the whole series; by default it is fixed, so
 *       {@code mvn verify} runs the same cases every time.</li>
 *   <li>{@link #count(String, int)} reads how many cases to run from a system property, which the
 *       {@code stress} profile raises.</li>
 * </ul>
 */
public final class Seeded {
    /** The property that reruns one seed. */
    public static final String SEED = "iommu4j.seed";
    /** The property that moves the series of seeds. */
    public static final String BASE = "iommu4j.seed.base";

    private Seeded() {
    }

    /** A test body run once per seed. */
    @FunctionalInterface
    public interface Case {
        /**
         * @param random seeded with the case's seed
         * @throws Exception a failure, reported with the seed
         */
        void run(Random random) throws Exception;
    }

    /** A test body that wants the seed itself, for example to build a host whose own randomness repeats. */
    @FunctionalInterface
    public interface SeedCase {
        /**
         * @param seed the case's seed
         * @throws Exception a failure, reported with the seed
         */
        void run(long seed) throws Exception;
    }

    /**
     * @param property a system property, for example {@code iommu4j.model.sequences}
     * @param verifyDefault the count when it is not set
     * @return the property's value, or the default
     */
    public static int count(String property, int verifyDefault) {
        String given = System.getProperty(property, "").strip();
        return given.isEmpty() ? verifyDefault : Integer.parseInt(given);
    }

    /**
     * Runs {@code body} for {@code cases} seeds derived from {@code name} (or for the one seed given with
     * {@code -Diommu4j.seed}), stopping at the first failure.
     *
     * @param name names the series, usually the test class and method
     * @param cases how many seeds
     * @param body the test
     */
    public static void forEach(String name, int cases, Case body) {
        forEachSeed(name, cases, seed -> body.run(new Random(seed)));
    }

    /**
     * As {@link #forEach}, handing the seed itself to the body.
     *
     * @param name names the series
     * @param cases how many seeds
     * @param body the test
     */
    public static void forEachSeed(String name, int cases, SeedCase body) {
        String only = System.getProperty(SEED, "").strip();
        if (!only.isEmpty()) {
            run(parse(only), body);
            return;
        }
        long base = base(name);
        for (int i = 0; i < cases; i++) {
            run(mix(base + i), body);
        }
    }

    /**
     * Runs one case and names its seed if it fails.
     *
     * @param seed the seed
     * @param body the test
     */
    public static void run(long seed, SeedCase body) {
        try {
            body.run(seed);
        } catch (Throwable t) {
            throw failure(seed, t);
        }
    }

    /**
     * @param seed the seed a failing case ran with
     * @param cause what failed
     * @return an assertion error whose message names the seed and how to rerun it
     */
    public static AssertionError failure(long seed, Throwable cause) {
        return new AssertionError(String.format("seed=0x%x (rerun with -D%s=0x%x): %s", seed, SEED, seed, cause),
                cause);
    }

    private static long base(String name) {
        String given = System.getProperty(BASE, "").strip();
        if (given.equals("random")) {
            return System.nanoTime();
        }
        return given.isEmpty() ? name.hashCode() * 0x9E3779B97F4A7C15L : parse(given);
    }

    private static long parse(String text) {
        String t = text.toLowerCase(java.util.Locale.ROOT);
        return t.startsWith("0x") ? Long.parseUnsignedLong(t.substring(2), 16) : Long.parseLong(t);
    }

    /** SplitMix64's finaliser: neighbouring indexes give unrelated seeds. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
