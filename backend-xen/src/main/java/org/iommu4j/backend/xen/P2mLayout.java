package org.iommu4j.backend.xen;

import java.util.Random;

/**
 * How a domain's pseudo-physical pages are laid over machine frames when it is populated. A guest's
 * contiguous pages are generally not machine-contiguous; {@link #scattered(long)} makes that so on purpose.
 */
public abstract sealed class P2mLayout {

    private P2mLayout() {
    }

    /** @return pfn i on the i-th free machine frame, lowest first: machine-contiguous wherever frames are free */
    public static P2mLayout contiguous() {
        return new Contiguous();
    }

    /**
     * @param seed for the shuffle, so a layout can be reproduced
     * @return every pfn on a machine frame picked at random from the lowest free frames, half again as many as
     *     the domain needs, so that machine memory above stays free in runs, as a hypervisor's heap does
     */
    public static P2mLayout scattered(long seed) {
        return new Scattered(seed);
    }

    /**
     * @param mfns the machine frame of each pfn, in pfn order; each must be free
     * @return exactly that layout
     */
    public static P2mLayout explicit(long[] mfns) {
        return new Explicit(mfns.clone());
    }

    /**
     * Chooses the machine frames for a domain.
     *
     * @param free the free machine frames, ascending
     * @param pages how many pages the domain has
     * @return the machine frame for each pfn
     */
    abstract long[] place(long[] free, int pages);

    private static final class Contiguous extends P2mLayout {
        @Override
        long[] place(long[] free, int pages) {
            return java.util.Arrays.copyOf(free, pages);
        }

        @Override
        public String toString() {
            return "contiguous";
        }
    }

    private static final class Scattered extends P2mLayout {
        private final long seed;

        Scattered(long seed) {
            this.seed = seed;
        }

        @Override
        long[] place(long[] free, int pages) {
            long[] pool = java.util.Arrays.copyOf(free, (int) Math.min(free.length, pages + (long) pages / 2));
            Random random = new Random(seed);
            for (int i = pool.length - 1; i > 0; i--) {
                int j = random.nextInt(i + 1);
                long t = pool[i];
                pool[i] = pool[j];
                pool[j] = t;
            }
            return java.util.Arrays.copyOf(pool, pages);
        }

        @Override
        public String toString() {
            return "scattered(seed " + seed + ")";
        }
    }

    private static final class Explicit extends P2mLayout {
        private final long[] mfns;

        Explicit(long[] mfns) {
            this.mfns = mfns;
        }

        @Override
        long[] place(long[] free, int pages) {
            if (mfns.length != pages) {
                throw new IllegalArgumentException("an explicit p2m of " + mfns.length + " frames for a domain of "
                        + pages + " pages");
            }
            return mfns.clone();
        }

        @Override
        public String toString() {
            return "explicit";
        }
    }
}
