package org.iommu4j.backend.swiotlb;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.KernelServices;

/**
 * The pool's shape, from the module's parameters and the kernel's own {@code swiotlb=} word
 * ({@code swiotlb=<nslabs>[,<nareas>][,force|noforce]}, {@code swiotlb=force}, {@code swiotlb=noforce}).
 * Module parameters, when set, win over the word. As in the kernel, the slab count is rounded up to whole
 * segments and the area count up to a power of two, capped so that each area holds whole segments.
 *
 * @param nslabs slots in the pool
 * @param nareas areas, a power of two
 * @param force bounce every mapping
 * @param disabled no pool at all ({@code noforce})
 * @param limit the pool must lie below this physical address
 */
record SwiotlbConfig(int nslabs, int nareas, boolean force, boolean disabled, long limit) {

    private static final Pattern WORD = Pattern.compile(
            "(?:(\\d+|0x[0-9a-fA-F]+)(?:,(\\d+))?)?(?:,?(force|noforce))?");

    static SwiotlbConfig from(KernelServices kernel) {
        long nslabs = 0;
        long nareas = 0;
        boolean force = false;
        boolean disabled = false;
        String word = kernel.commandLine().get("swiotlb").orElse("");
        if (!word.isEmpty()) {
            Matcher m = WORD.matcher(word);
            if (!m.matches()) {
                throw new IommuException(Errno.EINVAL, "invalid kernel parameter swiotlb=" + word + ": expected"
                        + " swiotlb=<nslabs>[,<nareas>][,force|noforce], swiotlb=force or swiotlb=noforce");
            }
            if (m.group(1) != null) {
                nslabs = Long.decode(m.group(1));
            }
            if (m.group(2) != null) {
                nareas = Long.parseLong(m.group(2));
            }
            force = "force".equals(m.group(3));
            disabled = "noforce".equals(m.group(3));
        }
        if (kernel.parameters().getLong("nslabs") != 0) {
            nslabs = kernel.parameters().getLong("nslabs");
        }
        if (kernel.parameters().getLong("nareas") != 0) {
            nareas = kernel.parameters().getLong("nareas");
        }
        force |= kernel.parameters().getBool("force");
        if (nslabs == 0) {
            nslabs = SwiotlbPool.IO_TLB_DEFAULT_NSLABS;
        }
        if (nareas == 0) {
            nareas = kernel.cpuCount();
        }
        long seg = SwiotlbPool.IO_TLB_SEGSIZE;
        nslabs = (nslabs + seg - 1) / seg * seg;
        nareas = Long.highestOneBit(nareas) == nareas ? nareas : Long.highestOneBit(nareas) << 1;
        nareas = Math.min(nareas, Long.highestOneBit(nslabs / seg));
        nslabs = (nslabs + seg * nareas - 1) / (seg * nareas) * (seg * nareas);
        if (nslabs > (1L << 24)) {
            throw new IommuException(Errno.EINVAL, "swiotlb: " + nslabs + " slabs is too many: at most 16777216"
                    + " (32 GiB)");
        }
        return new SwiotlbConfig((int) nslabs, (int) nareas, force, disabled, kernel.parameters().getLong("limit"));
    }

    /** @return pool bytes */
    long bytes() {
        return (long) nslabs << SwiotlbPool.IO_TLB_SHIFT;
    }
}
