package org.iommu4j.cli;

import java.io.PrintWriter;
import org.iommu4j.api.IommuException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code iommuctl}: load an iommu backend by name on a simulated host and watch DMA go through it. Exit codes:
 * 0 when the operation succeeded, 1 when it failed, 2 for bad usage. Errors go to standard error on one line.
 */
@Command(name = "iommuctl", mixinStandardHelpOptions = true, version = "iommuctl 0.1.0 (iommu4j API 1.0)",
        description = "Load an IOMMU/VFIO backend on a simulated host and watch DMA go through it.",
        subcommands = {DemoCommand.class, BackendsCommand.class, ModinfoCommand.class, GroupsCommand.class,
                TaintCommand.class, DmesgCommand.class, RunCommand.class, BenchCommand.class,
                CommandLine.HelpCommand.class})
public final class Iommuctl implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** Whether the output goes to a terminal, so that long operations may show progress on standard error. */
    final boolean terminal;

    Iommuctl(boolean terminal) {
        this.terminal = terminal;
    }

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "a command is required: demo, backends,"
                + " modinfo, groups, taint, dmesg or run");
    }

    /**
     * @param text an error message, perhaps of several lines (a parser's, with its location below)
     * @return its first line: errors are printed on one line
     */
    static String oneLine(String text) {
        if (text == null) {
            return "";
        }
        int newline = text.indexOf('\n');
        return (newline < 0 ? text : text.substring(0, newline)).stripTrailing();
    }

    /**
     * @param out standard output
     * @param err standard error
     * @param terminal whether the output is a terminal (progress is shown on standard error only then)
     * @return a configured command line
     */
    static CommandLine commandLine(PrintWriter out, PrintWriter err, boolean terminal) {
        CommandLine cl = new CommandLine(new Iommuctl(terminal));
        cl.setOut(out);
        cl.setErr(err);
        cl.setParameterExceptionHandler((e, args) -> {
            CommandLine at = e.getCommandLine();
            at.getErr().println("iommuctl: " + oneLine(e.getMessage()) + " (see '"
                    + at.getCommandSpec().qualifiedName() + " --help')");
            return 2;
        });
        cl.setExecutionExceptionHandler((e, at, parsed) -> {
            String message = e instanceof IommuException ie ? ie.errno() + ": " + ie.getMessage() : e.getMessage();
            if (message == null) {
                message = e.getClass().getSimpleName();
            }
            if (e instanceof HostOptions.BadCommandLine) {
                // Bad usage, said like the parser's errors: what is wrong, and where the help is.
                at.getErr().println(at.getCommandSpec().qualifiedName() + ": " + oneLine(message) + " (see '"
                        + at.getCommandSpec().qualifiedName() + " --help')");
                return 2;
            }
            at.getErr().println(at.getCommandSpec().qualifiedName() + ": " + oneLine(message));
            return e instanceof Scenario.Malformed ? 2 : 1;
        });
        return cl;
    }

    /**
     * @param args the command line
     * @param out standard output
     * @param err standard error
     * @param terminal whether the output is a terminal
     * @return the exit code
     */
    static int execute(String[] args, PrintWriter out, PrintWriter err, boolean terminal) {
        int code = commandLine(out, err, terminal).execute(args);
        out.flush();
        err.flush();
        return code;
    }

    /**
     * @param args the command line
     * @param out standard output
     * @param err standard error
     * @return the exit code; progress is shown when the JVM has a console (not when piped)
     */
    static int execute(String[] args, PrintWriter out, PrintWriter err) {
        return execute(args, out, err, System.console() != null);
    }

    /**
     * @param args the command line
     */
    public static void main(String[] args) {
        System.exit(execute(args, new PrintWriter(System.out, true), new PrintWriter(System.err, true)));
    }
}
