package org.iommu4j.kernel.taint;

import org.iommu4j.api.TaintFlag;

/**
 * Who set a taint flag, why, and when.
 *
 * @param flag the flag
 * @param who the module that set it, or {@code kernel}
 * @param event what happened
 * @param timestampNanos nanoseconds since boot
 */
public record TaintRecord(TaintFlag flag, String who, String event, long timestampNanos) {
}
