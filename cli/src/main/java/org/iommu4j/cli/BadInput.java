package org.iommu4j.cli;

/**
 * Bad input of any kind, exit code 2: an argument, a file, a scenario's content, a parameter, an address. The
 * message says what was given and what is accepted; {@link #path()} says where, when there is a where: a
 * scenario's JSON path ({@code steps[3].bytes}), an option ({@code --bind}) or a parameter ({@code xen.hide}).
 */
final class BadInput extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String path;
    private final String within;

    /**
     * @param path where the bad input is, or null
     * @param message what is wrong and what is accepted, without the path
     */
    BadInput(String path, String message) {
        this(null, path, message);
    }

    private BadInput(String within, String path, String message) {
        super(message);
        this.within = within;
        this.path = path;
    }

    /**
     * @param file the file the path is in
     * @return this error, said to be in that file (when it has a path)
     */
    BadInput in(Object file) {
        return path == null ? this : new BadInput(file.toString(), path, getMessage());
    }

    /** @return where the bad input is, or null */
    String path() {
        return path;
    }

    /** @return {@code [file: ]path: message}, or the message when there is no path */
    String describe() {
        return (within == null ? "" : within + ": ") + (path == null ? getMessage() : path + ": " + getMessage());
    }
}
