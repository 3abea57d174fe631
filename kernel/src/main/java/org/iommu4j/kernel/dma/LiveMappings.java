package org.iommu4j.kernel.dma;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import org.iommu4j.kernel.module.ModuleRef;
import org.iommu4j.kernel.sync.SpinLock;

/**
 * The DMA API's exact record of one device's live mappings and coherent buffers: for each DMA address, which
 * {@link DmaOpsBinding} made how many mappings there, and how many of those are being unmapped right now; plus
 * the calls in flight through each binding that have no record yet (a map before its ops return). A module is in
 * use exactly while one of these names a binding it installed, so an unmap the DMA API never handed out cannot
 * cancel a live mapping, and a mapping of a hot-removed device still counts until it is unmapped.
 *
 * <p>The kernel keeps no such count (its DMA ops are built in or pinned by the driver that probed the device);
 * this is iommu4j's way to make module unload safe, see {@link DmaApi}. One table per device, guarded by its own
 * lock, so devices never contend; an open-addressing table of primitive arrays, so the steady state allocates
 * nothing (the arrays grow, rarely, when a device holds more mappings than ever before).
 *
 * <p><b>The fast path: one lock section per call.</b> {@code map}, {@code unmap} and {@code sync} each take the
 * lock once: under it they claim a {@link Slot} (a call in flight through a binding, or a mapping being unmapped),
 * and after their ops return they finish the slot with one release store and no lock: a finished map publishes
 * its address in the slot ({@link Slot#mapped}), which the next lock holder moves into the table; a finished
 * unmap or sync frees the slot ({@link Slot#done}). A slot never moves while its caller owns it (the slot array
 * only grows, by copying references), and every reader of the table holds the lock and reads a slot's state with
 * acquire ordering, so each count is as exact as under one monitor per step. The lock is a spin lock taken with
 * one compare-and-swap and released with a release store, not a monitor (two compare-and-swaps per section).
 */
final class LiveMappings extends SpinLock {
    /** A slot no call owns. */
    static final int FREE = 0;
    /** A call in flight through the slot's binding with no DMA address yet (a map or a sync). */
    static final int BUSY = 1;
    /** A map through the slot's binding returned its DMA address: a live mapping not yet in the table. */
    static final int MAPPED = 2;
    /** A live mapping taken for an unmap whose ops have not returned yet. */
    static final int UNMAPPING = 3;
    private static final VarHandle STATE;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            STATE = l.findVarHandle(SlotFields.class, "state", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /**
     * Padding before a slot's fields (superclass fields come first in an object). A slot is written on every map and
     * unmap of its device, and a garbage collection can move any object next to it. The int fills the 4 bytes after
     * a compressed object header, where HotSpot would otherwise put the slot's state ahead of the longs (a layout
     * dump found it there, sharing a cache line with the object before the slot); the longs keep 128 bytes, two
     * cache lines, in front of the fields.
     */
    @SuppressWarnings("unused")
    private abstract static class SlotPadding {
        private int p;
        private long p0, p1, p2, p3, p4, p5, p6, p7, p8, p9, pa, pb, pc, pd, pe, pf;
    }

    /** A slot's fields, between the two paddings. */
    private abstract static class SlotFields extends SlotPadding {
        long key;
        DmaOpsBinding binding;
        /** Read and written through {@code STATE}. */
        int state;
    }

    /**
     * One call's claim on the table: its binding, its state ({@link #FREE}, {@link #BUSY}, {@link #MAPPED},
     * {@link #UNMAPPING}) and, once known, its DMA address. Only its owner changes it outside the lock, and only
     * with a release store of its state.
     */
    static final class Slot extends SlotFields {
        /** Padding after the fields: a slot is written on every call of its device (see {@link SlotPadding}). */
        @SuppressWarnings("unused")
        private long q0, q1, q2, q3, q4, q5, q6, q7, q8, q9, qa, qb, qc, qd, qe, qf;

        /** @return the binding the slot's call goes through */
        DmaOpsBinding binding() {
            return binding;
        }

        /** @return the DMA address of a mapping being unmapped */
        long key() {
            return key;
        }

        /** The map through this busy slot returned {@code dmaAddress}: it is a live mapping from now on. */
        void mapped(long dmaAddress) {
            key = dmaAddress;
            STATE.setRelease(this, MAPPED);
        }

        /** The slot's call is over (a sync, a failed map, a finished unmap): it counts nothing any more. */
        void done() {
            STATE.setRelease(this, FREE);
        }

        int state() {
            return (int) STATE.getAcquire(this);
        }
    }

    /** The DMA API whose table this is (a device's field holds it), or null. */
    final Object api;
    private Slot[] slots = {new Slot(), new Slot()};
    private long[] keys = new long[16];
    private DmaOpsBinding[] bindings = new DmaOpsBinding[16];
    private int[] live = new int[16];
    private int[] unmapping = new int[16];
    private int entries;
    private DmaOpsBinding[] busyBindings = new DmaOpsBinding[2];
    private int[] busy = new int[2];

    LiveMappings() {
        this(null);
    }

    LiveMappings(Object api) {
        this.api = api;
    }

    /**
     * Claims a slot for a call in flight through {@code binding} (lock held): it counts for the binding's owner
     * until the caller finishes it with {@link Slot#mapped} or {@link Slot#done}.
     */
    Slot claim(DmaOpsBinding binding) {
        Slot s = freeSlot();
        if (s.binding != binding) {
            // a reference store runs the collector's card-marking barrier; the same device claims its slot for the
            // same binding call after call, so storing it only when it changes keeps maps off the shared card table
            s.binding = binding;
        }
        STATE.setRelease(s, BUSY);
        return s;
    }

    /**
     * Takes one live mapping at {@code dmaAddress} for an unmap (lock held), as {@link #take}, into a slot in
     * {@link #UNMAPPING} state; the caller finishes it with {@link Slot#done} once its ops unmapped it, or gives
     * it back with {@link #unmapFailed(Slot)}.
     *
     * @return the slot, or null when no mapping is live there
     */
    Slot takeSlot(long dmaAddress, DmaOpsBinding preferred) {
        Slot[] all = slots;
        for (Slot s : all) {
            // the common case: the mapping this device's last map published, not in the table yet
            if (s.state() == MAPPED && s.key == dmaAddress && s.binding == preferred) {
                STATE.setRelease(s, UNMAPPING);
                return s;
            }
        }
        DmaOpsBinding b = take(dmaAddress, preferred);
        if (b == null) {
            return null;
        }
        // back from unmapping in the table to a slot: the slot, not the table, now counts it
        int i = slot(dmaAddress, b);
        unmapping[i]--;
        removeIfEmpty(i);
        Slot s = freeSlot();
        if (s.binding != b) {
            s.binding = b;
        }
        s.key = dmaAddress;
        STATE.setRelease(s, UNMAPPING);
        return s;
    }

    /** The ops refused the unmap of a mapping {@link #takeSlot} took (lock held): it is live again. */
    void unmapFailed(Slot s) {
        add(s.key, s.binding);
        STATE.setRelease(s, FREE);
    }

    private Slot freeSlot() {
        Slot[] all = slots;
        for (Slot s : all) {
            if (s.state() == FREE) {
                return s;
            }
        }
        // every slot is owned by a call in flight: more slots (the owned ones keep their place)
        Slot[] more = java.util.Arrays.copyOf(all, all.length * 2);
        for (int i = all.length; i < more.length; i++) {
            more[i] = new Slot();
        }
        slots = more;
        return more[all.length];
    }

    /** Moves the mappings that finished maps published in their slots into the table (lock held). */
    private void drain() {
        Slot[] all = slots;
        for (Slot s : all) {
            if (s.state() == MAPPED) {
                add(s.key, s.binding);
                STATE.setRelease(s, FREE);
            }
        }
    }

    /** Counts a call in flight through {@code binding} that has no record (yet); {@code delta} is +1 or -1. */
    void busy(DmaOpsBinding binding, int delta) {
        for (int i = 0; i < busyBindings.length; i++) {
            if (busyBindings[i] == binding) {
                busy[i] += delta;
                if (busy[i] == 0) {
                    busyBindings[i] = null;
                }
                return;
            }
        }
        if (delta < 0) {
            throw new IllegalStateException("no call in flight through " + binding);
        }
        for (int i = 0; i < busyBindings.length; i++) {
            if (busyBindings[i] == null) {
                busyBindings[i] = binding;
                busy[i] = delta;
                return;
            }
        }
        int n = busyBindings.length;
        busyBindings = java.util.Arrays.copyOf(busyBindings, n * 2);
        busy = java.util.Arrays.copyOf(busy, n * 2);
        busyBindings[n] = binding;
        busy[n] = delta;
    }

    /** Records one live mapping at {@code dmaAddress} made through {@code binding}. */
    void add(long dmaAddress, DmaOpsBinding binding) {
        int i = slot(dmaAddress, binding);
        if (bindings[i] == null) {
            if (entries + 1 > keys.length / 2) {
                grow();
                i = slot(dmaAddress, binding);
            }
            keys[i] = dmaAddress;
            bindings[i] = binding;
            entries++;
        }
        live[i]++;
    }

    /**
     * Takes one live mapping at {@code dmaAddress} for an unmap: it stops being live and starts being unmapped,
     * so it still keeps its binding's owner loaded until {@link #unmapped} or {@link #unmapFailed}.
     *
     * @param preferred the binding to take a mapping of first, when several made one at that address
     * @return the binding that made the mapping taken, or null when none is live there
     */
    DmaOpsBinding take(long dmaAddress, DmaOpsBinding preferred) {
        drain();
        int found = -1;
        int mask = keys.length - 1;
        for (int i = hash(dmaAddress) & mask; bindings[i] != null; i = (i + 1) & mask) {
            if (keys[i] == dmaAddress && live[i] > 0) {
                if (found < 0 || bindings[i] == preferred) {
                    found = i;
                }
            }
        }
        if (found < 0) {
            return null;
        }
        live[found]--;
        unmapping[found]++;
        return bindings[found];
    }

    /** @return whether an unmap of a mapping at {@code dmaAddress} is under way (another caller's) */
    boolean isUnmapping(long dmaAddress) {
        for (Slot s : slots) {
            if (s.state() == UNMAPPING && s.key == dmaAddress) {
                return true;
            }
        }
        int mask = keys.length - 1;
        for (int i = hash(dmaAddress) & mask; bindings[i] != null; i = (i + 1) & mask) {
            if (keys[i] == dmaAddress && unmapping[i] > 0) {
                return true;
            }
        }
        return false;
    }

    /**
     * @return the binding of a live mapping that starts at {@code dmaAddress} ({@code preferred} first), or null
     */
    DmaOpsBinding find(long dmaAddress, DmaOpsBinding preferred) {
        drain();
        DmaOpsBinding found = null;
        int mask = keys.length - 1;
        for (int i = hash(dmaAddress) & mask; bindings[i] != null; i = (i + 1) & mask) {
            if (keys[i] == dmaAddress && live[i] > 0 && (found == null || bindings[i] == preferred)) {
                found = bindings[i];
            }
        }
        return found;
    }

    /** The unmap of a mapping {@link #take} took is done: the record goes. */
    void unmapped(long dmaAddress, DmaOpsBinding binding) {
        int i = slot(dmaAddress, binding);
        unmapping[i]--;
        removeIfEmpty(i);
    }

    /** The ops refused the unmap of a mapping {@link #take} took: it is live again. */
    void unmapFailed(long dmaAddress, DmaOpsBinding binding) {
        int i = slot(dmaAddress, binding);
        unmapping[i]--;
        live[i]++;
    }

    /**
     * @param owner a module
     * @return live mappings, unmaps under way and calls in flight through bindings {@code owner} installed
     */
    long count(ModuleRef owner) {
        drain();
        long n = 0;
        for (Slot s : slots) {
            if (s.state() != FREE && s.binding.owner() == owner) {
                n++;
            }
        }
        for (int i = 0; i < keys.length; i++) {
            if (bindings[i] != null && bindings[i].owner() == owner) {
                n += live[i] + unmapping[i];
            }
        }
        for (int i = 0; i < busyBindings.length; i++) {
            if (busyBindings[i] != null && busyBindings[i].owner() == owner) {
                n += busy[i];
            }
        }
        return n;
    }

    /**
     * @param owner a module
     * @return live mappings (not being unmapped) made through bindings {@code owner} installed
     */
    long countLive(ModuleRef owner) {
        drain();
        long n = 0;
        for (int i = 0; i < keys.length; i++) {
            if (bindings[i] != null && bindings[i].owner() == owner) {
                n += live[i];
            }
        }
        return n;
    }

    /**
     * @param binding a binding
     * @return live mappings and unmaps under way made through it
     */
    long count(DmaOpsBinding binding) {
        drain();
        long n = 0;
        for (Slot s : slots) {
            if (s.state() == UNMAPPING && s.binding == binding) {
                n++;
            }
        }
        for (int i = 0; i < keys.length; i++) {
            if (bindings[i] == binding) {
                n += live[i] + unmapping[i];
            }
        }
        return n;
    }

    private static int hash(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 32));
    }

    /** The slot holding (key, binding), or the empty slot where it would go. */
    private int slot(long key, DmaOpsBinding binding) {
        int mask = keys.length - 1;
        int i = hash(key) & mask;
        while (bindings[i] != null && (keys[i] != key || bindings[i] != binding)) {
            i = (i + 1) & mask;
        }
        return i;
    }

    private void removeIfEmpty(int i) {
        if (live[i] != 0 || unmapping[i] != 0) {
            return;
        }
        int mask = keys.length - 1;
        bindings[i] = null;
        entries--;
        // backward-shift deletion keeps every probe sequence unbroken without tombstones
        for (int j = (i + 1) & mask; bindings[j] != null; j = (j + 1) & mask) {
            int home = hash(keys[j]) & mask;
            boolean movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
            if (movable) {
                keys[i] = keys[j];
                bindings[i] = bindings[j];
                live[i] = live[j];
                unmapping[i] = unmapping[j];
                bindings[j] = null;
                live[j] = 0;
                unmapping[j] = 0;
                i = j;
            }
        }
    }

    private void grow() {
        long[] oldKeys = keys;
        DmaOpsBinding[] oldBindings = bindings;
        int[] oldLive = live;
        int[] oldUnmapping = unmapping;
        int n = oldKeys.length * 2;
        keys = new long[n];
        bindings = new DmaOpsBinding[n];
        live = new int[n];
        unmapping = new int[n];
        for (int i = 0; i < oldKeys.length; i++) {
            if (oldBindings[i] != null) {
                int j = slot(oldKeys[i], oldBindings[i]);
                keys[j] = oldKeys[i];
                bindings[j] = oldBindings[i];
                live[j] = oldLive[i];
                unmapping[j] = oldUnmapping[i];
            }
        }
    }
}
