package org.iommu4j.arch;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.fields;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noFields;
import static org.assertj.core.api.Assertions.assertThat;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import java.io.File;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

/**
 * The house rules of docs/architecture.md, checked over the compiled classes and the poms of every module: the api
 * depends on the JDK only, a backend on the api only, and no production class keeps static mutable state.
 */
class DependencyRuleTest {
    private static final List<String> BACKENDS = List.of("noiommu", "swiotlb", "xen");
    private static JavaClasses production;

    @BeforeAll
    static void importClasses() {
        production = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("org.iommu4j");
        assertThat(production.containPackage("org.iommu4j.api")).isTrue();
        assertThat(production.containPackage("org.iommu4j.kernel")).isTrue();
        assertThat(production.containPackage("org.iommu4j.cli")).isTrue();
        assertThat(production.containPackage("org.iommu4j.examples.fslnone")).isTrue();
        assertThat(production.containPackage("org.iommu4j.xen")).isTrue();
    }

    @Test
    void theXenPlatformIsPartOfTheMachineAndDependsOnTheKernelAndTheApiOnly() {
        classes().that().resideInAPackage("org.iommu4j.xen..")
                .should().onlyDependOnClassesThat().resideInAnyPackage("java..", "org.iommu4j.api..",
                        "org.iommu4j.kernel..", "org.iommu4j.xen..")
                .check(production);
    }

    @Test
    void apiDependsOnTheJdkOnly() {
        classes().that().resideInAPackage("org.iommu4j.api..")
                .should().onlyDependOnClassesThat().resideInAnyPackage("java..", "org.iommu4j.api..")
                .check(production);
    }

    static Stream<String> backends() {
        return BACKENDS.stream();
    }

    @Test
    void theExampleOutOfTreeBackendDependsOnTheApiOnly() {
        classes().that().resideInAPackage("org.iommu4j.examples..")
                .should().onlyDependOnClassesThat().resideInAnyPackage("java..", "org.iommu4j.api..",
                        "org.iommu4j.examples..")
                .check(production);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void aBackendDependsOnTheApiAndItsOwnPackageOnly(String backend) {
        classes().that().resideInAPackage("org.iommu4j.backend." + backend + "..")
                .should().onlyDependOnClassesThat().resideInAnyPackage("java..", "org.iommu4j.api..",
                        "org.iommu4j.backend." + backend + "..")
                .allowEmptyShould(true)
                .check(production);
    }

    @Test
    void noProductionClassKeepsStaticMutableState() {
        fields().that().areStatic().and().areDeclaredInClassesThat().resideInAPackage("org.iommu4j..")
                .should().beFinal()
                .because("every simulated host must be an object of its own (docs/architecture.md)")
                .allowEmptyShould(true)
                .check(production);
        noFields().that().areStatic().and().areDeclaredInClassesThat().resideInAPackage("org.iommu4j..")
                .should().haveRawType(ThreadLocal.class)
                .orShould().haveRawType(java.util.concurrent.atomic.AtomicLong.class)
                .orShould().haveRawType(java.util.concurrent.atomic.AtomicInteger.class)
                .orShould().haveRawType(java.util.concurrent.atomic.AtomicReference.class)
                .because("a static atomic or thread-local is state shared by every host")
                .allowEmptyShould(true)
                .check(production);
    }

    @Test
    void theApiPomHasNoRuntimeDependency() throws Exception {
        assertThat(compileScopeDependencies("api")).isEmpty();
    }

    @ParameterizedTest
    @MethodSource("backends")
    void aBackendPomDependsOnTheApiOnlyInCompileScope(String backend) throws Exception {
        assertThat(compileScopeDependencies("backend-" + backend)).containsExactly("iommu4j-api");
    }

    /** Artifact ids of a module's dependencies that reach its users (no scope, compile or runtime). */
    private static List<String> compileScopeDependencies(String module) throws Exception {
        File pom = Path.of("..", module, "pom.xml").toFile();
        assertThat(pom).exists();
        Element project = DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(pom).getDocumentElement();
        List<String> out = new ArrayList<>();
        NodeList deps = project.getElementsByTagName("dependency");
        for (int i = 0; i < deps.getLength(); i++) {
            Element dep = (Element) deps.item(i);
            if (!(dep.getParentNode() instanceof Element parent) || !parent.getTagName().equals("dependencies")
                    || !(parent.getParentNode() instanceof Element owner)
                    || !owner.getTagName().equals("project")) {
                continue;
            }
            String scope = text(dep, "scope");
            if (scope.isEmpty() || scope.equals("compile") || scope.equals("runtime")) {
                out.add(text(dep, "artifactId"));
            }
        }
        return out;
    }

    private static String text(Element element, String tag) {
        NodeList nodes = element.getElementsByTagName(tag);
        return nodes.getLength() == 0 ? "" : nodes.item(0).getTextContent().strip();
    }
}
