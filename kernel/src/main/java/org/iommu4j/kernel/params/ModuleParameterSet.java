package org.iommu4j.kernel.params;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.iommu4j.api.Errno;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.ModuleParameters;
import org.iommu4j.api.ParameterListener;
import org.iommu4j.api.ParameterSpec;

/**
 * A module's parameters: declared specs, values from the command line overridden by the load call, kept in
 * normal form, changed at run time through {@link #set} (the sysfs write) when a parameter is writable.
 * Reads take no lock: the values live in an immutable map replaced on every change.
 */
public final class ModuleParameterSet implements ModuleParameters {
    private final String module;
    private final Map<String, ParameterSpec> specs = new LinkedHashMap<>();
    private final List<ParameterListener> listeners = new CopyOnWriteArrayList<>();
    private volatile Map<String, String> values;

    /**
     * @param module the module's name
     * @param specs what it declares
     * @param fromCommandLine raw values from {@code <module>.<param>} words (null value for a bare word)
     * @param fromCall raw values given with the load, which win
     * @throws InvalidParameterException {@link Errno#ENOENT} for an undeclared name, {@link Errno#EINVAL} for
     *     a value its type refuses
     */
    public ModuleParameterSet(String module, List<ParameterSpec> specs, Map<String, String> fromCommandLine,
            Map<String, String> fromCall) {
        this.module = module;
        for (ParameterSpec s : specs) {
            this.specs.put(key(s.name()), s);
        }
        Map<String, String> v = new LinkedHashMap<>();
        for (ParameterSpec s : specs) {
            v.put(s.name(), s.type().normalize(module + "." + s.name(), s.defaultValue()));
        }
        for (Map<String, String> source : List.of(fromCommandLine, fromCall)) {
            for (var e : source.entrySet()) {
                ParameterSpec s = require(e.getKey());
                v.put(s.name(), s.type().normalize(module + "." + s.name(), e.getValue()));
            }
        }
        this.values = Collections.unmodifiableMap(v);
    }

    /** The kernel's {@code parameq}: {@code -} and {@code _} in a parameter name are the same. */
    private static String key(String name) {
        return name.replace('-', '_');
    }

    private ParameterSpec require(String name) {
        ParameterSpec s = specs.get(key(name));
        if (s == null) {
            List<String> valid = specs.values().stream().map(ParameterSpec::name).toList();
            throw new InvalidParameterException(Errno.ENOENT, module + "." + name, module
                    + ": Unknown parameter `" + name + "'; valid parameters: "
                    + (valid.isEmpty() ? "none" : valid.toString()));
        }
        return s;
    }

    @Override
    public String get(String name) {
        String v = values.get(name);
        return v != null ? v : values.get(require(name).name());
    }

    /**
     * Changes a parameter after load, as writing {@code /sys/module/<m>/parameters/<p>} does. Listeners may
     * refuse; then the old value stays.
     *
     * @param name the parameter
     * @param raw the new value as written
     * @throws InvalidParameterException {@link Errno#ENOENT} unknown, {@link Errno#EPERM} read-only,
     *     {@link Errno#EINVAL} bad value
     */
    public synchronized void set(String name, String raw) {
        ParameterSpec s = require(name);
        name = s.name();
        if (!s.writable()) {
            throw new InvalidParameterException(Errno.EPERM, module + "." + name, "parameter " + module + "."
                    + name + " is read-only after load (sysfs mode 0444): give it on the command line or at load");
        }
        String next = s.type().normalize(module + "." + name, raw);
        String old = values.get(name);
        for (ParameterListener l : listeners) {
            l.parameterChanged(name, old, next);
        }
        Map<String, String> copy = new LinkedHashMap<>(values);
        copy.put(name, next);
        values = Collections.unmodifiableMap(copy);
    }

    @Override
    public void addListener(ParameterListener listener) {
        listeners.add(listener);
    }

    /** @return every value in declaration order, in normal form */
    public Map<String, String> values() {
        return values;
    }

    /** @return the declarations */
    public List<ParameterSpec> specs() {
        return List.copyOf(specs.values());
    }
}
