package org.iommu4j.xen;

import java.util.Random;

/**
 * How a domain's pseudo-physical memory is laid over machine memory when it is populated. The hypervisor
 * gives a domain its memory in 2 MiB extents, the highest free ones first (as Xen's heap allocator takes the
 * highest zone first, so that memory below 4 GiB stays free for DMA); within an extent the layout decides
 * where each 4 KiB page goes. A guest's contiguous pages are generally not machine-contiguous:
 * {@link #scattered(long)}, the default, makes that so on purpose.
 */
public abstract sealed class P2mLayout {
    static final int EXTENT = 1 << SparseFrameTable.LEAF_SHIFT;

    private P2mLayout() {
    }

    /** @return extents in ascending machine order, pages in order inside each: machine-contiguous where free */
    public static P2mLayout contiguous() {
        return new Contiguous();
    }

    /**
     * @param seed for the shuffles, so that a layout can be reproduced
     * @return extents in a shuffled order, and the 512 pages of each in one shuffled order, in which no page
     *     follows its predecessor: no two consecutive pages are machine-contiguous
     */
    public static P2mLayout scattered(long seed) {
        return new Scattered(seed);
    }

    /** Orders the machine extents given to a domain, in place: entry i backs the domain's i-th extent. */
    abstract void orderExtents(long[] extentMfns);

    /** @return where page i of an extent goes in its machine extent, a permutation of 0..511 */
    abstract int[] pagePermutation();

    private static final class Contiguous extends P2mLayout {
        @Override
        void orderExtents(long[] extentMfns) {
            java.util.Arrays.sort(extentMfns);
        }

        @Override
        int[] pagePermutation() {
            int[] p = new int[EXTENT];
            for (int i = 0; i < EXTENT; i++) {
                p[i] = i;
            }
            return p;
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
        void orderExtents(long[] extentMfns) {
            Random random = new Random(seed);
            for (int i = extentMfns.length - 1; i > 0; i--) {
                int j = random.nextInt(i + 1);
                long t = extentMfns[i];
                extentMfns[i] = extentMfns[j];
                extentMfns[j] = t;
            }
        }

        /**
         * Page i goes to {@code (i * stride + offset) mod 512}, stride odd and at least 3, both from the seed: a
         * permutation in which consecutive pages lie {@code stride} frames apart, never one.
         */
        @Override
        int[] pagePermutation() {
            Random random = new Random(seed);
            int stride = 3 + 2 * random.nextInt(EXTENT / 2 - 2);
            int offset = random.nextInt(EXTENT);
            int[] p = new int[EXTENT];
            for (int i = 0; i < EXTENT; i++) {
                p[i] = (i * stride + offset) % EXTENT;
            }
            return p;
        }

        @Override
        public String toString() {
            return "scattered(seed " + seed + ")";
        }
    }
}
