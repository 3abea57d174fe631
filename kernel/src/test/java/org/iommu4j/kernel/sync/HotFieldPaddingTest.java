package org.iommu4j.kernel.sync;

import org.iommu4j.testsupport.FieldLayout;
import org.junit.jupiter.api.Test;

/**
 * The fields the DMA hot path writes on every call sit 128 bytes from anything another object could hold. HotSpot
 * puts a subclass's int into the 4 bytes after a compressed object header when the superclass leaves them free, so
 * padding made of longs alone left the lock word at offset 12, on the cache line of the object before it: with
 * swiotlb's area locks there, one CPU's lock made the other's search miss (bench row 4, 2 threads: 0.41 of the spin
 * control's scaling).
 */
class HotFieldPaddingTest {
    @Test
    void aSpinLocksWordIsPaddedOnBothSides() {
        FieldLayout.requirePadded(Padded.class, "state", 128);
    }

    @Test
    void aDmaApiSlotsStateAndKeyArePaddedOnBothSides() throws Exception {
        Class<?> slot = Class.forName("org.iommu4j.kernel.dma.LiveMappings$Slot");
        FieldLayout.requirePadded(slot, "state", 128);
        FieldLayout.requirePadded(slot, "key", 128);
    }

    @Test
    void aDeviceRecordsLockWordIsPaddedOnBothSides() throws Exception {
        FieldLayout.requirePadded(Class.forName("org.iommu4j.kernel.dma.LiveMappings"), "state", 128);
    }

    /** A lock with a field of its own, as every user of {@link SpinLock} has. */
    private static final class Padded extends SpinLock {
        @SuppressWarnings("unused")
        int mine;
    }
}
