package org.iommu4j.api;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;
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

    private static final Pattern FORM = Pattern.compile("(\\d{1,6})\\.(\\d{1,6})");

    /**
     * The version of the API in this jar; also in the jar manifest as {@value #MANIFEST_ATTRIBUTE}. The build
     * writes it from one property of the parent pom ({@code iommu4j.api.version}) into a resource of this jar.
     */
    public static final ApiVersion CURRENT = readCurrent();

    /** The jar manifest attribute that carries an API version (in the api jar, and in backend jars). */
    public static final String MANIFEST_ATTRIBUTE = "Iommu4j-Api-Version";

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

    private static ApiVersion readCurrent() {
        try (InputStream in = ApiVersion.class.getResourceAsStream("api-version.properties")) {
            if (in == null) {
                throw new IllegalStateException("org/iommu4j/api/api-version.properties is missing from the api jar");
            }
            Properties properties = new Properties();
            properties.load(in);
            return parse(properties.getProperty("version"));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read org/iommu4j/api/api-version.properties", e);
        }
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
