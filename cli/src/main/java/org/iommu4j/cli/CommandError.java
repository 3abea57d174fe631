package org.iommu4j.cli;

import java.util.LinkedHashMap;
import java.util.Map;
import org.iommu4j.api.Errno;
import org.iommu4j.api.IommuException;

/**
 * How any error leaves a command: its exit code (2 bad input, 1 a failed operation), the one line for standard
 * error, and the {@code --json} object, {@code {"error": {"errno": ..., "message": ..., "path": ...}}} plus what
 * the command could still show (the steps that ran, the host as the failing step left it).
 */
final class CommandError extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Exit code of bad input. */
    static final int BAD_INPUT = 2;
    /** Exit code of a failed operation. */
    static final int FAILED = 1;

    private final int exitCode;
    private final transient Errno errno;
    private final String path;
    private final transient Map<String, Object> data = new LinkedHashMap<>();

    private CommandError(int exitCode, Errno errno, String path, String message, Throwable cause) {
        super(message, cause);
        this.exitCode = exitCode;
        this.errno = errno;
        this.path = path;
    }

    /**
     * @param e what a command threw
     * @return it classified
     */
    static CommandError of(Throwable e) {
        if (e instanceof CommandError c) {
            return c;
        }
        if (e instanceof BadInput b) {
            return new CommandError(BAD_INPUT, null, b.path(), b.describe(), e);
        }
        if (e instanceof Scenario.StepFailed f) {
            return new CommandError(FAILED, f.errno(), f.path(), f.getMessage(), e);
        }
        if (e instanceof IommuException ie) {
            return new CommandError(FAILED, ie.errno(), null, ie.errno() + ": " + ie.getMessage(), e);
        }
        return new CommandError(FAILED, null, null, e.getMessage() == null ? e.getClass().getSimpleName()
                : e.getMessage(), e);
    }

    /**
     * @param key a top-level key of the --json object next to "error"
     * @param value what it holds
     * @return this
     */
    CommandError with(String key, Object value) {
        data.put(key, value);
        return this;
    }

    int exitCode() {
        return exitCode;
    }

    /** @return the --json object */
    Map<String, Object> json() {
        Map<String, Object> error = new LinkedHashMap<>();
        error.put("errno", errno == null ? null : errno.name());
        error.put("message", Iommuctl.oneLine(getMessage()));
        error.put("path", path);
        Map<String, Object> all = new LinkedHashMap<>();
        all.put("error", error);
        all.putAll(data);
        return all;
    }
}
