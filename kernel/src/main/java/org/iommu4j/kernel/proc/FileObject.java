package org.iommu4j.kernel.proc;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;

/**
 * An open file description (the kernel's {@code struct file}) that processes hold descriptors to. The process
 * that opens it holds it; {@link UserProcess#fork} gives the child a descriptor to every file the parent holds,
 * and {@link #passTo} gives one to another process, as {@code SCM_RIGHTS} over a Unix socket does. A process
 * that holds no descriptor to it gets {@link Errno#EBADF} from every call ({@link #requireHeld}). The file is
 * released when its last holder closes it or exits ({@link #lastClose}); a subclass may keep it alive past
 * that while the kernel still references it (an open device keeps its group file, a group its container).
 *
 * <p>One process holds at most one descriptor to a file here: {@code dup} is not modelled.
 */
public abstract class FileObject {
    private final Set<UserProcess> holders = Collections.newSetFromMap(new IdentityHashMap<>());

    /** A file nobody holds yet: {@link #openBy} gives it its first holder. */
    protected FileObject() {
    }

    /**
     * Installs the file in its opener's descriptor table, the last step of an open: call it before anything
     * else the open changes, so that an exited opener leaves nothing changed.
     *
     * @param opener the process that opens it
     * @throws IommuException {@link Errno#ESRCH} if the opener has exited (nothing is held then)
     */
    protected final void openBy(UserProcess opener) {
        opener.install(this);
        synchronized (holders) {
            holders.add(opener);
        }
    }

    /** @return the file's name for messages, for example {@code /dev/vfio/vfio} */
    public abstract String fileName();

    /**
     * What happens when no process holds the file any more. Runs once, outside any lock of this class.
     */
    protected abstract void lastClose();

    /**
     * @param process a process
     * @return whether it holds a descriptor to this file
     */
    public final boolean heldBy(UserProcess process) {
        synchronized (holders) {
            return holders.contains(process);
        }
    }

    /** @return the processes that hold a descriptor to it, in no particular order */
    public final List<UserProcess> holders() {
        synchronized (holders) {
            return List.copyOf(new ArrayList<>(holders));
        }
    }

    /**
     * The kernel's {@code fdget}: the caller must hold a descriptor to this file.
     *
     * @param caller who calls
     * @throws IommuException {@link Errno#EBADF} naming the file and the caller when it holds none
     */
    public final void requireHeld(UserProcess caller) {
        if (!heldBy(caller)) {
            throw new IommuException(Errno.EBADF, fileName() + ": Bad file descriptor: " + caller
                    + " holds no descriptor to it (open it, inherit it by fork, or be passed it)");
        }
    }

    /**
     * Gives {@code to} a descriptor to this file, as sending it with {@code SCM_RIGHTS} does: both then hold
     * the same open file.
     *
     * @param from the process that sends it, which must hold it
     * @param to the process that receives it
     * @throws IommuException {@link Errno#EBADF} if {@code from} does not hold it, {@link Errno#ESRCH} if
     *     {@code to} has exited; nothing changes then
     */
    public final void passTo(UserProcess from, UserProcess to) {
        requireHeld(from);
        synchronized (holders) {
            if (holders.contains(to)) {
                return;
            }
        }
        to.install(this);
        synchronized (holders) {
            holders.add(to);
        }
    }

    /**
     * Closes the caller's descriptor. The last one to go releases the file.
     *
     * @param caller the process that closes it
     * @throws IommuException {@link Errno#EBADF} if the caller holds no descriptor to it
     */
    public final void close(UserProcess caller) {
        requireHeld(caller);
        caller.uninstall(this);
        drop(caller);
    }

    /** A holder goes (close, or exit); the last one releases the file. */
    final void drop(UserProcess holder) {
        boolean last;
        synchronized (holders) {
            if (!holders.remove(holder)) {
                return;
            }
            last = holders.isEmpty();
        }
        if (last) {
            lastClose();
        }
    }

    /** Fork: the child holds it too. */
    final void inherit(UserProcess child) {
        synchronized (holders) {
            holders.add(child);
        }
    }

    /** @return whether any process holds it */
    protected final boolean held() {
        synchronized (holders) {
            return !holders.isEmpty();
        }
    }
}
