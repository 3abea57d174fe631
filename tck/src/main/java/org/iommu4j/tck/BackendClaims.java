package org.iommu4j.tck;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.Vfio;

/**
 * What a backend claims to do, declared by its author in {@link BackendCompatibilityKit#claims()}. The kit checks
 * each claim, and skips (with the reason) the checks of a capability not claimed, never failing them.
 *
 * @param translation its IOMMU domains for VFIO ({@code UNMANAGED}) translate: an iova reaches only what was
 *     mapped at it
 * @param isolation its iommu groups are isolated: a device's DMA outside its mappings faults, so an unprivileged
 *     user may have the device
 * @param bounceBuffering the DMA API bounces buffers a device cannot reach through low memory
 * @param dmaApi the DMA API (map, unmap, sync) works for the kit's device while the backend is loaded
 * @param identityDomains devices it manages start in identity (pass-through) domains: bus address == physical
 * @param pageSizes the page-size bitmap its IOMMU ops advertise (bit 12 for 4 KiB), or 0 when it registers none
 * @param coherentAllocation coherent buffers ({@code dma_alloc_coherent}) work for the kit's device
 * @param hotPlug a device added after load is managed like one present at load, and one removed is released
 * @param vfioTypes the VFIO iommu types ({@link Vfio#TYPE1v2_IOMMU}, ...) a container offers for the kit's device
 * @param parameters the module parameters the kit loads it with (for example a {@code hide} list naming
 *     {@link BackendCompatibilityKit#DEVICE})
 * @param unsafeOptIn the parameter that opts in to VFIO without isolation (for example
 *     {@code enable_unsafe_noiommu_mode}), which {@link #parameters} sets to 1; null when there is none
 * @param knownBugs checks to skip, by rule id, with the reason (a bug filed elsewhere): each is reported as
 *     skipped, never silently passed
 */
public record BackendClaims(boolean translation, boolean isolation, boolean bounceBuffering, boolean dmaApi,
        boolean identityDomains, long pageSizes, boolean coherentAllocation, boolean hotPlug, Set<Integer> vfioTypes,
        Map<String, String> parameters, String unsafeOptIn, Map<String, String> knownBugs) {

    /** The VFIO iommu types the kit knows, asked of every container. */
    public static final List<Integer> KNOWN_VFIO_TYPES = List.of(Vfio.TYPE1_IOMMU, Vfio.TYPE1v2_IOMMU,
            Vfio.NOIOMMU_IOMMU, Vfio.SWIOTLB_IOMMU);

    /**
     * Copies the collections.
     *
     * @param translation see the record description
     * @param isolation see the record description
     * @param bounceBuffering see the record description
     * @param dmaApi see the record description
     * @param identityDomains see the record description
     * @param pageSizes see the record description
     * @param coherentAllocation see the record description
     * @param hotPlug see the record description
     * @param vfioTypes see the record description
     * @param parameters see the record description
     * @param unsafeOptIn see the record description
     * @param knownBugs see the record description
     */
    public BackendClaims {
        vfioTypes = Set.copyOf(vfioTypes);
        parameters = Map.copyOf(parameters);
        knownBugs = Map.copyOf(knownBugs);
    }

    /** @return a builder that claims nothing: no translation, no isolation, no DMA API, no VFIO type */
    public static Builder builder() {
        return new Builder();
    }

    /** @return the VFIO types claimed, by name, for messages */
    public String vfioTypeNames() {
        Set<String> names = new TreeSet<>();
        vfioTypes.forEach(t -> names.add(Vfio.typeName(t)));
        return names.toString();
    }

    /** Builds {@link BackendClaims}; each method claims one thing. */
    public static final class Builder {
        private boolean translation;
        private boolean isolation;
        private boolean bounceBuffering;
        private boolean dmaApi;
        private boolean identityDomains;
        private long pageSizes;
        private boolean coherentAllocation;
        private boolean hotPlug;
        private final Set<Integer> vfioTypes = new TreeSet<>();
        private final Map<String, String> parameters = new LinkedHashMap<>();
        private String unsafeOptIn;
        private final Map<String, String> knownBugs = new LinkedHashMap<>();

        private Builder() {
        }

        /** @return this, claiming domains that translate */
        public Builder translation() {
            translation = true;
            return this;
        }

        /** @return this, claiming isolated groups */
        public Builder isolation() {
            isolation = true;
            return this;
        }

        /** @return this, claiming bounce buffering */
        public Builder bounceBuffering() {
            bounceBuffering = true;
            return this;
        }

        /** @return this, claiming a working DMA API */
        public Builder dmaApi() {
            dmaApi = true;
            return this;
        }

        /** @return this, claiming identity default domains */
        public Builder identityDomains() {
            identityDomains = true;
            return this;
        }

        /**
         * @param bitmap the page sizes its IOMMU ops advertise, one bit per size
         * @return this
         */
        public Builder pageSizes(long bitmap) {
            pageSizes = bitmap;
            return this;
        }

        /** @return this, claiming 4 KiB pages only, the api's default */
        public Builder smallPagesOnly() {
            return pageSizes(PhysicalMemory.PAGE_SIZE);
        }

        /** @return this, claiming coherent allocation */
        public Builder coherentAllocation() {
            coherentAllocation = true;
            return this;
        }

        /** @return this, claiming hot-plug */
        public Builder hotPlug() {
            hotPlug = true;
            return this;
        }

        /**
         * @param types VFIO iommu types offered for the kit's device
         * @return this
         */
        public Builder vfioTypes(int... types) {
            for (int t : types) {
                vfioTypes.add(t);
            }
            return this;
        }

        /**
         * @param name a module parameter
         * @param value its value for the kit's loads
         * @return this
         */
        public Builder parameter(String name, String value) {
            parameters.put(name, value);
            return this;
        }

        /**
         * @param parameter the parameter that opts in to VFIO without isolation; set to 1 for the kit's loads
         * @return this
         */
        public Builder unsafeOptIn(String parameter) {
            unsafeOptIn = parameter;
            parameters.put(parameter, "1");
            return this;
        }

        /**
         * Skips one check for a bug known and filed elsewhere; the check is reported as skipped with the reason.
         *
         * @param ruleId the rule's id, for example {@code iommu.overlap}
         * @param reason the bug, for example a tracker reference and one line
         * @return this
         */
        public Builder knownBug(String ruleId, String reason) {
            knownBugs.put(ruleId, reason);
            return this;
        }

        /** @return the claims */
        public BackendClaims build() {
            return new BackendClaims(translation, isolation, bounceBuffering, dmaApi, identityDomains, pageSizes,
                    coherentAllocation, hotPlug, vfioTypes, parameters, unsafeOptIn, knownBugs);
        }
    }
}
