package org.iommu4j.api;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The API versions a backend accepts, written as a half-open interval {@code [1.0,2.0)}: from {@code min}
 * inclusive to {@code maxExclusive} exclusive.
 *
 * @param min the lowest version the backend runs on
 * @param maxExclusive the first version it does not run on
 */
public record ApiVersionRange(ApiVersion min, ApiVersion maxExclusive) {

    private static final Pattern FORM = Pattern.compile("\\[\\s*([0-9.]+)\\s*,\\s*([0-9.]+)\\s*\\)");

    /**
     * Checks the bounds.
     *
     * @param min see the record description
     * @param maxExclusive see the record description
     * @throws IllegalArgumentException if a bound is missing or the range is empty
     */
    public ApiVersionRange {
        if (min == null || maxExclusive == null || min.compareTo(maxExclusive) >= 0) {
            throw new IllegalArgumentException("API version range [" + min + "," + maxExclusive
                    + ") is empty: the lower bound must be below the upper bound");
        }
    }

    /**
     * The usual range of a backend built against {@code built}: that version up to, not including, the next
     * major version.
     *
     * @param built the API version the backend was compiled against
     * @return {@code [built, (built.major+1).0)}
     */
    public static ApiVersionRange compatibleWith(ApiVersion built) {
        return new ApiVersionRange(built, new ApiVersion(built.major() + 1, 0));
    }

    /**
     * Parses {@code "[1.0,2.0)"}.
     *
     * @param text the range
     * @return the range
     * @throws IllegalArgumentException naming the text and the expected form
     */
    public static ApiVersionRange parse(String text) {
        Matcher m = text == null ? null : FORM.matcher(text.strip());
        if (m == null || !m.matches()) {
            throw new IllegalArgumentException(
                    "API version range '" + text + "' is invalid: expected [MIN,MAX), for example '[1.0,2.0)'");
        }
        return new ApiVersionRange(ApiVersion.parse(m.group(1)), ApiVersion.parse(m.group(2)));
    }

    /**
     * @param version a version
     * @return whether {@code version} lies in this range
     */
    public boolean contains(ApiVersion version) {
        return version.compareTo(min) >= 0 && version.compareTo(maxExclusive) < 0;
    }

    /** @return {@code [MIN,MAX)} */
    @Override
    public String toString() {
        return "[" + min + "," + maxExclusive + ")";
    }
}
