package org.iommu4j.backend.swiotlb;

import org.iommu4j.testsupport.FieldLayout;
import org.junit.jupiter.api.Test;

/**
 * An area's lock and counters, written by its CPU on every map and unmap, sit 128 bytes from anything another
 * object could hold: the areas are allocated right after the array of areas that every map reads, and with the
 * lock in the 4 bytes after the object header (where HotSpot put it while the padding was longs only) one CPU's
 * lock made every other CPU's search miss (bench row 4, 2 threads in 2 areas: 0.41 of the spin control's scaling).
 */
class SwiotlbAreaLayoutTest {
    @Test
    void anAreasLockAndCountersArePaddedOnBothSides() throws Exception {
        Class<?> area = Class.forName("org.iommu4j.backend.swiotlb.SwiotlbPool$Area");
        for (String field : new String[] {"lock", "used", "index", "hiwater", "toDevice", "fromDevice"}) {
            FieldLayout.requirePadded(area, field, 128);
        }
    }
}
