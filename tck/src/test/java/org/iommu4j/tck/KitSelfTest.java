package org.iommu4j.tck;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectNestedClass;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.testkit.engine.EngineTestKit;
import org.junit.platform.testkit.engine.Event;
import org.junit.platform.testkit.engine.Events;

/**
 * The kit proves itself: run on a correct backend it passes (skipping only what is not claimed), and run on the
 * same backend with one defect it fails the rule that defect breaks, with a message naming the rule.
 */
class KitSelfTest {
    private static final Map<String, Class<?>> GROUPS = Map.of(
            "metadata", BackendCompatibilityKit.Metadata.class,
            "lifecycle", BackendCompatibilityKit.Lifecycle.class,
            "iommu", BackendCompatibilityKit.IommuContracts.class,
            "dma", BackendCompatibilityKit.DmaApi.class,
            "vfio", BackendCompatibilityKit.VfioChecks.class,
            "claims", BackendCompatibilityKit.ClaimsHold.class,
            "faults", BackendCompatibilityKit.FaultInjection.class,
            "model", BackendCompatibilityKit.Model.class);

    private static Events run(ReferenceBackend.Defect defect, Class<?> group) {
        var request = EngineTestKit.engine("junit-jupiter")
                .configurationParameter(DefectKit.DEFECT, defect == null ? "" : defect.name());
        request = group == null ? request.selectors(selectClass(DefectKit.class))
                : request.selectors(selectNestedClass(List.of(DefectKit.class), group));
        return request.execute().testEvents();
    }

    private static String message(Event e) {
        return e.getPayload(TestExecutionResult.class).flatMap(TestExecutionResult::getThrowable)
                .map(Throwable::getMessage).orElse("");
    }

    @Test
    @DisplayName("the correct backend passes the whole kit, and is skipped for nothing it claims")
    void theCorrectBackendPasses() {
        Events events = run(null, null);
        assertThat(events.failed().stream().map(e -> e.getTestDescriptor().getDisplayName() + ": " + message(e)))
                .isEmpty();
        assertThat(events.aborted().stream().map(e -> e.getTestDescriptor().getDisplayName() + ": " + message(e)))
                .containsExactly("claims.no-isolation: opt-in, CAP_SYS_RAWIO and taint U: Assumption failed: not"
                        + " claimed: no isolation (isolation is claimed; see claims.isolation)");
        assertThat(events.succeeded().count()).isGreaterThan(35);
    }

    @ParameterizedTest(name = "{0} is caught by its rule")
    @EnumSource(ReferenceBackend.Defect.class)
    void eachDefectIsCaughtByItsRule(ReferenceBackend.Defect defect) {
        String group = defect.rule.id().replaceFirst("\\..*", "");
        Events events = run(defect, GROUPS.get(group));
        List<String> failures = events.failed().stream().map(KitSelfTest::message).toList();
        assertThat(failures).as("failures of the kit on " + defect)
                .anySatisfy(m -> assertThat(m).startsWith(defect.rule.tag() + ": "));
        System.clearProperty("iommu4j.tck.busy");
    }

    @Test
    @DisplayName("the lying backend (isolated groups, domains that do not translate) is caught overwriting memory")
    void theLyingIsolationBackendIsCaught() {
        Events events = run(ReferenceBackend.Defect.IDENTITY_TRANSLATE, BackendCompatibilityKit.ClaimsHold.class);
        assertThat(events.failed().stream().map(KitSelfTest::message)).singleElement().asString()
                .startsWith("[claims.isolation] a backend that claims isolation isolates: a DMA by 0000:06:0d.0 at 0x")
                .endsWith(" (another process's page, never mapped for it) did not fault and overwrote that process's"
                        + " memory");
    }

    @Test
    @DisplayName("what a backend does not claim is skipped with the reason, never failed")
    void unclaimedChecksAreSkippedWithTheirReason() {
        Events events = EngineTestKit.engine("junit-jupiter")
                .selectors(selectClass(NothingClaimedKit.class)).execute().testEvents();
        assertThat(events.failed().stream().map(e -> e.getTestDescriptor().getDisplayName() + ": " + message(e)))
                .isEmpty();
        assertThat(events.aborted().stream().map(KitSelfTest::message).distinct())
                .contains("Assumption failed: not claimed: translation", "Assumption failed: not claimed: a VFIO type",
                        "Assumption failed: not claimed: bounce buffering", "Assumption failed: not claimed: hot-plug",
                        "Assumption failed: not claimed: isolation", "Assumption failed: no built jar or class"
                        + " directory found; set -Diommu4j.tck.jar=path/to/your-backend.jar");
        assertThat(events.aborted().count()).isGreaterThan(20);
    }

    /** A backend that registers nothing and claims nothing. */
    static class NothingClaimedKit extends BackendCompatibilityKit {
        @Override
        protected org.iommu4j.api.BackendProvider createProvider() {
            return new org.iommu4j.api.BackendProvider() {
                @Override
                public org.iommu4j.api.ModuleInfo info() {
                    return org.iommu4j.api.ModuleInfo.builder("nothing").version("1.0").license("GPL").build();
                }

                @Override
                public org.iommu4j.api.Backend start(org.iommu4j.api.KernelServices kernel) {
                    return new org.iommu4j.api.Backend() { };
                }
            };
        }

        @Override
        protected BackendClaims claims() {
            return BackendClaims.builder().build();
        }

        @Override
        protected java.util.Optional<java.nio.file.Path> builtJar() {
            return java.util.Optional.empty();
        }
    }
}
