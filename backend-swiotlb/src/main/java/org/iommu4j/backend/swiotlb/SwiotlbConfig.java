package org.iommu4j.backend.swiotlb;

import org.iommu4j.api.KernelLog;
import org.iommu4j.api.KernelServices;
import org.iommu4j.api.LogLevel;

/**
 * The default pool's shape, worked out as Linux v6.12 does in {@code kernel/dma/swiotlb.c}
 * ({@code setup_io_tlb_npages}, {@code swiotlb_adjust_nareas}, {@code round_up_default_nslabs},
 * {@code limit_nareas}), from the kernel's {@code swiotlb=<nslabs>[,<nareas>][,force|noforce]} word and the
 * module's own parameters, which win over the word when set (the kernel has only the word; the parameters are the
 * model's, as this module loads at run time).
 *
 * <p>The word is read as {@code setup_io_tlb_npages} reads it: a number ({@code simple_strtoul}, base 0: decimal,
 * {@code 0x} hex, leading-0 octal) aligned up to a segment of {@value SwiotlbPool#IO_TLB_SEGSIZE} slots, an
 * optional {@code ,<nareas>} (0 means one area, anything else rounds up to a power of two, and "area num N." is
 * logged), then {@code force} or {@code noforce}; anything else is ignored, and the load goes on with what was
 * read. Once the area count is known the pool grows so each area holds at least a segment, and a slot count that
 * is not a power of two rounds up to one ("SWIOTLB bounce buffer size roundup to N MB"). With no area count
 * given, the CPU count is taken when the pool is made, as {@code swiotlb_init_remap} does.
 *
 * @param nslabs slots the default pool is asked to have ({@code default_nslabs})
 * @param nareas areas, a power of two, already limited to what {@code nslabs} can hold
 * @param force bounce every mapping
 * @param disabled no pool at all ({@code noforce})
 * @param limit the pool must end at or below this physical address (0: anywhere)
 * @param dynamic whether pools are added when all are full ({@code CONFIG_SWIOTLB_DYNAMIC})
 */
record SwiotlbConfig(long nslabs, int nareas, boolean force, boolean disabled, long limit, boolean dynamic) {

    /** The log prefix of every {@code pr_info} in swiotlb.c ({@code pr_fmt}). */
    static final String PR_FMT = "software IO TLB";

    /** What {@link #from} is working on: the kernel's {@code default_nslabs} and {@code default_nareas}. */
    private static final class Defaults {
        long nslabs = SwiotlbPool.IO_TLB_DEFAULT_NSLABS;
        long nareas;
        boolean force;
        boolean disabled;
    }

    static SwiotlbConfig from(KernelServices kernel) {
        KernelLog log = kernel.log().withPrefix(PR_FMT);
        Defaults d = new Defaults();
        kernel.commandLine().get("swiotlb").ifPresent(word -> parse(word, d, log));
        long nslabsParam = kernel.parameters().getLong("nslabs");
        if (nslabsParam != 0) {
            d.nslabs = alignSegment(nslabsParam);
            if (d.nareas != 0 && roundUpDefaultNslabs(d)) {
                logRoundup(log, d);
            }
        }
        long nareasParam = kernel.parameters().getLong("nareas");
        if (nareasParam != 0) {
            adjustNareas(d, nareasParam, log);
        }
        if (d.nareas == 0) {
            adjustNareas(d, kernel.cpuCount(), log);
        }
        int nareas = limitNareas((int) d.nareas, d.nslabs);
        return new SwiotlbConfig(d.nslabs, nareas, d.force || kernel.parameters().getBool("force"), d.disabled,
                kernel.parameters().getLong("limit"), kernel.parameters().getBool("dynamic"));
    }

    /** {@code setup_io_tlb_npages}: never fails; what it cannot read it leaves alone. */
    private static void parse(String word, Defaults d, KernelLog log) {
        int[] at = {0};
        if (at[0] < word.length() && Character.isDigit(word.charAt(at[0]))) {
            d.nslabs = alignSegment(strtoul(word, at));
        }
        if (at[0] < word.length() && word.charAt(at[0]) == ',') {
            at[0]++;
        }
        if (at[0] < word.length() && Character.isDigit(word.charAt(at[0]))) {
            adjustNareas(d, strtoul(word, at), log);
        }
        if (at[0] < word.length() && word.charAt(at[0]) == ',') {
            at[0]++;
        }
        String rest = word.substring(at[0]);
        if (rest.equals("force")) {
            d.force = true;
        } else if (rest.equals("noforce")) {
            d.disabled = true;
        }
    }

    /** {@code simple_strtoul(s, &end, 0)}: base from the prefix, digits until the first that is not one; wraps. */
    static long strtoul(String s, int[] at) {
        int i = at[0];
        int base = 10;
        if (s.startsWith("0x", i) || s.startsWith("0X", i)) {
            if (i + 2 < s.length() && Character.digit(s.charAt(i + 2), 16) >= 0) {
                base = 16;
                i += 2;
            }
        } else if (s.startsWith("0", i)) {
            base = 8;
        }
        long value = 0;
        while (i < s.length()) {
            int digit = Character.digit(s.charAt(i), base);
            if (digit < 0 || s.charAt(i) > 0x7f) {
                break;
            }
            value = value * base + digit;
            i++;
        }
        at[0] = i;
        return value;
    }

    /** {@code ALIGN(n, IO_TLB_SEGSIZE)} on an unsigned long. */
    static long alignSegment(long n) {
        return (n + SwiotlbPool.IO_TLB_SEGSIZE - 1) & -SwiotlbPool.IO_TLB_SEGSIZE;
    }

    /** {@code swiotlb_adjust_nareas}: 0 is 1, else up to a power of two; logged; may grow the pool. */
    private static void adjustNareas(Defaults d, long requested, KernelLog log) {
        long nareas = requested & 0xffffffffL; // an unsigned int
        if (nareas == 0) {
            nareas = 1;
        } else if (Long.bitCount(nareas) != 1) {
            nareas = Long.highestOneBit(nareas) << 1;
        }
        d.nareas = nareas;
        log.log(LogLevel.INFO, "area num " + (int) nareas + ".");
        if (roundUpDefaultNslabs(d)) {
            logRoundup(log, d);
        }
    }

    private static void logRoundup(KernelLog log, Defaults d) {
        log.log(LogLevel.INFO, "SWIOTLB bounce buffer size roundup to "
                + Long.toUnsignedString((d.nslabs << SwiotlbPool.IO_TLB_SHIFT) >>> 20) + "MB");
    }

    /** {@code round_up_default_nslabs}: at least a segment per area, and a power of two. */
    private static boolean roundUpDefaultNslabs(Defaults d) {
        if (d.nareas == 0) {
            return false;
        }
        if (Long.compareUnsigned(d.nslabs, SwiotlbPool.IO_TLB_SEGSIZE * d.nareas) < 0) {
            d.nslabs = SwiotlbPool.IO_TLB_SEGSIZE * d.nareas;
        } else if (Long.bitCount(d.nslabs) == 1) {
            return false;
        }
        long up = Long.highestOneBit(d.nslabs);
        d.nslabs = up == d.nslabs ? up : up << 1;
        return true;
    }

    /** {@code limit_nareas}: no more areas than whole segments. */
    static int limitNareas(int nareas, long nslots) {
        if (Long.compareUnsigned(nslots, (long) nareas * SwiotlbPool.IO_TLB_SEGSIZE) < 0) {
            return (int) (nslots / SwiotlbPool.IO_TLB_SEGSIZE);
        }
        return nareas;
    }
}
