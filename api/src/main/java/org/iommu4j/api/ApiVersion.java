package org.iommu4j.api;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A version of this API, {@code major.minor}. A backend built for major version {@code M} runs on any API
 * {@code M.x} at or above the minor version it asks for; a new major version may remove or change things.
 *
 * @param major incompatible changes bump it
 * @param minor compatible additions (new types, new default methods) bump it
 */
public record ApiVersion(int major, int minor) implements Comparable<ApiVersion> {

    /** The version of the API in this jar; also in the jar manifest as {@value #MANIFEST_ATTRIBUTE}. */
    public static final ApiVersion CURRENT = new ApiVersion(1, 1);

    /** The jar manifest attribute that carries an API version (in the api jar, and in backend jars). */
    public static final String MANIFEST_ATTRIBUTE = "Iommu4j-Api-Version";

    private static final Pattern FORM = Pattern.compile("(\\d{1,6})\\.(\\d{1,6})");

    /**
     * Checks the numbers.
     *
     * @param major see the record description
     * @param minor see the record description
     * @throws IllegalArgumentException if either number is negative
     */
    public ApiVersion {
        if (major < 0 || minor < 0) {
            throw new IllegalArgumentException(
                    "API version " + major + "." + minor + " is invalid: both numbers must be 0 or more");
        }
    }

    /**
     * Parses {@code "1.0"}.
     *
     * @param text the version, {@code MAJOR.MINOR}
     * @return the version
     * @throws IllegalArgumentException naming the text and the expected form
     */
    public static ApiVersion parse(String text) {
        Matcher m = text == null ? null : FORM.matcher(text.strip());
        if (m == null || !m.matches()) {
            throw new IllegalArgumentException(
                    "API version '" + text + "' is invalid: expected MAJOR.MINOR, for example '1.0'");
        }
        return new ApiVersion(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)));
    }

    @Override
    public int compareTo(ApiVersion o) {
        return major != o.major ? Integer.compare(major, o.major) : Integer.compare(minor, o.minor);
    }

    /** @return {@code MAJOR.MINOR} */
    @Override
    public String toString() {
        return major + "." + minor;
    }
}
