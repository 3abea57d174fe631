package org.iommu4j.kernel.vfio;

import java.util.Set;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.VfioIommuDriver;
import org.iommu4j.kernel.proc.UserProcess;

/**
 * The one place VFIO decides whether a caller may do something. Every access point calls it with the caller
 * it was handed, so holding a file that a privileged process opened gives an unprivileged one nothing: the
 * kernel checks {@code capable()} of the current task at each step, not only at open.
 */
final class VfioAccess {
    private VfioAccess() {
    }

    /** The steps at which VFIO checks, named as the user meets them. */
    enum Step {
        OPEN_GROUP("opening"),
        SET_CONTAINER("adding to a container"),
        UNSET_CONTAINER("removing from its container"),
        GET_DEVICE("getting a device from"),
        DEVICE_ACCESS("accessing a device of"),
        SET_IOMMU("setting the iommu type of"),
        INFO("asking the iommu info of"),
        MAP("mapping DMA in"),
        UNMAP("unmapping DMA in"),
        SYNC("syncing DMA in");

        private final String verb;

        Step(String verb) {
            this.verb = verb;
        }
    }

    /**
     * A group without isolation may be used only with CAP_SYS_RAWIO, at every step.
     *
     * @param caller who asks
     * @param group the group
     * @param step what is asked
     */
    static void checkGroup(UserProcess caller, VfioGroup group, Step step) {
        if (!group.isolated()) {
            require(caller, Set.of(Capability.CAP_SYS_RAWIO), step, group.node(),
                    "it has no IOMMU isolation");
        }
    }

    /**
     * A container needs whatever its iommu driver requires, at every step. Allocation-free when allowed (it runs
     * on every map and unmap).
     *
     * @param caller who asks
     * @param driver the container's iommu driver
     * @param step what is asked
     */
    static void checkContainer(UserProcess caller, VfioIommuDriver driver, Step step) {
        Set<Capability> required = driver.requiredCapabilities();
        if (required.isEmpty()) {
            return;
        }
        for (Capability c : required) {
            if (!caller.capable(c)) {
                throw refused(caller, c, step, "a container with " + driver.name(),
                        "its iommu driver gives no DMA isolation");
            }
        }
    }

    private static void require(UserProcess caller, Set<Capability> required, Step step, String what,
            String why) {
        for (Capability c : required) {
            if (!caller.capable(c)) {
                throw refused(caller, c, step, what, why);
            }
        }
    }

    private static IommuException refused(UserProcess caller, Capability c, Step step, String what, String why) {
        return new IommuException(Errno.EPERM, step.verb + " " + what + " requires " + c + " (" + why + "); "
                + caller + " does not have it");
    }
}
