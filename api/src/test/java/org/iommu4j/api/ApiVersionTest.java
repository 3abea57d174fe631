package org.iommu4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;

class ApiVersionTest {
    @Test
    void theConstantAgreesWithTheVersionTheBuildWritesIntoTheManifest() {
        // the pom passes its iommu4j.api.version property, which the jar plugin writes as Iommu4j-Api-Version
        assertThat(System.getProperty("iommu4j.api.version")).isEqualTo(ApiVersion.CURRENT.toString());
    }

    @Test
    void rangesAreHalfOpen() {
        ApiVersionRange range = ApiVersionRange.parse("[1.0,2.0)");
        assertThat(range.contains(ApiVersion.parse("1.0"))).isTrue();
        assertThat(range.contains(ApiVersion.parse("1.9"))).isTrue();
        assertThat(range.contains(ApiVersion.parse("2.0"))).isFalse();
        assertThat(range.contains(ApiVersion.parse("0.9"))).isFalse();
        assertThat(ApiVersionRange.compatibleWith(ApiVersion.CURRENT)).hasToString("[1.2,2.0)");
        // a backend built against 1.0 still runs on this API; one built against 1.2 would not run on 1.0
        assertThat(ApiVersionRange.compatibleWith(ApiVersion.parse("1.0")).contains(ApiVersion.CURRENT)).isTrue();
        assertThat(ApiVersionRange.compatibleWith(ApiVersion.CURRENT).contains(ApiVersion.parse("1.0"))).isFalse();
    }

    @Test
    void badVersionsNameTheTextAndTheForm() {
        assertThatThrownBy(() -> ApiVersion.parse("1"))
                .hasMessage("API version '1' is invalid: expected MAJOR.MINOR, for example '1.0'");
        assertThatThrownBy(() -> ApiVersionRange.parse("[2.0,1.0)"))
                .hasMessage("API version range [2.0,1.0) is empty: the lower bound must be below the upper bound");
        assertThatThrownBy(() -> ApiVersionRange.parse("1.0-2.0"))
                .hasMessage("API version range '1.0-2.0' is invalid: expected [MIN,MAX), for example '[1.0,2.0)'");
    }
}
