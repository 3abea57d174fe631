package org.iommu4j.kernel;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;
import org.iommu4j.api.Capability;
import org.iommu4j.api.LogLevel;
import org.iommu4j.api.PhysicalMemory;
import org.iommu4j.api.XenHypercalls;
import org.iommu4j.kernel.bus.Buses;
import org.iommu4j.kernel.bus.PciDevice;
import org.iommu4j.kernel.bus.PciDeviceSpec;
import org.iommu4j.kernel.bus.PlatformDeviceSpec;
import org.iommu4j.kernel.dma.DeviceDma;
import org.iommu4j.kernel.dma.DirectDmaOps;
import org.iommu4j.kernel.dma.DmaApi;
import org.iommu4j.kernel.dma.DmaDebug;
import org.iommu4j.kernel.fault.FaultInjection;
import org.iommu4j.kernel.iommu.Iommu;
import org.iommu4j.kernel.log.KernelLogBuffer;
import org.iommu4j.kernel.log.Warnings;
import org.iommu4j.kernel.mem.BuddyAllocator;
import org.iommu4j.kernel.mem.HostMemory;
import org.iommu4j.kernel.mem.SparseMemory;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.module.ModuleTable;
import org.iommu4j.kernel.module.SymbolRegistry;
import org.iommu4j.kernel.params.CommandLine;
import org.iommu4j.kernel.proc.UserProcess;
import org.iommu4j.kernel.sysfs.Sysfs;
import org.iommu4j.kernel.taint.TaintState;
import org.iommu4j.kernel.vfio.VfioIommuDrivers;

/**
 * One simulated machine and the kernel running on it: physical memory and its page allocator, the PCI and
 * platform buses, the iommu core, the DMA API, taint, the log, the command line, modules and processes. Every
 * piece of state belongs to a host; any number of hosts live side by side in one JVM.
 *
 * <p>Slow-path changes (devices, drivers, groups, modules) take the host's configuration lock, one per host;
 * the DMA paths do not.
 */
public final class Host {
    /** The default memory size: 1 GiB. */
    public static final long DEFAULT_MEMORY = 1L << 30;
    /** Low memory the firmware keeps, as on a PC: the allocator never hands out the first 1 MiB. */
    public static final long FIRMWARE_RESERVED = 1L << 20;

    private final ReentrantLock configLock = new ReentrantLock();
    private final LongSupplier clock;
    private final int cpus;
    private final AtomicInteger nextCpu = new AtomicInteger();
    private final CpuOfThread cpuOfThread;
    private final AtomicInteger nextPid = new AtomicInteger(1000);
    private final HostMemory memory;
    private final HypervisorDomain domain;
    private final FaultInjection faults;
    private final BuddyAllocator pageAllocator;
    private final KernelLogBuffer log;
    private final TaintState taint;
    private final Warnings warnings;
    private final CommandLine commandLine;
    private final DeviceDma deviceDma;
    private final Buses buses;
    private final Iommu iommu;
    private final DmaApi dma;
    private final VfioIommuDrivers vfioDrivers = new VfioIommuDrivers();
    private final SymbolRegistry symbols = new SymbolRegistry();
    private final ModuleTable modules;
    private final Sysfs sysfs;
    private final org.iommu4j.kernel.vfio.Vfio vfio;

    private Host(Builder b) {
        long boot = System.nanoTime();
        this.clock = b.clock != null ? b.clock : new SinceBoot(boot);
        this.cpus = b.cpus;
        this.cpuOfThread = new CpuOfThread();
        if (b.domain != null && b.domain.memory().size() != b.memory) {
            throw new IllegalArgumentException("memory size " + b.memory + " is not the domain's "
                    + b.domain.memory().size() + ": a domain's kernel has the domain's memory");
        }
        this.domain = b.domain;
        this.memory = b.domain != null ? b.domain.memory() : new SparseMemory(b.memory);
        this.log = new KernelLogBuffer(b.logCapacity, clock);
        this.faults = new FaultInjection(log, b.faultSeed);
        this.pageAllocator = new BuddyAllocator(b.memory >>> PhysicalMemory.PAGE_SHIFT, faults.pageAlloc());
        pageAllocator.allocateContiguous(FIRMWARE_RESERVED >>> PhysicalMemory.PAGE_SHIFT, FIRMWARE_RESERVED);
        this.taint = new TaintState(log, clock);
        IntSupplier cpu = cpuOfThread;
        this.warnings = new Warnings(log, taint, cpu);
        this.commandLine = CommandLine.parse(b.commandLine);
        log.log(LogLevel.NOTICE, "Linux version 6.12.0-iommu4j (iommu4j simulated kernel)");
        // String.concat and a StringBuilder, not '+': a JVM's first indy concatenation costs it ~5 ms cold (issue 17)
        log.log(LogLevel.NOTICE, "Kernel command line: ".concat(commandLine.toString()));
        faults.applyCommandLine(commandLine);
        log.log(LogLevel.INFO, new StringBuilder("Memory: ").append((b.memory - FIRMWARE_RESERVED) >>> 10)
                .append("K available (").append(FIRMWARE_RESERVED >>> 10).append("K reserved by firmware), ")
                .append(cpus).append(" CPUs").toString());
        this.deviceDma = new DeviceDma(memory.deviceView(), log); // device DMA is not a CPU access
        this.buses = new Buses(configLock, b.domain != null ? b.domain.dmaPort() : deviceDma);
        this.iommu = new Iommu(configLock, buses, log, faults.pageAlloc(), warnings, memory, pageAllocator,
                commandLine, cpus, cpu, clock);
        this.dma = new DmaApi(configLock, buses, new DirectDmaOps(memory, pageAllocator, warnings), dmaDebug(b),
                faults.iommu());
        this.modules = new ModuleTable(this, configLock);
        this.sysfs = new Sysfs(buses, iommu, taint);
        this.vfio = new org.iommu4j.kernel.vfio.Vfio(this);
        for (PciDeviceSpec spec : b.pciDevices) {
            buses.addPci(spec);
        }
        for (PlatformDeviceSpec spec : b.platformDevices) {
            buses.addPlatform(spec);
        }
    }

    /*
     * The clock and the CPU of a thread are small classes, not lambdas: each lambda is a class the JVM spins at
     * its first use, and a host built in a cold JVM pays for every one (issue 17).
     */

    /** Nanoseconds since boot, by the JVM's clock. */
    private static final class SinceBoot implements LongSupplier {
        private final long boot;

        SinceBoot(long boot) {
            this.boot = boot;
        }

        @Override
        public long getAsLong() {
            return System.nanoTime() - boot;
        }
    }

    /**
     * The calling thread's CPU, assigned round robin on first use. The hot path reads it from a small table keyed
     * by thread id (Java never reuses one), two loads; the thread-local, about 7 ns a call on the DMA path
     * (iommu-dma asks twice a map and unmap), only on a thread's first call or when two threads' ids share both
     * table slots.
     */
    private final class CpuOfThread extends ThreadLocal<Integer> implements IntSupplier {
        /** Table slots, a power of two. */
        private static final int SLOTS = 64;
        /** Bits of an entry that hold the CPU; the thread id is above them, and 0 marks an empty slot. */
        private static final int CPU_BITS = 16;
        private final AtomicLongArray byThread = new AtomicLongArray(SLOTS);

        @Override
        protected Integer initialValue() {
            return nextCpu.getAndIncrement() % cpus;
        }

        @Override
        public int getAsInt() {
            @SuppressWarnings("deprecation") // Thread.threadId() is Java 19
            long tid = Thread.currentThread().getId();
            int i = (int) (tid ^ (tid >>> 6)) & (SLOTS - 1);
            long e = byThread.get(i);
            if (e >>> CPU_BITS == tid) {
                return (int) e & ((1 << CPU_BITS) - 1);
            }
            int j = (i + 1) & (SLOTS - 1);
            long f = byThread.get(j);
            if (f >>> CPU_BITS == tid) {
                return (int) f & ((1 << CPU_BITS) - 1);
            }
            int cpu = get();
            if (cpus <= 1 << CPU_BITS && tid < 1L << (63 - CPU_BITS)) {
                byThread.lazySet(e != 0 && f == 0 ? j : i, tid << CPU_BITS | cpu);
            }
            return cpu;
        }
    }

    /** The DMA-API checker when the kernel is built with it and the command line leaves it on, else null. */
    private DmaDebug dmaDebug(Builder b) {
        if (!b.dmaApiDebug) {
            return null;
        }
        if (commandLine.get("dma_debug").filter(v -> v.startsWith("off")).isPresent()) {
            log.log(LogLevel.INFO, "DMA-API: debugging disabled on kernel command line");
            return null;
        }
        int entries = DmaDebug.PREALLOC_ENTRIES;
        String given = commandLine.get("dma_debug_entries").orElse("");
        if (CommandLine.isDecimal(given, 9)) {
            entries = Integer.parseInt(given);
        }
        DmaDebug debug = new DmaDebug(log, taint, entries);
        buses.addListener(debug, ModuleRef.KERNEL);
        memory.watchCpuAccess(debug.cpuAccessCheck()); // beyond the kernel's checks: CPU touches of device buffers
        return debug;
    }

    /** @return a builder for a host with 1 GiB, 2 CPUs, no devices and an empty command line */
    public static Builder builder() {
        return new Builder();
    }

    /** @return the host's physical memory; a hypervisor domain's is pseudo-physical */
    public HostMemory memory() {
        return memory;
    }

    /**
     * @return the hypercalls of the hypervisor this host runs under as a domain, or empty on bare metal
     */
    public Optional<XenHypercalls> xen() {
        return domain == null ? Optional.empty() : Optional.of(domain.hypercalls());
    }

    /**
     * @return the fault-injection capabilities: make an allocation point fail, then check what it left
     */
    public FaultInjection faults() {
        return faults;
    }

    /** @return the page allocator */
    public BuddyAllocator pageAllocator() {
        return pageAllocator;
    }

    /** @return the kernel log */
    public KernelLogBuffer log() {
        return log;
    }

    /** @return the taint */
    public TaintState taint() {
        return taint;
    }

    /** @return the kernel's WARN / WARN_ONCE facility: every warning site uses it, and each taints W */
    public Warnings warnings() {
        return warnings;
    }

    /** @return the kernel command line */
    public CommandLine commandLine() {
        return commandLine;
    }

    /** @return the buses and devices */
    public Buses buses() {
        return buses;
    }

    /**
     * @param address {@code DDDD:BB:DD.F}
     * @return the PCI device there
     * @throws org.iommu4j.api.IommuException {@link org.iommu4j.api.Errno#ENODEV} if none is
     */
    public PciDevice pci(String address) {
        return buses.pci(address);
    }

    /** @return the iommu core */
    public Iommu iommu() {
        return iommu;
    }

    /** @return the DMA API */
    public DmaApi dma() {
        return dma;
    }

    /** @return the engine devices' DMA goes through, with its fault count */
    public DeviceDma deviceDma() {
        return deviceDma;
    }

    /** @return the VFIO core's iommu driver list */
    public VfioIommuDrivers vfioDrivers() {
        return vfioDrivers;
    }

    /** @return the VFIO core: binding devices, groups, containers */
    public org.iommu4j.kernel.vfio.Vfio vfio() {
        return vfio;
    }

    /** @return symbols exported between modules */
    public SymbolRegistry symbols() {
        return symbols;
    }

    /** @return the loaded modules */
    public ModuleTable modules() {
        return modules;
    }

    /** @return the sysfs and procfs view */
    public Sysfs sysfs() {
        return sysfs;
    }

    /** @return the configuration lock; kernel subsystems share it for slow-path changes */
    public ReentrantLock configLock() {
        return configLock;
    }

    /** @return CPUs */
    public int cpuCount() {
        return cpus;
    }

    /** @return the calling thread's CPU, assigned round robin on first use */
    public int currentCpu() {
        return cpuOfThread.get();
    }

    /** @return nanoseconds since boot */
    public long uptimeNanos() {
        return clock.getAsLong();
    }

    /**
     * Starts a user process with explicit credentials.
     *
     * @param comm its command name
     * @param uid its user id
     * @param capabilities its effective capabilities
     * @return the process
     */
    public UserProcess spawn(String comm, int uid, Set<Capability> capabilities) {
        return new UserProcess(nextPid.getAndIncrement(), comm, uid, capabilities, memory, pageAllocator);
    }

    /**
     * Starts a user process with explicit credentials and an {@code RLIMIT_MEMLOCK} (soft and hard), as
     * {@code limits.conf} or a privileged parent would set it before it runs (since 1.2).
     *
     * @param comm its command name
     * @param uid its user id
     * @param capabilities its effective capabilities
     * @param memlockLimit bytes, or {@link UserProcess#RLIM_INFINITY}
     * @return the process
     */
    public UserProcess spawn(String comm, int uid, Set<Capability> capabilities, long memlockLimit) {
        return new UserProcess(nextPid.getAndIncrement(), comm, uid, capabilities, memory, pageAllocator,
                memlockLimit);
    }

    /**
     * {@code fork()} of a process: see {@link UserProcess#fork}; the child gets the next pid (since 1.2).
     *
     * @param parent the process that forks
     * @return the child
     */
    public UserProcess fork(UserProcess parent) {
        return parent.fork(nextPid.getAndIncrement());
    }

    /** Builds a {@link Host}. */
    public static final class Builder {
        private long memory = DEFAULT_MEMORY;
        private int cpus = 2;
        private String commandLine = "";
        private int logCapacity = 4096;
        private LongSupplier clock;
        private boolean dmaApiDebug;
        private long faultSeed;
        private final List<PciDeviceSpec> pciDevices = new ArrayList<>();
        private final List<PlatformDeviceSpec> platformDevices = new ArrayList<>();
        private HypervisorDomain domain;

        private Builder() {
        }

        /**
         * @param bytes memory size, a multiple of 4 KiB from 16 MiB to 1 TiB
         * @return this
         * @throws IllegalArgumentException naming the size and the valid range
         */
        public Builder memory(long bytes) {
            if (bytes < (16L << 20) || bytes > (1L << 40) || (bytes & PhysicalMemory.PAGE_OFFSET_MASK) != 0) {
                throw new IllegalArgumentException("memory size " + bytes + " is invalid: expected a multiple of"
                        + " 4 KiB from 16 MiB to 1 TiB");
            }
            this.memory = bytes;
            return this;
        }

        /**
         * Builds the host as a domain of a hypervisor: its memory is the domain's pseudo-physical memory (the
         * memory size is the domain's), its devices' DMA goes through the hypervisor's IOMMU, and its kernel
         * services offer the hypercalls ({@link org.iommu4j.api.KernelServices#xen()}).
         *
         * @param domain the domain, made by the hypervisor
         * @return this
         */
        public Builder domainOf(HypervisorDomain domain) {
            memory(domain.memory().size());
            this.domain = domain;
            return this;
        }

        /**
         * @param count CPUs, 1 to 256
         * @return this
         */
        public Builder cpus(int count) {
            if (count < 1 || count > 256) {
                throw new IllegalArgumentException("CPU count " + count + " is invalid: expected 1 to 256");
            }
            this.cpus = count;
            return this;
        }

        /**
         * @param line the kernel command line, for example {@code noiommu.enable_unsafe_noiommu_mode=1}
         * @return this
         */
        public Builder commandLine(String line) {
            this.commandLine = line;
            return this;
        }

        /**
         * @param spec a PCI device present at boot
         * @return this
         */
        public Builder pciDevice(PciDeviceSpec spec) {
            this.pciDevices.add(spec);
            return this;
        }

        /**
         * @param spec a platform device present at boot
         * @return this
         */
        public Builder platformDevice(PlatformDeviceSpec spec) {
            this.platformDevices.add(spec);
            return this;
        }

        /**
         * @param records how many log records the ring keeps
         * @return this
         */
        public Builder logCapacity(int records) {
            this.logCapacity = records;
            return this;
        }

        /**
         * Builds the kernel with DMA-API debugging ({@code CONFIG_DMA_API_DEBUG=y}): every DMA API call is
         * checked and driver bugs are reported, see {@link DmaDebug}. {@code dma_debug=off} on the command line
         * still turns it off, and {@code dma_debug_entries=N} sets the figure it reports. Off by default, as in
         * distribution kernels.
         *
         * @param enabled whether the kernel has it
         * @return this
         */
        public Builder dmaApiDebug(boolean enabled) {
            this.dmaApiDebug = enabled;
            return this;
        }

        /**
         * @param seed the seed of the fault-injection attributes' random sources (default 0), so that a run
         *     with a probability below 100 can be repeated
         * @return this
         */
        public Builder faultSeed(long seed) {
            this.faultSeed = seed;
            return this;
        }

        /**
         * @param nanosSinceBoot the host's clock, for log and taint time stamps
         * @return this
         */
        public Builder clock(LongSupplier nanosSinceBoot) {
            this.clock = nanosSinceBoot;
            return this;
        }

        /**
         * @return the booted host
         * @throws org.iommu4j.api.InvalidParameterException for a malformed command line
         */
        public Host build() {
            return new Host(this);
        }
    }
}
