package org.iommu4j.kernel.bus;

import org.iommu4j.api.BusType;
import org.iommu4j.api.Device;
import org.iommu4j.api.DeviceDriver;

/**
 * A host driver that takes any device on its bus and does nothing with it: what a device's ordinary kernel
 * driver ({@code e1000}, {@code nvme}) is to iommu4j. It matters only because a group with a device bound to
 * a host driver is not viable for VFIO.
 *
 * @param name the driver's name
 * @param bus its bus
 */
public record StockDriver(String name, BusType bus) implements DeviceDriver {
    @Override
    public void probe(Device device) {
    }
}
