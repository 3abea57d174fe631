package org.iommu4j.cli;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.iommu4j.api.InvalidParameterException;
import org.iommu4j.api.IommuException;
import org.iommu4j.api.ModuleInfo;
import org.iommu4j.api.ParameterSpec;
import org.iommu4j.api.PciSlotPattern;
import org.iommu4j.kernel.params.CommandLine;
import org.iommu4j.loader.BackendCandidate;
import org.iommu4j.loader.BackendLoader;

/**
 * Checks a kernel command line before a host boots with it, the same way for {@code --cmdline} and a scenario's
 * {@code host.cmdline}: a word that does not parse, a parameter value its type refuses or a {@code hide=} list
 * that does not parse is bad input; a {@code module.param} the module does not declare, a parameter of a module
 * that is never loaded and a bare word iommu4j does not model are warnings, as the kernel only warns of them.
 */
final class CommandLineCheck {
    private CommandLineCheck() {
    }

    /** The syntax of a {@code hide=} list, for messages. */
    static final String HIDE_FORM = "(DDDD:BB:DD.F)(BB:DD.F)... in hex, each slot in parentheses, * for the device"
            + " and function, for example (0000:06:0d.0)(07:00.*)";

    /** Bare words (no module prefix) the simulated kernel or a backend reads. */
    private static final Set<String> KERNEL_WORDS = Set.of("dma_debug", "dma_debug_entries", "fail_page_alloc",
            "failslab", "fail_iommu", "swiotlb");

    /** Module prefixes the kernel itself reads, though no backend of that name exists. */
    private static final Set<String> KERNEL_MODULES = Set.of("module", "vfio_iommu_type1", "xen_pciback");

    /**
     * @param line the command line
     * @param where where it came from, for messages: {@code --cmdline} or {@code host.cmdline}
     * @param loader the backends that may be loaded
     * @return the warnings, each one line
     * @throws BadInput for a malformed word, a value its parameter refuses or a malformed {@code hide=} list
     */
    static List<String> check(String line, String where, BackendLoader loader) {
        CommandLine parsed;
        try {
            parsed = CommandLine.parse(line);
        } catch (InvalidParameterException e) {
            throw new BadInput(where, e.getMessage());
        }
        List<String> warnings = new ArrayList<>();
        List<String> unknownBare = new ArrayList<>();
        for (String word : parsed.words()) {
            int eq = word.indexOf('=');
            String key = eq < 0 ? word : word.substring(0, eq);
            String value = eq < 0 ? null : word.substring(eq + 1);
            int dot = key.indexOf('.');
            if (dot < 0) {
                if (!KERNEL_WORDS.contains(key)) {
                    unknownBare.add(word);
                } else if (key.equals("dma_debug") && (value == null || !value.startsWith("off"))) {
                    warnings.add("dma_debug=" + (value == null ? "" : value) + ": only dma_debug=off has an effect"
                            + " (on turns it off at boot); ignored");
                }
                continue;
            }
            String module = ModuleInfo.normalizeName(key.substring(0, dot));
            String param = key.substring(dot + 1);
            if (param.equals("hide")) {
                hide(key, value, where);
            }
            Optional<ModuleInfo> info = loader.find(module).flatMap(BackendCandidate::metadata);
            if (info.isEmpty()) {
                if (!KERNEL_MODULES.contains(module)) {
                    warnings.add(word + ": no backend named " + key.substring(0, dot) + " (names are case-sensitive;"
                            + " backends: " + ScenarioReader.list(names(loader)) + "); ignored, as the kernel"
                            + " keeps parameters of modules that are never loaded");
                }
                continue;
            }
            Optional<ParameterSpec> spec = declared(info.get(), param);
            if (spec.isEmpty()) {
                warnings.add(module + ": unknown parameter '" + param + "' ignored");
                continue;
            }
            try {
                spec.get().type().normalize(module + "." + spec.get().name(), value);
            } catch (InvalidParameterException e) {
                throw new BadInput(where, e.getMessage());
            }
        }
        if (!unknownBare.isEmpty()) {
            warnings.add("Unknown kernel command line parameters \"" + String.join(" ", unknownBare)
                    + "\", will be passed to user space.");
        }
        return warnings;
    }

    /**
     * Checks a {@code hide=} list with the parser the backends use.
     *
     * @param parameter the parameter, for example {@code xen.hide}
     * @param value its value
     * @param where where it came from
     * @throws BadInput naming the parameter and showing the syntax
     */
    static void hide(String parameter, String value, String where) {
        try {
            PciSlotPattern.parseList(value == null ? "" : value);
        } catch (IommuException e) {
            throw new BadInput(where, parameter + "=" + (value == null ? "" : value) + ": " + e.getMessage()
                    + ": expected " + HIDE_FORM);
        }
    }

    /**
     * Checks the parameters given with a load, as the kernel will: declared names, values of their types,
     * {@code hide} lists.
     *
     * @param backend the backend, known to the loader
     * @param params the parameters
     * @param where where they came from, for messages ({@code backends[0].params})
     * @param loader the loader
     * @throws BadInput naming the parameter
     */
    static void params(String backend, Map<String, String> params, String where, BackendLoader loader) {
        Optional<ModuleInfo> info = loader.find(backend).flatMap(BackendCandidate::metadata);
        if (info.isEmpty() || params == null) {
            return;
        }
        String module = ModuleInfo.normalizeName(info.get().name());
        for (var e : params.entrySet()) {
            String at = where + "." + e.getKey();
            ParameterSpec spec = declared(info.get(), e.getKey()).orElseThrow(() -> new BadInput(at,
                    module + ": Unknown parameter `" + e.getKey() + "'; valid parameters: " + info.get().parameters()
                            .stream().map(ParameterSpec::name).toList()));
            try {
                spec.type().normalize(module + "." + spec.name(), e.getValue());
            } catch (InvalidParameterException x) {
                throw new BadInput(at, x.getMessage());
            }
            if (spec.name().equals("hide")) {
                hide(module + ".hide", e.getValue(), at);
            }
        }
    }

    private static Optional<ParameterSpec> declared(ModuleInfo info, String param) {
        String wanted = param.replace('-', '_');
        return info.parameters().stream().filter(p -> p.name().replace('-', '_').equals(wanted)).findFirst();
    }

    /**
     * @param loader the loader
     * @param name a backend name
     * @param where where the name came from, or null
     * @throws BadInput if no loadable backend has the name, saying so when a plugin skipped as broken looks
     *     like it, or when the backend was refused
     */
    static void requireBackend(BackendLoader loader, String name, String where) {
        requireBackend(loader, name, where, true);
    }

    /**
     * @param loader the loader
     * @param name a backend name
     * @param where where the name came from, or null
     * @param loadable whether it must be loadable too (else found is enough, as for modinfo)
     * @throws BadInput as {@link #requireBackend(BackendLoader, String, String)} does
     */
    static void requireBackend(BackendLoader loader, String name, String where, boolean loadable) {
        Optional<BackendCandidate> found = loader.find(name);
        if (found.isPresent() && (found.get().loadable() || !loadable)) {
            return;
        }
        if (found.isPresent()) {
            throw new BadInput(where, "backend " + name + " cannot be loaded: " + found.get().refusal());
        }
        String norm = ModuleInfo.normalizeName(name);
        for (var b : loader.broken()) {
            String file = java.nio.file.Path.of(b.path()).getFileName().toString().replaceFirst("\\.jar$", "");
            String stem = ModuleInfo.normalizeName(file);
            if (stem.equals(norm) || stem.startsWith(norm + "_") || b.path().contains("/" + name + "/")
                    || b.path().contains("/" + norm + "/")) {
                throw new BadInput(where, "backend " + name + " was skipped as broken: " + b.path() + ": "
                        + b.cause());
            }
        }
        long matches = loader.backends().stream().filter(c -> c.name().equals(norm)).count();
        if (matches > 1) {
            throw new BadInput(where, "Duplicate backend '" + norm + "': " + matches + " plugins provide it;"
                    + " remove all but one ('iommuctl backends' lists them)");
        }
        throw new BadInput(where, "No backend named '" + name + "'. Available: " + names(loader) + ". Searched: "
                + loader.searched());
    }

    static Collection<String> names(BackendLoader loader) {
        return loader.backends().stream().map(BackendCandidate::name).distinct().sorted().toList();
    }
}
