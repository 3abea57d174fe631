package org.iommu4j.tck;

/**
 * The rules the kit checks, each with an id that every failure message starts with ({@code [iommu.overlap] ...}),
 * so that a failure names the rule broken and a {@link BackendClaims.Builder#knownBug known bug} can skip one.
 */
public enum Rule {
    /** The module name is at most 55 characters (the kernel's MODULE_NAME_LEN less its NUL). */
    METADATA_NAME("metadata.name", "the module name is a valid kernel module name"),
    /** The version is MAJOR[.MINOR[.PATCH]] with an optional suffix. */
    METADATA_VERSION("metadata.version", "the version is MAJOR[.MINOR[.PATCH]][-suffix]"),
    /** The license is one the kernel knows (MODULE_LICENSE). */
    METADATA_LICENSE("metadata.license", "the license is one of the kernel's MODULE_LICENSE strings"),
    /** The API range accepts the API the backend is tested against. */
    METADATA_API_RANGE("metadata.api-range", "info().apiVersions() accepts this API, within its major version"),
    /** info() answers the same metadata every time. */
    METADATA_INFO_STABLE("metadata.info-stable", "info() returns the same metadata on every call"),
    /** Constructing the provider does no work. */
    METADATA_CONSTRUCTOR("metadata.constructor", "constructing the provider does no work"),
    /** The built jar lists the provider in its services file. */
    METADATA_SERVICE_FILE("metadata.service-file",
            "META-INF/services/org.iommu4j.api.BackendProvider of the built jar lists the provider"),
    /** The manifest's API version and backend name agree with info(). */
    METADATA_MANIFEST("metadata.manifest",
            "the jar manifest's Iommu4j-Api-Version and Iommu4j-Backend-Name agree with info()"),

    /** start returns a running backend. */
    LIFECYCLE_START("lifecycle.start", "the backend starts on a fresh host"),
    /** stop leaves nothing registered. */
    LIFECYCLE_STOP("lifecycle.stop",
            "stop() leaves no registration, group, DMA ops or live mapping behind"),
    /** A second load after an unload works like the first. */
    LIFECYCLE_LOAD_TWICE("lifecycle.load-twice", "the backend loads again after an unload, as it did the first time"),
    /** Two hosts are independent. */
    LIFECYCLE_TWO_HOSTS("lifecycle.two-hosts",
            "loaded on two hosts side by side, each works, and unloading one leaves the other working"),
    /** Unload is refused while in use and allowed after. */
    LIFECYCLE_IN_USE("lifecycle.in-use", "unload is refused while a user holds the backend, and allowed after"),

    /** map, then iova-to-phys, reach exactly what was mapped. */
    IOMMU_MAP("iommu.map", "a mapped iova translates to its physical address, an unmapped one faults"),
    /** A map over a mapped range is refused and changes nothing. */
    IOMMU_OVERLAP("iommu.overlap", "mapping over a mapped iova is refused with EEXIST and changes nothing"),
    /** A zero-length map or unmap is refused or does nothing. */
    IOMMU_ZERO_LENGTH("iommu.zero-length", "a zero-length map is refused with EINVAL and maps nothing"),
    /** iova + size past 2^64 is refused. */
    IOMMU_OVERFLOW("iommu.overflow", "a map whose iova + size passes 2^64 is refused with EINVAL and maps nothing"),
    /** Sizes not a multiple of the page size are refused by the core. */
    IOMMU_UNALIGNED("iommu.unaligned", "a map of an unaligned size is refused with EINVAL"),
    /** A second unmap of a range unmaps nothing. */
    IOMMU_DOUBLE_UNMAP("iommu.double-unmap", "unmapping a range twice unmaps it once and then 0 bytes"),
    /** The page sizes advertised are claimed, and each maps. */
    IOMMU_PAGE_SIZES("iommu.page-sizes", "the advertised page sizes are the claimed ones, and each size maps"),
    /** Concurrent translation sees a stable mapping while others change. */
    IOMMU_CONCURRENT("iommu.concurrent", "translation of a stable mapping is right while other threads map and unmap"),

    /** DMA API round trips carry the bytes. */
    DMA_ROUND_TRIP("dma.round-trip", "the DMA API carries real bytes both ways, in every direction"),
    /** sync_for_cpu and sync_for_device hand ownership over with the bytes. */
    DMA_SYNC("dma.sync", "sync for CPU shows what the device wrote; sync for device shows it what the CPU wrote"),
    /** Coherent buffers are seen by both sides without syncs. */
    DMA_COHERENT("dma.coherent", "a coherent buffer is seen by CPU and device alike without syncs"),
    /** A device that cannot reach a buffer gets a bounced address it can reach. */
    DMA_BOUNCE("dma.bounce", "a buffer a device cannot reach is bounced through memory it can reach"),

    /** Containers offer exactly the claimed VFIO types. */
    VFIO_TYPES("vfio.types", "a VFIO container offers exactly the claimed iommu types for the device"),
    /** A user process's VFIO mapping carries bytes both ways. */
    VFIO_ROUND_TRIP("vfio.round-trip", "a user process's VFIO mapping carries bytes both ways"),
    /** A stray DMA does not reach memory it was not given. */
    VFIO_STRAY_DMA("vfio.stray-dma", "a device's DMA outside its mappings faults and reaches no other process"),

    /** Isolation claimed: groups isolated, strays fault, no privilege needed, no U taint. */
    CLAIMS_ISOLATION("claims.isolation", "a backend that claims isolation isolates"),
    /** No isolation: opt-in, CAP_SYS_RAWIO, taint U. */
    CLAIMS_NO_ISOLATION("claims.no-isolation",
            "a backend without isolation demands its opt-in and CAP_SYS_RAWIO, and taints U"),
    /** Hot-plug: devices added after load are managed, removed ones released. */
    CLAIMS_HOT_PLUG("claims.hot-plug", "a device added after load is managed, one removed is released"),
    /** Identity domains: bus address == physical. */
    CLAIMS_IDENTITY("claims.identity", "an identity domain passes DMA straight through"),

    /** Every allocation failure leaves nothing behind, and the retry works. */
    FAULTS("faults", "every allocation point failed in turn leaves nothing leaked, and the operation then succeeds"),
    /** A seeded random sequence of operations keeps to the model. */
    MODEL("model", "a random sequence of operations keeps to the model of what a device may see");

    private final String id;
    private final String text;

    Rule(String id, String text) {
        this.id = id;
        this.text = text;
    }

    /** @return the rule's id, for example {@code iommu.overlap} */
    public String id() {
        return id;
    }

    /** @return the rule in words */
    public String text() {
        return text;
    }

    /** @return {@code [id] text}, what failure messages start with */
    public String tag() {
        return "[" + id + "] " + text;
    }
}
