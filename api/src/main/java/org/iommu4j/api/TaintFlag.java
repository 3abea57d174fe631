package org.iommu4j.api;

/**
 * The kernel's taint flags ({@code include/linux/panic.h}, Linux v6.12), in bit order, with the letter each prints in the
 * {@code Tainted:} line. Taint is sticky: once set on a host it stays until the host is discarded.
 */
public enum TaintFlag {
    /** A module with a license that is not GPL-compatible ('P'; 'G' is printed when clear). */
    PROPRIETARY_MODULE('P', true),
    /** A module was loaded by force ('F'). */
    FORCED_MODULE('F', true),
    /** SMP with CPUs not designed for SMP ('S'). */
    CPU_OUT_OF_SPEC('S', false),
    /** A module was unloaded by force ('R'). */
    FORCED_RMMOD('R', false),
    /** A machine check exception occurred ('M'). */
    MACHINE_CHECK('M', false),
    /** A bad page was referenced ('B'). */
    BAD_PAGE('B', false),
    /** Userspace asked for taint, or did something unsafe the kernel allowed: noiommu VFIO ('U'). */
    USER('U', false),
    /** The kernel died recently (OOPS or BUG) ('D'). */
    DIE('D', false),
    /** An ACPI table was overridden ('A'). */
    OVERRIDDEN_ACPI_TABLE('A', false),
    /** A warning was issued ('W'). */
    WARN('W', false),
    /** A staging driver was loaded ('C'). */
    CRAP('C', true),
    /** A firmware bug workaround is in use ('I'). */
    FIRMWARE_WORKAROUND('I', false),
    /** An out-of-tree module was loaded ('O'). */
    OOT_MODULE('O', true),
    /** An unsigned module was loaded ('E'). */
    UNSIGNED_MODULE('E', true),
    /** A soft lockup occurred ('L'). */
    SOFTLOCKUP('L', false),
    /** The kernel was live patched ('K'). */
    LIVEPATCH('K', true),
    /** Auxiliary taint, for distributions ('X'). */
    AUX('X', true),
    /** Built with a struct randomization plugin ('T'). */
    RANDSTRUCT('T', true),
    /** A test module was loaded ('N'). */
    TEST('N', true),
    /** Userspace used a mutating debug operation of fwctl ('J'). */
    FWCTL('J', true);

    private final char letter;
    private final boolean module;

    TaintFlag(char letter, boolean module) {
        this.letter = letter;
        this.module = module;
    }

    /** @return the bit number, 0 to 19, as in {@code /proc/sys/kernel/tainted} */
    public int bit() {
        return ordinal();
    }

    /** @return the bit as a mask */
    public long mask() {
        return 1L << ordinal();
    }

    /** @return the letter printed when the flag is set */
    public char letter() {
        return letter;
    }

    /** @return whether the kernel also records this flag per module ({@code /sys/module/<m>/taint}) */
    public boolean isModuleTaint() {
        return module;
    }
}
