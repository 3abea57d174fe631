package org.iommu4j.api;

/**
 * The PCIe Access Control Services bits the kernel's grouping needs ({@code include/uapi/linux/pci_regs.h},
 * Linux v6.12), and its test of them. ACS on a port (or on the functions of a multi-function device) stops
 * peer-to-peer traffic from bypassing the IOMMU; the iommu core asks for all four of {@link #REQUIRED}
 * ({@code REQ_ACS_FLAGS} in {@code drivers/iommu/iommu.c}).
 *
 * @since 1.2
 */
public final class PciAcs {
    /** Source Validation ({@code PCI_ACS_SV}). */
    public static final int SV = 0x0001;
    /** Translation Blocking ({@code PCI_ACS_TB}). */
    public static final int TB = 0x0002;
    /** P2P Request Redirect ({@code PCI_ACS_RR}). */
    public static final int RR = 0x0004;
    /** P2P Completion Redirect ({@code PCI_ACS_CR}). */
    public static final int CR = 0x0008;
    /** Upstream Forwarding ({@code PCI_ACS_UF}). */
    public static final int UF = 0x0010;
    /** P2P Egress Control ({@code PCI_ACS_EC}). */
    public static final int EC = 0x0020;
    /** Direct Translated P2P ({@code PCI_ACS_DT}). */
    public static final int DT = 0x0040;
    /** What {@code pci_device_group} requires: SV, RR, CR and UF. */
    public static final int REQUIRED = SV | RR | CR | UF;
    /** What {@code pci_std_enable_acs} turns on at boot of what a function implements. */
    public static final int ENABLED_AT_BOOT = SV | RR | CR | UF;

    private PciAcs() {
    }

    /**
     * The kernel's {@code pci_acs_flags_enabled}: whether an ACS capability has the wanted controls on. A
     * control the capability does not implement is not required ({@code acs_flags &= cap | PCI_ACS_EC}).
     *
     * @param capability the implemented bits; 0 when the function has no ACS capability
     * @param control the enabled bits
     * @param wanted the bits asked for, for example {@link #REQUIRED}
     * @return whether they are enabled; false without an ACS capability
     */
    public static boolean flagsEnabled(int capability, int control, int wanted) {
        if (capability == 0) {
            return false;
        }
        int required = wanted & (capability | EC);
        return (control & required) == required;
    }
}
