package org.iommu4j.cli;

import com.fasterxml.jackson.annotation.JsonClassDescription;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyDescription;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.Capability;
import org.iommu4j.api.Errno;
import org.iommu4j.api.PciAddress;
import org.iommu4j.cli.Values.Address;
import org.iommu4j.cli.Values.FaultName;
import org.iommu4j.cli.Values.IommuType;
import org.iommu4j.cli.Values.Iova;
import org.iommu4j.cli.Values.Memlock;
import org.iommu4j.cli.Values.Prot;
import org.iommu4j.cli.Values.Size;
import org.iommu4j.cli.Values.SyncFor;

/**
 * A scenario file, version {@value #VERSION}, as Jackson binds it (see {@link ScenarioReader}; version 1 files,
 * without {@code "version"}, are rewritten to this form before binding). The JSON Schema is generated from these
 * types ({@link SchemaGenerator}) and docs/scenarios.md documents them field by field. Every field is optional
 * unless marked required; a boxed field is null when absent, and the reader applies the documented default.
 *
 * @param version the format's version, {@value #VERSION}
 * @param description what the scenario shows
 * @param host the simulated machine
 * @param backends backends to load before step 1, in order
 * @param processes user processes that exist before step 1
 * @param steps what happens, in order
 */
@JsonClassDescription("An iommu4j scenario: a simulated host, backends, processes, and steps run in order.")
@JsonPropertyOrder({"version", "description", "host", "backends", "processes", "steps"})
record ScenarioFile(
        @JsonProperty(required = true) @JsonPropertyDescription("The format's version: 2. A file without it is"
                + " read as version 1 (\"do\" instead of \"step\").") Integer version,
        @JsonPropertyDescription("What the scenario shows, in a sentence; not used otherwise.") String description,
        @JsonPropertyDescription("The simulated machine; absent: the embedded host.") HostSpec host,
        @JsonPropertyDescription("Backends loaded before step 1, in order, as modprobe loads modules (dependencies"
                + " first).") List<BackendSpec> backends,
        @JsonPropertyDescription("User processes that exist before step 1.") List<ProcessSpec> processes,
        @JsonProperty(required = true) @JsonPropertyDescription("What happens, in order; the first unexpected"
                + " result stops the run.") List<Step> steps) {

    /** The version this type describes. */
    static final int VERSION = 2;

    /**
     * The machine.
     *
     * @param memoryMiB memory in MiB
     * @param cpus CPU count
     * @param cmdline kernel command line
     * @param dmaApiDebug whether CONFIG_DMA_API_DEBUG is on
     * @param devices PCI devices; null for the embedded host's four devices
     * @param xen when present, the host is a Xen guest and this says what Domain-0 gives it
     */
    @JsonClassDescription("The simulated machine.")
    @JsonPropertyOrder({"memoryMiB", "cpus", "cmdline", "dmaApiDebug", "devices", "xen"})
    record HostSpec(
            @JsonProperty(defaultValue = "1024") @JsonPropertyDescription("Memory in MiB, 16 to 1048576 (1 TiB).")
            Integer memoryMiB,
            @JsonProperty(defaultValue = "2") @JsonPropertyDescription("CPU count, 1 to 256.") Integer cpus,
            @JsonProperty(defaultValue = "") @JsonPropertyDescription("The kernel command line: module.param=value"
                    + " words for the backends, dma_debug=off, fail_page_alloc=..., swiotlb=...") String cmdline,
            @JsonProperty(defaultValue = "false") @JsonPropertyDescription("CONFIG_DMA_API_DEBUG: check every DMA"
                    + " API call and report driver bugs in dmesg.") Boolean dmaApiDebug,
            @JsonPropertyDescription("The PCI devices. Absent: the embedded host's four devices (0000:00:02.0 i915,"
                    + " 0000:06:0d.0 the NIC, 0000:07:00.0 with 32-bit DMA, platform fsl-dma.0).")
            List<DeviceSpec> devices,
            @JsonPropertyDescription("Makes the host a Xen guest: the devices are the machine's, Domain-0 loads xen"
                    + " with this hide list (pciback holds those devices) and gives each of them to the guest, which"
                    + " has memoryMiB, cpus and cmdline and sees only the devices it was given.") XenSpec xen) {
    }

    /**
     * What Domain-0 does for a guest host.
     *
     * @param hide the devices pciback holds and gives the guest
     */
    @JsonClassDescription("The Xen platform a guest host runs on.")
    record XenSpec(@JsonProperty(defaultValue = "") @JsonPropertyDescription("Domain-0's xen-pciback.hide list,"
            + " (DDDD:BB:DD.F)(BB:DD.F)...: the devices given to the guest.") String hide) {
    }

    /**
     * One PCI device.
     *
     * @param bdf its address
     * @param dmaMaskBits its DMA mask width
     * @param driver a host driver bound at boot
     */
    @JsonClassDescription("A PCI device: an Intel e1000 NIC unless said otherwise.")
    @JsonPropertyOrder({"bdf", "dmaMaskBits", "driver"})
    record DeviceSpec(
            @JsonProperty(required = true) @JsonPropertyDescription("Its address, DDDD:BB:DD.F in hex.")
            PciAddress bdf,
            @JsonProperty(defaultValue = "64") @JsonPropertyDescription("Its DMA mask width in bits, 1 to 64.")
            Integer dmaMaskBits,
            @JsonPropertyDescription("A host (non-VFIO) driver bound at boot, for example i915; absent: none.")
            String driver) {
    }

    /**
     * A backend to load before step 1.
     *
     * @param name the backend
     * @param params its module parameters
     */
    @JsonClassDescription("A backend loaded before step 1.")
    @JsonPropertyOrder({"name", "params"})
    record BackendSpec(
            @JsonProperty(required = true) @JsonPropertyDescription("The backend's name, as 'iommuctl backends'"
                    + " lists it.") String name,
            @JsonPropertyDescription("Module parameters for this load (name to value, both strings), as insmod"
                    + " takes them; they override the command line's module.param words.")
            Map<String, String> params) {
    }

    /**
     * A user process.
     *
     * @param name its name (comm)
     * @param uid its user id
     * @param capabilities its capabilities
     * @param memlock its RLIMIT_MEMLOCK
     */
    @JsonClassDescription("A user process.")
    @JsonPropertyOrder({"name", "uid", "capabilities", "memlock"})
    record ProcessSpec(
            @JsonProperty(required = true) @JsonPropertyDescription("Its name (comm), by which steps name it.")
            String name,
            @JsonProperty(defaultValue = "0") @JsonPropertyDescription("Its user id, 0 (root) to 2147483647.")
            Integer uid,
            @JsonPropertyDescription("Its capabilities; absent: none.") List<Capability> capabilities,
            @JsonProperty(defaultValue = "8M") @JsonPropertyDescription("Its RLIMIT_MEMLOCK: a size or"
                    + " \"unlimited\".") Memlock memlock) {
    }

    /** A step; {@code "step"} names its kind. */
    @JsonTypeInfo(use = JsonTypeInfo.Id.NAME, include = JsonTypeInfo.As.PROPERTY, property = "step")
    @JsonSubTypes({
        @JsonSubTypes.Type(value = Load.class, name = "load"),
        @JsonSubTypes.Type(value = Unload.class, name = "unload"),
        @JsonSubTypes.Type(value = Bind.class, name = "bind"),
        @JsonSubTypes.Type(value = Unbind.class, name = "unbind"),
        @JsonSubTypes.Type(value = Open.class, name = "open"),
        @JsonSubTypes.Type(value = MapDma.class, name = "map"),
        @JsonSubTypes.Type(value = Unmap.class, name = "unmap"),
        @JsonSubTypes.Type(value = Sync.class, name = "sync"),
        @JsonSubTypes.Type(value = CpuWrite.class, name = "cpu-write"),
        @JsonSubTypes.Type(value = CpuRead.class, name = "cpu-read"),
        @JsonSubTypes.Type(value = DeviceDma.class, name = "device-dma"),
        @JsonSubTypes.Type(value = CloseDevice.class, name = "close-device"),
        @JsonSubTypes.Type(value = CloseGroup.class, name = "close-group"),
        @JsonSubTypes.Type(value = CloseContainer.class, name = "close-container"),
        @JsonSubTypes.Type(value = HotRemove.class, name = "hot-remove"),
        @JsonSubTypes.Type(value = HotAdd.class, name = "hot-add"),
        @JsonSubTypes.Type(value = SetRlimit.class, name = "setrlimit"),
        @JsonSubTypes.Type(value = NewSlot.class, name = "new_slot"),
        @JsonSubTypes.Type(value = RemoveSlot.class, name = "remove_slot"),
        @JsonSubTypes.Type(value = Fault.class, name = "fault"),
        @JsonSubTypes.Type(value = ExpectError.class, name = "expect-error"),
    })
    sealed interface Step permits Load, Unload, Bind, Unbind, Open, MapDma, Unmap, Sync, CpuWrite, CpuRead,
            DeviceDma, CloseDevice, CloseGroup, CloseContainer, HotRemove, HotAdd, SetRlimit, NewSlot, RemoveSlot,
            Fault, ExpectError {
        /** The step names, in the order the documentation lists them. */
        List<String> NAMES = List.of("load", "unload", "bind", "unbind", "open", "map", "unmap", "sync",
                "cpu-write", "cpu-read", "device-dma", "close-device", "close-group", "close-container",
                "hot-remove", "hot-add", "setrlimit", "new_slot", "remove_slot", "fault", "expect-error");
    }

    /** @param backend the backend @param params its parameters */
    @JsonClassDescription("Load a backend (and what it depends on) with parameters, as modprobe does.")
    record Load(@JsonProperty(required = true) @JsonPropertyDescription("The backend's name.") String backend,
            @JsonPropertyDescription("Module parameters for this load, name to value.") Map<String, String> params)
            implements Step {
    }

    /** @param backend the backend */
    @JsonClassDescription("Unload a backend, as rmmod does (EAGAIN while it is in use).")
    record Unload(@JsonProperty(required = true) @JsonPropertyDescription("The backend's name.") String backend)
            implements Step {
    }

    /** @param device the device */
    @JsonClassDescription("Bind a device to vfio-pci (its group's node appears under /dev/vfio).")
    record Bind(@JsonProperty(required = true) @JsonPropertyDescription("The device, DDDD:BB:DD.F.")
            PciAddress device) implements Step {
    }

    /** @param device the device */
    @JsonClassDescription("Unbind a device from its driver (EBUSY while a process has it open).")
    record Unbind(@JsonProperty(required = true) @JsonPropertyDescription("The device, DDDD:BB:DD.F.")
            PciAddress device) implements Step {
    }

    /**
     * @param process who opens
     * @param device the device
     * @param type the iommu type
     * @param container a container name
     */
    @JsonClassDescription("A process opens a device the VFIO way: a container (new, or the named one), the"
            + " device's group joined to it, an iommu type set on a new container, then the device. A second"
            + " device of a group the process already has open is just opened. On failure, what this step opened"
            + " is closed again.")
    @JsonPropertyOrder({"process", "device", "type", "container"})
    record Open(@JsonProperty(required = true) @JsonPropertyDescription("The process.") String process,
            @JsonProperty(required = true) @JsonPropertyDescription("The device, DDDD:BB:DD.F; bound to vfio-pci.")
            PciAddress device,
            @JsonProperty(required = true) @JsonPropertyDescription("The iommu type set on a new container.")
            IommuType type,
            @JsonPropertyDescription("A name for the container: the first open naming it creates it, later opens"
                    + " of the same process attach their group to it (VFIO_GROUP_SET_CONTAINER on an existing"
                    + " container). Absent: a container of this open's own.") String container)
            implements Step {
    }

    /**
     * @param process whose memory
     * @param device the device whose container maps
     * @param container or the container by name
     * @param buffer the buffer's name
     * @param bytes its size
     * @param contiguous whether physically contiguous
     * @param iova where
     * @param prot the device's access
     */
    @JsonClassDescription("A process mmaps a buffer and maps it for DMA (VFIO_IOMMU_MAP_DMA) in the container of"
            + " 'device' (or the named 'container').")
    @JsonPropertyOrder({"process", "device", "container", "buffer", "bytes", "contiguous", "iova", "prot"})
    record MapDma(@JsonProperty(required = true) @JsonPropertyDescription("The process.") String process,
            @JsonPropertyDescription("A device the process opened: the map goes to its container. Give this or"
                    + " 'container'.") PciAddress device,
            @JsonPropertyDescription("A container named by an open step. Give this or 'device'.") String container,
            @JsonProperty(required = true) @JsonPropertyDescription("A name for the buffer, by which later steps"
                    + " name it.") String buffer,
            @JsonProperty(required = true) @JsonPropertyDescription("Its size, 1 byte to 1 TiB (rounded up to"
                    + " pages).") Size bytes,
            @JsonProperty(defaultValue = "false") @JsonPropertyDescription("Whether the memory is one physically"
                    + " contiguous run (noiommu needs it).") Boolean contiguous,
            @JsonProperty(required = true) @JsonPropertyDescription("Where the device sees it.") Iova iova,
            @JsonProperty(required = true) @JsonPropertyDescription("What the device may do.") Prot prot)
            implements Step {
    }

    /** @param process the buffer's owner @param buffer the buffer */
    @JsonClassDescription("Unmap a buffer (VFIO_IOMMU_UNMAP_DMA).")
    record Unmap(@JsonPropertyDescription("The buffer's owner; checked when given.") String process,
            @JsonProperty(required = true) @JsonPropertyDescription("The buffer.") String buffer) implements Step {
    }

    /** @param process the owner @param buffer the buffer @param forWhom the direction */
    @JsonClassDescription("Sync a whole buffer for the CPU (the device's writes become visible) or for the device.")
    @JsonPropertyOrder({"process", "buffer", "for"})
    record Sync(@JsonPropertyDescription("The buffer's owner; checked when given.") String process,
            @JsonProperty(required = true) @JsonPropertyDescription("The buffer.") String buffer,
            @JsonProperty(value = "for", required = true) @JsonPropertyDescription("Who reads next.")
            SyncFor forWhom) implements Step {
    }

    /** @param process the owner @param buffer the buffer @param offset where @param data what */
    @JsonClassDescription("The process writes text (UTF-8) into its buffer.")
    @JsonPropertyOrder({"process", "buffer", "offset", "data"})
    record CpuWrite(@JsonPropertyDescription("The buffer's owner; checked when given.") String process,
            @JsonProperty(required = true) @JsonPropertyDescription("The buffer.") String buffer,
            @JsonProperty(defaultValue = "0") @JsonPropertyDescription("Bytes from the buffer's start.") Size offset,
            @JsonProperty(required = true) @JsonPropertyDescription("The text written.") String data)
            implements Step {
    }

    /** @param process the owner @param buffer the buffer @param offset where @param expect what */
    @JsonClassDescription("The process reads its buffer; the bytes must be 'expect' (UTF-8).")
    @JsonPropertyOrder({"process", "buffer", "offset", "expect"})
    record CpuRead(@JsonPropertyDescription("The buffer's owner; checked when given.") String process,
            @JsonProperty(required = true) @JsonPropertyDescription("The buffer.") String buffer,
            @JsonProperty(defaultValue = "0") @JsonPropertyDescription("Bytes from the buffer's start.") Size offset,
            @JsonProperty(required = true) @JsonPropertyDescription("The text expected.") String expect)
            implements Step {
    }

    /**
     * @param device the device
     * @param buffer at a buffer's iova
     * @param address or at a bus address
     * @param offset plus this
     * @param write bytes the device writes
     * @param read or bytes the device must read
     */
    @JsonClassDescription("The device does DMA at a buffer's iova (or a bus address): writes 'write', or reads"
            + " and must find 'read'.")
    @JsonPropertyOrder({"device", "buffer", "address", "offset", "write", "read"})
    record DeviceDma(@JsonProperty(required = true) @JsonPropertyDescription("The device, DDDD:BB:DD.F.")
            PciAddress device,
            @JsonPropertyDescription("A mapped buffer: DMA at its iova. Give this or 'address'.") String buffer,
            @JsonPropertyDescription("A bus address. Give this or 'buffer'.") Address address,
            @JsonProperty(defaultValue = "0") @JsonPropertyDescription("Added to the buffer's iova or the"
                    + " address.") Size offset,
            @JsonPropertyDescription("Text the device writes. Give this or 'read'.") String write,
            @JsonPropertyDescription("Text the device must read. Give this or 'write'.") String read)
            implements Step {
    }

    /** @param process the opener @param device the device */
    @JsonClassDescription("Close a device file the process opened.")
    record CloseDevice(@JsonProperty(required = true) @JsonPropertyDescription("The process.") String process,
            @JsonProperty(required = true) @JsonPropertyDescription("The device.") PciAddress device)
            implements Step {
    }

    /** @param process the opener @param device a device of the group */
    @JsonClassDescription("Close the group file of a device's group (EBUSY while a device of it is open).")
    record CloseGroup(@JsonProperty(required = true) @JsonPropertyDescription("The process.") String process,
            @JsonProperty(required = true) @JsonPropertyDescription("A device of the group.") PciAddress device)
            implements Step {
    }

    /** @param process the opener @param container by name @param device or the container of a device */
    @JsonClassDescription("Close a container: its mappings go, its groups are detached.")
    @JsonPropertyOrder({"process", "container", "device"})
    record CloseContainer(@JsonProperty(required = true) @JsonPropertyDescription("The process.") String process,
            @JsonPropertyDescription("The container's name. Give this or 'device'.") String container,
            @JsonPropertyDescription("A device whose container it is. Give this or 'container'.") PciAddress device)
            implements Step {
    }

    /** @param device the device */
    @JsonClassDescription("Hot-remove a device: it is gone at once, its driver unbound, it leaves its group.")
    record HotRemove(@JsonProperty(required = true) @JsonPropertyDescription("The device.") PciAddress device)
            implements Step {
    }

    /** @param device the new device */
    @JsonClassDescription("Hot-add a PCI device; the loaded backends probe it as at boot.")
    record HotAdd(@JsonProperty(required = true) @JsonPropertyDescription("The device.") DeviceSpec device)
            implements Step {
    }

    /** @param process the process @param memlock the new limit */
    @JsonClassDescription("setrlimit(RLIMIT_MEMLOCK): the pages a process may pin (type 1 containers count them;"
            + " CAP_IPC_LOCK lifts the limit).")
    record SetRlimit(@JsonProperty(required = true) @JsonPropertyDescription("The process.") String process,
            @JsonProperty(required = true) @JsonPropertyDescription("The new limit: a size or \"unlimited\".")
            Memlock memlock) implements Step {
    }

    /** @param backend the backend @param slot the slot */
    @JsonClassDescription("Write a slot to a backend's new_slot attribute (xen, swiotlb): add it to the slot list.")
    record NewSlot(@JsonProperty(required = true) @JsonPropertyDescription("The backend.") String backend,
            @JsonProperty(required = true) @JsonPropertyDescription("DDDD:BB:DD.F or BB:DD.F, * for the device"
                    + " and function.") String slot) implements Step {
    }

    /** @param backend the backend @param slot the slot */
    @JsonClassDescription("Write a slot to a backend's remove_slot attribute: take it off the slot list.")
    record RemoveSlot(@JsonProperty(required = true) @JsonPropertyDescription("The backend.") String backend,
            @JsonProperty(required = true) @JsonPropertyDescription("DDDD:BB:DD.F or BB:DD.F, * for the device"
                    + " and function.") String slot) implements Step {
    }

    /**
     * @param attr the capability
     * @param interval every n-th call
     * @param probability percent
     * @param space bytes spared
     * @param times failures
     */
    @JsonClassDescription("Arm fault injection, so that the next steps meet an allocation failure.")
    @JsonPropertyOrder({"attr", "interval", "probability", "space", "times"})
    record Fault(@JsonProperty(required = true) @JsonPropertyDescription("Which allocation points.") FaultName attr,
            @JsonProperty(defaultValue = "1") @JsonPropertyDescription("Fail every n-th call, 1 or more.")
            Long interval,
            @JsonProperty(defaultValue = "100") @JsonPropertyDescription("Percent of eligible calls that fail, 0 to"
                    + " 100.") Integer probability,
            @JsonProperty(defaultValue = "0") @JsonPropertyDescription("Bytes of requests spared first.") Size space,
            @JsonProperty(defaultValue = "1") @JsonPropertyDescription("How many failures, -1 for no limit.")
            Integer times) implements Step {
    }

    /** @param errno the errno @param attempt the step */
    @JsonClassDescription("The step in 'try' must fail with 'errno'; then the scenario goes on.")
    @JsonPropertyOrder({"errno", "try"})
    record ExpectError(@JsonProperty(required = true) @JsonPropertyDescription("The errno name.") Errno errno,
            @JsonProperty(value = "try", required = true) @JsonPropertyDescription("The step that must fail.")
            Step attempt) implements Step {
    }
}
