package org.iommu4j.kernel.dma;

import org.iommu4j.kernel.module.ModuleRef;

/**
 * The DMA API's exact record of one device's live mappings and coherent buffers: for each DMA address, which
 * {@link DmaOpsBinding} made how many mappings there, and how many of those are being unmapped right now; plus
 * the calls in flight through each binding that have no record yet (a map before its ops return). A module is in
 * use exactly while one of these names a binding it installed, so an unmap the DMA API never handed out cannot
 * cancel a live mapping, and a mapping of a hot-removed device still counts until it is unmapped.
 *
 * <p>The kernel keeps no such count (its DMA ops are built in or pinned by the driver that probed the device);
 * this is iommu4j's way to make module unload safe, see {@link DmaApi}. One table per device, guarded by its own
 * monitor, so devices never contend; an open-addressing table of primitive arrays, so the steady state allocates
 * nothing (the arrays grow, rarely, when a device holds more mappings than ever before).
 */
final class LiveMappings {
    private long[] keys = new long[16];
    private DmaOpsBinding[] bindings = new DmaOpsBinding[16];
    private int[] live = new int[16];
    private int[] unmapping = new int[16];
    private int entries;
    private DmaOpsBinding[] busyBindings = new DmaOpsBinding[2];
    private int[] busy = new int[2];

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
        long n = 0;
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
        long n = 0;
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
