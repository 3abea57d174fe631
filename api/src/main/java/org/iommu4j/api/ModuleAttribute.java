package org.iommu4j.api;

import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * A named attribute a backend shows, like a sysfs or debugfs file: read gives text, write (when allowed)
 * takes text.
 *
 * @param name the file name, for example {@code io_tlb_used} or {@code new_slot}
 * @param reader produces the current text
 * @param writer takes written text and acts on it, throwing {@link IommuException} to refuse; null when the
 *     attribute is read-only
 */
public record ModuleAttribute(String name, Supplier<String> reader, Consumer<String> writer) {

    /**
     * @param name the file name
     * @param reader produces the current text
     * @return a read-only attribute
     */
    public static ModuleAttribute readOnly(String name, Supplier<String> reader) {
        return new ModuleAttribute(name, reader, null);
    }

    /** @return whether {@link #write} is allowed */
    public boolean writable() {
        return writer != null;
    }

    /** @return the current text */
    public String read() {
        return reader == null ? "" : reader.get();
    }

    /**
     * @param text the text to write
     * @throws IommuException {@link Errno#EPERM} for a read-only attribute, or the writer's own refusal
     */
    public void write(String text) {
        if (writer == null) {
            throw new IommuException(Errno.EPERM, "attribute " + name + " is read-only");
        }
        writer.accept(text);
    }
}
