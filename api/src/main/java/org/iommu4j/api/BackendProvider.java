package org.iommu4j.api;

/**
 * What the loader discovers with {@link java.util.ServiceLoader}: one per backend, listed in
 * {@code META-INF/services/org.iommu4j.api.BackendProvider} of the backend's jar. It describes the backend and
 * starts it on a host; it is the module's {@code .ko} file, and {@link #start} is its {@code module_init}.
 *
 * <p>Constructing a provider must do no work and touch no state: the loader instantiates providers merely
 * to list them. {@link #info()} must be cheap and always return the same metadata.
 *
 * <p>The jar's manifest must name the api version it was built against, {@code Iommu4j-Api-Version: 1.2}
 * (the value of {@link ApiVersion#CURRENT}'s major.minor), so that the loader can refuse a jar built for another
 * major version before it instantiates anything; a plugin jar without it is reported as broken. With Maven, put
 * it in the jar plugin's {@code <manifestEntries>}, as {@code examples/oot-backend/pom.xml} does.
 */
public interface BackendProvider {

    /** @return the backend's module metadata */
    ModuleInfo info();

    /**
     * Starts the backend on a host: register {@link IommuOps}, {@link DmaOps}, {@link VfioIommuDriver}s and
     * exported symbols through {@code kernel}. If this throws, the load fails and the kernel unregisters
     * whatever was registered.
     *
     * @param kernel the host's services, scoped to this module, with its parameters already validated
     * @return the running backend
     * @throws IommuException to refuse the load, with the reason
     */
    Backend start(KernelServices kernel);
}
