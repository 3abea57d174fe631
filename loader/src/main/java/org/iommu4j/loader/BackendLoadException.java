package org.iommu4j.loader;

import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;

/** A backend the loader cannot load, with the reason as a {@link Kind} a caller can switch on. */
public final class BackendLoadException extends IommuException {
    private static final long serialVersionUID = 1L;

    /** Why a load was refused. */
    public enum Kind {
        /** No backend has the name ({@link Errno#ENOENT}). */
        UNKNOWN(Errno.ENOENT),
        /** Two backends have the name ({@link Errno#EEXIST}). */
        DUPLICATE(Errno.EEXIST),
        /** Built for another API major version ({@link Errno#ENOEXEC}). */
        INCOMPATIBLE(Errno.ENOEXEC),
        /** A backend it depends on was not found ({@link Errno#ENOENT}). */
        MISSING_DEPENDENCY(Errno.ENOENT),
        /** Its dependencies lead back to it ({@link Errno#EINVAL}). */
        DEPENDENCY_CYCLE(Errno.EINVAL);

        private final Errno errno;

        Kind(Errno errno) {
            this.errno = errno;
        }
    }

    private final Kind kind;

    BackendLoadException(Kind kind, String message) {
        super(kind.errno, message);
        this.kind = kind;
    }

    /** @return why the load was refused */
    public Kind kind() {
        return kind;
    }
}
