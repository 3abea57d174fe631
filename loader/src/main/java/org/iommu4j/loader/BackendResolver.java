package org.iommu4j.loader;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.kernel.Host;
import org.iommu4j.loader.BackendCandidate.Standing;
import org.iommu4j.loader.BackendLoadException.Kind;

/**
 * Resolution, PF4J's {@code DependencyResolver}: which backend a name means, and what must be loaded first.
 *
 * <p>Precedence is depmod's: a module in {@code updates/} is chosen over the one that shipped with the kernel.
 * Here a plugin (plugin directory, or the plugin under test) is chosen over a class-path backend of the same
 * name, which is listed as overridden; two of one name at the same precedence are duplicates and the name loads
 * neither. A backend whose API is refused competes only when no backend of its name is loadable, so that a
 * refused plugin does not hide a working in-tree backend.
 */
final class BackendResolver {
    private final List<BackendDescriptor> all;
    private final Map<String, List<BackendDescriptor>> byName = new LinkedHashMap<>();
    private final Map<BackendDescriptor, BackendCandidate> candidates = new LinkedHashMap<>();
    private final List<String> searched;

    BackendResolver(List<BackendDescriptor> all, List<String> searched) {
        this.all = List.copyOf(all);
        this.searched = searched;
        for (BackendDescriptor d : all) {
            byName.computeIfAbsent(d.name(), n -> new ArrayList<>()).add(d);
        }
        byName.values().forEach(this::rank);
    }

    private void rank(List<BackendDescriptor> same) {
        List<BackendDescriptor> eligible = same.stream().filter(BackendDescriptor::loadable).toList();
        if (eligible.isEmpty()) {
            eligible = same;
        }
        boolean anyPlugin = eligible.stream().anyMatch(BackendDescriptor::fromPlugin);
        List<BackendDescriptor> top = eligible.stream().filter(d -> d.fromPlugin() == anyPlugin).toList();
        String classPathOrigins = same.stream().filter(d -> !d.fromPlugin() && d.loadable())
                .map(BackendDescriptor::location).collect(Collectors.joining(", "));
        for (BackendDescriptor d : same) {
            Standing standing;
            String other = null;
            if (top.contains(d)) {
                if (top.size() > 1) {
                    standing = Standing.DUPLICATE;
                    other = top.stream().filter(o -> o != d).map(BackendDescriptor::location)
                            .collect(Collectors.joining(", "));
                } else if (d.fromPlugin() && !classPathOrigins.isEmpty()) {
                    standing = Standing.OVERRIDES;
                    other = classPathOrigins;
                } else {
                    standing = Standing.ONLY;
                }
            } else if (anyPlugin && !d.fromPlugin() && d.loadable()) {
                standing = Standing.OVERRIDDEN;
                other = top.stream().map(BackendDescriptor::location).collect(Collectors.joining(", "));
            } else {
                standing = Standing.ONLY;
            }
            candidates.put(d, new BackendCandidate(d.name(), d.className(), d.origin(),
                    d.info() != null ? d.info().inTree() : !d.fromPlugin(), d.signed(), d.info(), d.refusal(),
                    standing, other));
        }
    }

    List<BackendCandidate> candidates() {
        return new ArrayList<>(candidates.values());
    }

    List<String> names() {
        return byName.keySet().stream().sorted().toList();
    }

    /** @return the backend the name selects, if one does (refused or not) */
    BackendDescriptor selected(String name) {
        List<BackendDescriptor> same = byName.getOrDefault(ModuleInfo.normalizeName(name), List.of());
        List<BackendDescriptor> chosen = same.stream().filter(d -> {
            Standing s = candidates.get(d).standing();
            return s == Standing.ONLY || s == Standing.OVERRIDES;
        }).toList();
        if (chosen.size() == 1) {
            return chosen.get(0);
        }
        if (chosen.isEmpty() && same.size() == 1) {
            return same.get(0);
        }
        return null;
    }

    BackendCandidate candidate(BackendDescriptor d) {
        return candidates.get(d);
    }

    /**
     * @param name a backend name
     * @param dependents the chain of backends that led here (last is the direct dependent), or null
     * @return the one backend the name selects
     * @throws BackendLoadException unknown, missing dependency, or duplicate
     */
    BackendDescriptor require(String name, List<String> dependents) {
        String norm = ModuleInfo.normalizeName(name);
        List<BackendDescriptor> same = byName.getOrDefault(norm, List.of());
        if (same.isEmpty()) {
            List<String> available = names();
            if (dependents != null) {
                List<String> chain = new ArrayList<>(dependents);
                Collections.reverse(chain);
                chain.add(norm);
                throw new BackendLoadException(Kind.MISSING_DEPENDENCY, chain.get(chain.size() - 2) + " depends on "
                        + norm + ", which was not found (chain: " + String.join(" -> ", chain) + "). Available: "
                        + available + ". Searched: " + searched);
            }
            throw new BackendLoadException(Kind.UNKNOWN, "No backend named '" + name + "'. Available: " + available
                    + ". Searched: " + searched);
        }
        BackendDescriptor d = selected(norm);
        if (d == null) {
            List<BackendDescriptor> dups = same.stream()
                    .filter(x -> candidates.get(x).standing() == Standing.DUPLICATE).toList();
            throw new BackendLoadException(Kind.DUPLICATE, "Duplicate backend '" + norm + "': provided by "
                    + (dups.isEmpty() ? same : dups).stream().map(BackendDescriptor::describe)
                    .collect(Collectors.joining(" and ")) + "; remove all but one");
        }
        return d;
    }

    /** @return the backend and its dependencies not yet loaded on the host, dependencies first */
    List<BackendDescriptor> loadOrder(String name, Host host) {
        List<BackendDescriptor> order = new ArrayList<>();
        resolve(name, new ArrayDeque<>(), order, host);
        return order;
    }

    private void resolve(String name, Deque<String> chain, List<BackendDescriptor> order, Host host) {
        String norm = ModuleInfo.normalizeName(name);
        if (chain.contains(norm)) {
            List<String> cycle = new ArrayList<>(chain);
            Collections.reverse(cycle);
            cycle.add(norm);
            throw new BackendLoadException(Kind.DEPENDENCY_CYCLE, "dependency cycle: " + String.join(" -> ", cycle));
        }
        BackendDescriptor d = require(name, chain.isEmpty() ? null : new ArrayList<>(chain));
        if (!d.loadable()) {
            throw new BackendLoadException(Kind.INCOMPATIBLE, d.refusal());
        }
        chain.push(norm);
        for (String dep : d.info().depends()) {
            if (host.modules().find(dep).isEmpty() && order.stream().noneMatch(o -> o.name()
                    .equals(ModuleInfo.normalizeName(dep)))) {
                resolve(dep, chain, order, host);
            }
        }
        chain.pop();
        order.add(d);
    }

    List<BackendDescriptor> all() {
        return all;
    }
}
