package org.iommu4j.loader;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;
import org.iommu4j.api.ApiVersion;

/**
 * Builds real plugin jars in a test's temporary directory: compiles sources against the api, jars them. A jar
 * carries {@code Iommu4j-Api-Version} of this API unless told otherwise, as a plugin must.
 */
public final class PluginJars {
    private final Path work;

    public PluginJars(Path work) {
        this.work = work;
    }

    /** A jar under construction. */
    public final class Jar {
        private final Map<String, String> sources = new LinkedHashMap<>();
        private final List<Path> sourceTrees = new ArrayList<>();
        private final Map<String, String> manifest = new LinkedHashMap<>(
                Map.of(ApiVersion.MANIFEST_ATTRIBUTE, ApiVersion.CURRENT.toString()));
        private String services;

        public Jar source(String className, String code) {
            sources.put(className, code);
            return this;
        }

        public Jar sourceTree(Path root) {
            sourceTrees.add(root);
            return this;
        }

        public Jar services(String... providerClasses) {
            services = String.join("\n", providerClasses) + "\n";
            return this;
        }

        public Jar manifest(String attribute, String value) {
            manifest.put(attribute, value);
            return this;
        }

        /** Leaves an attribute out of the manifest, such as the API version every plugin jar gets. */
        public Jar withoutManifest(String attribute) {
            manifest.remove(attribute);
            return this;
        }

        /** Compiles and writes the jar. */
        public Path writeTo(Path jar) {
            try {
                Path src = Files.createTempDirectory(work, "src");
                Path classes = Files.createTempDirectory(work, "classes");
                List<String> files = new ArrayList<>();
                for (var e : sources.entrySet()) {
                    Path file = src.resolve(e.getKey().replace('.', '/') + ".java");
                    Files.createDirectories(file.getParent());
                    Files.writeString(file, e.getValue());
                    files.add(file.toString());
                }
                for (Path tree : sourceTrees) {
                    try (Stream<Path> s = Files.walk(tree)) {
                        s.filter(p -> p.toString().endsWith(".java")).forEach(p -> files.add(p.toString()));
                    }
                }
                JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
                List<String> args = new ArrayList<>(List.of("-d", classes.toString(), "-classpath",
                        System.getProperty("java.class.path"), "--release", "17", "-nowarn"));
                args.addAll(files);
                if (javac.run(null, null, null, args.toArray(String[]::new)) != 0) {
                    throw new IllegalStateException("plugin sources did not compile");
                }
                Manifest m = new Manifest();
                m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
                manifest.forEach((k, v) -> m.getMainAttributes().putValue(k, v));
                Files.createDirectories(jar.getParent());
                try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar), m);
                        Stream<Path> s = Files.walk(classes)) {
                    for (Path p : s.filter(Files::isRegularFile).toList()) {
                        out.putNextEntry(new JarEntry(classes.relativize(p).toString().replace('\\', '/')));
                        out.write(Files.readAllBytes(p));
                        out.closeEntry();
                    }
                    if (services != null) {
                        out.putNextEntry(new JarEntry("META-INF/services/org.iommu4j.api.BackendProvider"));
                        out.write(services.getBytes(StandardCharsets.UTF_8));
                        out.closeEntry();
                    }
                }
                return jar;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    public Jar jar() {
        return new Jar();
    }

    /**
     * The source of a small backend provider.
     *
     * @param pkg its package
     * @param name the module name
     * @param license its license
     * @param depends modules it depends on
     * @param startBody statements run in start (with {@code kernel} in scope)
     * @return the source
     */
    public static String provider(String pkg, String name, String license, List<String> depends, String startBody) {
        StringBuilder deps = new StringBuilder();
        for (String d : depends) {
            deps.append(".depends(\"").append(d).append("\")");
        }
        return "package " + pkg + ";\n"
                + "import org.iommu4j.api.*;\n"
                + "public final class Provider implements BackendProvider {\n"
                + "  public ModuleInfo info() {\n"
                + "    return ModuleInfo.builder(\"" + name + "\").version(\"1.0\").description(\"test plugin\")"
                + ".license(\"" + license + "\").inTree(false)" + deps + ".build();\n"
                + "  }\n"
                + "  public Backend start(KernelServices kernel) {\n"
                + "    " + startBody + "\n"
                + "    return new Backend() { };\n"
                + "  }\n"
                + "}\n";
    }
}
