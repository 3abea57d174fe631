package org.iommu4j.cli;

import java.util.List;

/**
 * What the demo saw on one backend.
 *
 * @param backend the backend's name
 * @param status {@code ok}, {@code skipped} or {@code failed}
 * @param reason why it was skipped or failed, else empty
 * @param vfioType the iommu type the container used, or empty
 * @param group the VFIO node of the NIC's iommu group ({@code /dev/vfio/0}, {@code /dev/vfio/noiommu-0}), or
 *     empty when the NIC was not bound
 * @param isolated whether the device's group isolates it
 * @param mapping how the buffer was mapped: translated, iova == phys, direct or bounced
 * @param packetIn whether the device's write reached the process intact
 * @param packetOut whether the process's write reached the device intact
 * @param bouncedBytes bytes the swiotlb pool copied, both ways
 * @param strayDma what the stray DMA did: faulted, corrupted, no effect
 * @param taint the {@code Tainted:} line
 * @param taintFlags the letters of the flags set, in bit order; empty when untainted
 * @param narrative the story in plain words, one line per event
 */
record DemoResult(String backend, String status, String reason, String vfioType, String group, boolean isolated,
        String mapping,
        boolean packetIn, boolean packetOut, long bouncedBytes, String strayDma, String taint,
        String taintFlags, List<String> narrative) {
}
