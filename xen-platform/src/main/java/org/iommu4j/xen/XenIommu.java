package org.iommu4j.xen;

import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.List;
import org.iommu4j.api.Device;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuDomain;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.IommuFaultException;
import org.iommu4j.api.IommuProt;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.XenHypercalls;
import org.iommu4j.kernel.bus.BusDevice;
import org.iommu4j.kernel.bus.DmaPort;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.log.KernelLogBuffer;

/**
 * The hypervisor's IOMMU. Every physical PCI device has an entry: the domain it is assigned to (Domain-0 at
 * boot; none while pciback holds it for guests, which quarantines it) and the context it points at. A context
 * belongs to one domain, which fills it by hypercall with machine frames it owns; a device reaches exactly
 * what its context maps, and only while the frame is still its domain's. A device pointing at no context
 * reaches nothing: there is no path from a device to memory around this IOMMU, whichever domain's kernel
 * drives the device and whatever that kernel's own iommu core thinks.
 *
 * <p>Every fault is logged in the hypervisor's log with the device and the domain, and thrown to the device
 * model; nothing is written or read unless the whole access translates. The DMA path takes no lock and
 * allocates nothing unless it faults.
 */
final class XenIommu {
    /** The owner of a device pciback holds for guests: Xen's {@code dom_io}, quarantine. */
    static final int DOMID_IO = 0x7ff1;

    private final MachineFrames machine;
    private final KernelLogBuffer log;
    private final Map<String, PhysicalDevice> devices = new ConcurrentHashMap<>();
    private final List<Context> contexts = new CopyOnWriteArrayList<>();
    private final List<XenDomain> domains;

    XenIommu(MachineFrames machine, KernelLogBuffer log, List<XenDomain> domains) {
        this.machine = machine;
        this.log = log;
        this.domains = domains;
    }

    /** A physical device and its entry. */
    static final class PhysicalDevice {
        final PciDeviceSpec spec;
        volatile int owner;
        volatile Context context;

        PhysicalDevice(PciDeviceSpec spec) {
            this.spec = spec;
        }
    }

    void addDevice(PciDeviceSpec spec) {
        devices.put(spec.address().toString(), new PhysicalDevice(spec));
    }

    PhysicalDevice device(String name) {
        PhysicalDevice p = devices.get(name);
        if (p == null) {
            throw new IommuException(Errno.ENODEV, "xen: no PCI device " + name + " on the machine; it has "
                    + new java.util.TreeSet<>(devices.keySet()));
        }
        return p;
    }

    /** @return the owner's domain id, {@link #DOMID_IO} for a quarantined device, -1 for no such device */
    int ownerOf(String name) {
        PhysicalDevice p = devices.get(name);
        return p == null ? -1 : p.owner;
    }

    String ownerName(int domid) {
        return domid == DOMID_IO ? "dom_io (quarantined for assignment)" : domains.get(domid).toString();
    }

    /** pciback seizes a device of Domain-0 (assignable) or lets it go. */
    void setAssignable(XenDomain domain, Device device, boolean assignable) {
        if (domain.domid() != 0) {
            throw new IommuException(Errno.EPERM, "xen: " + domain + " may not change who owns " + device.name()
                    + ": only Domain-0 assigns devices");
        }
        PhysicalDevice p = device(device.name());
        synchronized (p) {
            int want = assignable ? DOMID_IO : 0;
            if (p.owner == want) {
                return;
            }
            if (p.owner != 0 && p.owner != DOMID_IO) {
                throw new IommuException(Errno.EBUSY, "xen: " + device.name() + " is assigned to "
                        + ownerName(p.owner) + ": detach it from that guest first (xl pci-detach)");
            }
            p.context = null;
            p.owner = want;
        }
        log.log(LogLevel.INFO, "(XEN) " + device.name() + (assignable ? ": assignable, quarantined in dom_io"
                : ": back to d0"));
    }

    /** Assigns a quarantined device to a guest (the toolstack's {@code XEN_DOMCTL_assign_device}). */
    void assign(String name, XenDomain guest) {
        PhysicalDevice p = device(name);
        synchronized (p) {
            if (p.owner != DOMID_IO) {
                throw new IommuException(p.owner == 0 ? Errno.EINVAL : Errno.EBUSY, p.owner == 0
                        ? "xl: " + name + " is not assignable: bind it to pciback in Domain-0 first"
                                + " (xen-pciback.hide=(" + name + "), or new_slot then bind)"
                        : "xl: " + name + " is assigned to " + ownerName(p.owner) + ": pci-detach it first");
            }
            p.context = null;
            p.owner = guest.domid();
        }
        log.log(LogLevel.INFO, "(XEN) " + name + ": assigned to " + guest);
    }

    /** Takes a device back from its guest into quarantine (the toolstack's {@code XEN_DOMCTL_deassign_device}). */
    void deassign(String name) {
        PhysicalDevice p = device(name);
        synchronized (p) {
            int was = p.owner;
            p.context = null;
            p.owner = DOMID_IO;
            log.log(LogLevel.INFO, "(XEN) " + name + ": deassigned from " + ownerName(was)
                    + ", quarantined in dom_io");
        }
    }

    Context createContext(XenDomain domain) {
        Context c = new Context(domain);
        contexts.add(c);
        return c;
    }

    DmaPort portFor(XenDomain domain) {
        return new Port();
    }

    /** @return bytes the contexts keep: their tables (see {@link ContextTable#bytes}) */
    long bytes() {
        long n = 0;
        for (Context c : contexts) {
            n += c.table.bytes();
        }
        return n;
    }

    /** A context of the IOMMU, owned by one domain. */
    final class Context implements XenHypercalls.IommuContext {
        private final XenDomain domain;
        private final ContextTable table = new ContextTable(machine.frames());
        private volatile boolean destroyed;

        Context(XenDomain domain) {
            this.domain = domain;
        }

        @Override
        public void map(long bfn, long mfn, long count, int prot) {
            requireLive();
            if (count < 1 || bfn < 0 || mfn < 0 || bfn + count < 0 || bfn + count > (1L << 52)) {
                throw new IommuException(Errno.EINVAL, String.format("xen: IOMMU map of %d frames at bfn 0x%x is"
                        + " invalid", count, bfn));
            }
            // by range: no frame past the first beyond machine memory needs looking at
            long refused = machine.firstNotOwned(mfn, Math.min(count, Math.max(1, machine.frames() + 1 - mfn)),
                    domain.domid());
            if (refused >= 0) {
                int o = machine.ownerOf(refused);
                throw new IommuException(Errno.EPERM, String.format("xen: domain %d may not map mfn 0x%x: %s",
                        domain.domid(), refused, refused >= machine.frames() ? String.format("there is no such"
                                + " machine frame (machine memory has 0x%x)", machine.frames())
                                : o == MachineFrames.FREE ? "no domain owns it" : "it belongs to domain " + o));
            }
            for (long i = 0; i < count; i++) {
                int r = table.map(bfn + i, mfn + i, prot);
                if (r == ContextTable.TAKEN || r == ContextTable.FULL) {
                    table.unmap(bfn, bfn + i);
                    throw r == ContextTable.FULL
                            ? new IommuException(Errno.ENOSPC, String.format("xen: bfn 0x%x has %d references"
                                    + " already: the hypervisor counts no more", bfn + i, ContextTable.MAX_REFS))
                            : new IommuException(Errno.EEXIST, String.format("xen: bfn 0x%x is mapped already, to"
                                    + " mfn 0x%x", bfn + i, table.target(bfn + i)));
                }
            }
        }

        @Override
        public long unmap(long bfn, long count) {
            if (count <= 0 || bfn < 0 || bfn >= 1L << 52) {
                return 0;
            }
            return table.unmap(bfn, bfn + Math.min(count, (1L << 52) - bfn));
        }

        @Override
        public long translate(long busAddress, int access) {
            if (destroyed) {
                return IommuDomain.FAULT_NOT_MAPPED;
            }
            long maddr = table.lookup(busAddress, access);
            if (maddr < 0) {
                return maddr;
            }
            return machine.ownerOf(maddr >>> PhysicalMemory.PAGE_SHIFT) == domain.domid() ? maddr
                    : IommuDomain.FAULT_NOT_MAPPED;
        }

        @Override
        public void attach(Device device) {
            requireLive();
            PhysicalDevice p = device(device.name());
            synchronized (p) {
                if (p.owner != domain.domid()) {
                    throw new IommuException(Errno.EPERM, "xen: " + device.name() + " is not assigned to " + domain
                            + " (" + ownerName(p.owner) + " has it)");
                }
                p.context = this;
            }
        }

        @Override
        public void detach(Device device) {
            PhysicalDevice p = devices.get(device.name());
            if (p != null) {
                synchronized (p) {
                    if (p.context == this) {
                        p.context = null;
                    }
                }
            }
        }

        @Override
        public synchronized void destroy() {
            destroyed = true;
            contexts.remove(this);
        }

        private void requireLive() {
            if (destroyed) {
                throw new IommuException(Errno.EINVAL, "xen: the IOMMU context was destroyed");
            }
        }
    }

    /** Where the domains' devices' DMA goes: every access through the device's entry. */
    private final class Port implements DmaPort {
        @Override
        public void write(BusDevice device, long busAddress, byte[] src, int offset, int length) {
            Objects.checkFromIndexSize(offset, length, src.length);
            transfer(device, busAddress, src, offset, length, true);
        }

        @Override
        public void read(BusDevice device, long busAddress, byte[] dst, int offset, int length) {
            Objects.checkFromIndexSize(offset, length, dst.length);
            transfer(device, busAddress, dst, offset, length, false);
        }
    }

    private void transfer(BusDevice device, long address, byte[] buffer, int offset, int length, boolean write) {
        if (!device.isPresent()) {
            throw new IommuException(Errno.ENODEV, "device " + device.name() + " has been removed");
        }
        if (length == 0) {
            return;
        }
        PhysicalDevice p = devices.get(device.name());
        long last = address + length - 1;
        if (address < 0 || last < address || Long.compareUnsigned(last, device.dmaMask()) > 0) {
            throw fault(device, p, address, write, String.format("beyond the device's DMA mask 0x%x",
                    device.dmaMask()));
        }
        Context c = p == null ? null : p.context;
        if (c == null || c.domain.domid() != p.owner) {
            throw fault(device, p, address, write, p != null && p.owner == DOMID_IO
                    ? "quarantined: assigned to no domain" : "no IOMMU context: its domain attached none");
        }
        int access = write ? IommuProt.WRITE : IommuProt.READ;
        if (Long.compareUnsigned(last, PhysicalMemory.pageAlignDown(address) + PhysicalMemory.PAGE_OFFSET_MASK) <= 0) {
            // inside one page: one translation, one copy
            long maddr = c.translate(address, access);
            if (maddr < 0) {
                throw fault(device, p, address, write, maddr == IommuDomain.FAULT_PERMISSION ? "mapping does not allow "
                        + (write ? "writes" : "reads") : "not mapped");
            }
            if (write) {
                machine.memory().write(maddr, buffer, offset, length);
            } else {
                machine.memory().read(maddr, buffer, offset, length);
            }
            return;
        }
        for (long page = PhysicalMemory.pageAlignDown(address); Long.compareUnsigned(page, last) <= 0;
                page += PhysicalMemory.PAGE_SIZE) {
            long at = Math.max(page, address);
            long maddr = c.translate(at, access);
            if (maddr < 0) {
                throw fault(device, p, at, write, maddr == IommuDomain.FAULT_PERMISSION ? "mapping does not allow "
                        + (write ? "writes" : "reads") : "not mapped");
            }
            if (page + PhysicalMemory.PAGE_SIZE == 0) {
                break;
            }
        }
        for (long at = address; Long.compareUnsigned(at, last) <= 0; ) {
            long pageEnd = PhysicalMemory.pageAlignDown(at) + PhysicalMemory.PAGE_OFFSET_MASK;
            int n = (int) (Math.min(last, pageEnd) - at + 1);
            long maddr = c.translate(at, access);
            if (maddr < 0) {
                throw fault(device, p, at, write, "unmapped during the access");
            }
            int index = offset + (int) (at - address);
            if (write) {
                machine.memory().write(maddr, buffer, index, n);
            } else {
                machine.memory().read(maddr, buffer, index, n);
            }
            at += n;
            if (at == 0) {
                break;
            }
        }
    }

    private IommuFaultException fault(BusDevice device, PhysicalDevice p, long address, boolean write,
            String reason) {
        device.countFault();
        String owner = p == null ? "no domain" : ownerName(p.owner);
        log.log(LogLevel.ERR, String.format("(XEN) [VT-D]DMAR:[DMA %s] Request device [%s] fault addr 0x%x, %s: %s",
                write ? "Write" : "Read", device.name(), address, owner, reason));
        return new IommuFaultException(device.name(), address, write, String.format(
                "%s: iommu fault: DMA %s at bus address 0x%x: %s", device.name(), write ? "write" : "read", address,
                reason));
    }
}
