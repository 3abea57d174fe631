package org.iommu4j.kernel.module;

/**
 * A reference-counted owner of something registered with the kernel: a loaded module, or the kernel itself.
 * Users of a module's ops take a reference ({@code try_module_get}) and drop it when done
 * ({@code module_put}); a module with references cannot be unloaded.
 */
public interface ModuleRef {

    /** The kernel itself: always available, never counted. */
    ModuleRef KERNEL = new ModuleRef() {
        @Override
        public String name() {
            return "kernel";
        }

        @Override
        public boolean tryGet() {
            return true;
        }

        @Override
        public void put() {
        }

        @Override
        public String toString() {
            return "kernel";
        }
    };

    /** @return the owner's name */
    String name();

    /**
     * Takes a reference unless the module is going away.
     *
     * @return false if the module is unloading or gone
     */
    boolean tryGet();

    /** Drops a reference taken with {@link #tryGet()}. */
    void put();
}
