package org.iommu4j.testsupport;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;

/**
 * Where HotSpot put a class's instance fields, read from {@code sun.misc.Unsafe} (by reflection, so nothing is
 * compiled against it): for the tests of the padding around fields that one CPU writes on every call.
 */
public final class FieldLayout {
    private FieldLayout() {
    }

    /**
     * The field, in {@code type} or a superclass, lies at least {@code bytes} after the object's start and at least
     * {@code bytes} before the end of the last field: whatever object a collection moves next to it is that far
     * away on each side, so it shares no cache line with it (nor, at 128 bytes, the adjacent-line prefetcher's
     * pair of lines).
     *
     * @param type the class whose instances are checked
     * @param field the hot field's name
     * @param bytes the padding required on each side
     */
    public static void requirePadded(Class<?> type, String field, int bytes) {
        long at = -1;
        int width = 0;
        long end = 0;
        for (Class<?> c = type; c != null; c = c.getSuperclass()) {
            for (Field f : c.getDeclaredFields()) {
                if (Modifier.isStatic(f.getModifiers())) {
                    continue;
                }
                long o = offset(f);
                int w = width(f.getType());
                end = Math.max(end, o + w);
                if (f.getName().equals(field) && at < 0) {
                    at = o;
                    width = w;
                }
            }
        }
        assertThat(at).as("offset of %s.%s", type.getName(), field).isGreaterThanOrEqualTo(bytes);
        assertThat(end - (at + width)).as("bytes after %s.%s", type.getName(), field)
                .isGreaterThanOrEqualTo(bytes);
    }

    private static int width(Class<?> t) {
        if (t == long.class || t == double.class) {
            return 8;
        }
        if (t == int.class || t == float.class) {
            return 4;
        }
        if (t == short.class || t == char.class) {
            return 2;
        }
        if (t == byte.class || t == boolean.class) {
            return 1;
        }
        return 4; // a compressed reference; 8 without compressed oops, which only widens the padding
    }

    private static long offset(Field f) {
        try {
            Class<?> unsafeClass = Class.forName("sun.misc.Unsafe");
            Field the = unsafeClass.getDeclaredField("theUnsafe");
            the.setAccessible(true);
            Method objectFieldOffset = unsafeClass.getMethod("objectFieldOffset", Field.class);
            return (long) objectFieldOffset.invoke(the.get(null), f);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError("cannot read the offset of " + f, e);
        }
    }
}
