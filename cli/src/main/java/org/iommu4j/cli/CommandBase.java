package org.iommu4j.cli;

import java.io.PrintWriter;
import java.util.concurrent.Callable;
import org.iommu4j.loader.BackendLoader;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;

/** What every subcommand has: the global options (before or after its name), its output, a loader. */
abstract class CommandBase implements Callable<Integer> {
    @Mixin
    GlobalOptions own;

    @ParentCommand
    Iommuctl parent;

    @Spec
    CommandSpec spec;

    private GlobalOptions global;
    private BackendLoader loader;

    /** @return the global options given before and after the command's name */
    final GlobalOptions global() {
        if (global == null) {
            global = GlobalOptions.merge(parent == null ? null : parent.global, own);
        }
        return global;
    }

    /** @return whether --json was given */
    final boolean json() {
        return global().json;
    }

    /** @return the loader, made once; a bad --plugin-dir is bad input */
    final BackendLoader loader() {
        if (loader == null) {
            loader = global().loader();
        }
        return loader;
    }

    final PrintWriter out() {
        return spec.commandLine().getOut();
    }

    final PrintWriter err() {
        return spec.commandLine().getErr();
    }

    /** Prints warnings on standard error, one line each, in the command's name. */
    final void warn(Iterable<String> warnings) {
        for (String w : warnings) {
            err().println(spec.qualifiedName() + ": warning: " + w);
        }
        err().flush();
    }
}
