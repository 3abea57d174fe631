package org.iommu4j.kernel.module;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.iommu4j.api.ModuleAttribute;

/**
 * Makes every call from the kernel into an out-of-tree module run with that module's class loader as the
 * thread's context class loader, as plugin systems must (a plugin that uses {@code ServiceLoader} or a library
 * that looks up resources finds its own). The module's objects are wrapped once, when it hands them to the
 * kernel, so unregistering with the original object finds the wrapper; api objects they return (a domain, a
 * VFIO instance) are wrapped in turn. In-tree modules are not wrapped and pay nothing.
 */
final class ContextLoaderGuard {
    private final ClassLoader loader;
    private final Map<Object, Object> wrappers = new IdentityHashMap<>();

    /**
     * @param loader the module's class loader
     */
    ContextLoaderGuard(ClassLoader loader) {
        this.loader = loader;
    }

    /**
     * @param type the api interface the kernel will call the object through
     * @param target the module's object
     * @param <T> the interface
     * @return a wrapper that sets the context class loader around every call, the same one every time
     */
    @SuppressWarnings("unchecked")
    synchronized <T> T guard(Class<T> type, T target) {
        if (target == null || target.getClass().getClassLoader() != loader || Proxy.isProxyClass(target.getClass())) {
            return target;
        }
        return (T) wrappers.computeIfAbsent(target, t -> Proxy.newProxyInstance(type.getClassLoader(),
                new Class<?>[] {type}, new Handler(t)));
    }

    /**
     * Runs a call into the module with its context class loader.
     *
     * @param call the call
     */
    void run(Runnable call) {
        Thread t = Thread.currentThread();
        ClassLoader previous = t.getContextClassLoader();
        t.setContextClassLoader(loader);
        try {
            call.run();
        } finally {
            t.setContextClassLoader(previous);
        }
    }

    private final class Handler implements InvocationHandler {
        private final Object target;

        Handler(Object target) {
            this.target = target;
        }

        @Override
        public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
            if (method.getDeclaringClass() == Object.class) {
                return switch (method.getName()) {
                    case "equals" -> proxy == args[0];
                    case "hashCode" -> System.identityHashCode(proxy);
                    default -> target.toString();
                };
            }
            Thread t = Thread.currentThread();
            ClassLoader previous = t.getContextClassLoader();
            t.setContextClassLoader(loader);
            try {
                return wrapResult(method, method.invoke(target, args));
            } catch (InvocationTargetException e) {
                throw e.getCause();
            } finally {
                t.setContextClassLoader(previous);
            }
        }

        @SuppressWarnings({"unchecked", "rawtypes"})
        private Object wrapResult(Method method, Object result) {
            Class<?> type = method.getReturnType();
            if (result == null) {
                return null;
            }
            if (type.isInterface() && type.getPackageName().equals("org.iommu4j.api")) {
                return guard((Class) type, result);
            }
            if (result instanceof List<?> list && !list.isEmpty() && list.get(0) instanceof ModuleAttribute) {
                List<ModuleAttribute> out = new ArrayList<>();
                for (Object o : list) {
                    ModuleAttribute a = (ModuleAttribute) o;
                    out.add(new ModuleAttribute(a.name(), () -> {
                        String[] text = new String[1];
                        run(() -> text[0] = a.read());
                        return text[0];
                    }, a.writable() ? text -> run(() -> a.write(text)) : null));
                }
                return List.copyOf(out);
            }
            return result;
        }
    }
}
