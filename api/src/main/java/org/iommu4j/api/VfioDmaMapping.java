package org.iommu4j.api;

/**
 * A live VFIO DMA mapping as the kernel's VFIO core records it and hands it back to the backend on unmap and
 * sync.
 *
 * @param iova the device address the backend's {@link VfioIommu#map} returned
 * @param pages the pinned user memory behind it; {@code pages.length()} is the mapping's size
 * @param prot {@link IommuProt} bits: READ lets the device read it, WRITE lets the device write it
 */
public record VfioDmaMapping(long iova, PinnedPages pages, int prot) {

    /** @return bytes mapped */
    public long size() {
        return pages.length();
    }

    /** @return the direction the protection implies, for bounce copies */
    public DmaDirection direction() {
        return DmaDirection.ofProt(prot);
    }
}
