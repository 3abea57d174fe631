package org.iommu4j.cli;

import java.io.PrintWriter;
import java.util.Arrays;
import org.iommu4j.api.ApiVersion;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/**
 * {@code iommuctl}: load an iommu backend by name on a simulated host and watch DMA go through it. Exit codes:
 * 0 when the operation succeeded, 1 when it failed, 2 for bad input of any kind (arguments, files, scenario
 * content, parameters, addresses). Errors go to standard error on one line; with {@code --json} also to
 * standard output as {@code {"error": {"errno": ..., "message": ..., "path": ...}}}.
 */
@Command(name = "iommuctl", mixinStandardHelpOptions = true, versionProvider = Iommuctl.Version.class,
        description = "Load an IOMMU/VFIO backend on a simulated host and watch DMA go through it.",
        subcommands = {DemoCommand.class, BackendsCommand.class, ModinfoCommand.class, GroupsCommand.class,
                TaintCommand.class, DmesgCommand.class, RunCommand.class, SchemaCommand.class, CheckCommand.class,
                BenchCommand.class, HelpCommand.class})
public final class Iommuctl implements Runnable {
    /** The commands, for messages. */
    static final String COMMANDS = "demo, backends, modinfo, groups, taint, dmesg, run, schema, check or help";

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    /** The global options given before the command's name. */
    @Mixin
    GlobalOptions global;

    /** Whether the output goes to a terminal, so that long operations may show progress on standard error. */
    final boolean terminal;

    Iommuctl(boolean terminal) {
        this.terminal = terminal;
    }

    /** {@code -V}: the tool's version and the API version it was built against, {@link ApiVersion#CURRENT}. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"iommuctl 0.1.0 (iommu4j API " + ApiVersion.CURRENT + ")"};
        }
    }

    @Override
    public void run() {
        throw new BadInput(null, "a command is required: " + COMMANDS + " (see 'iommuctl --help')");
    }

    static String unknownCommand(String name) {
        return "unknown command '" + name + "': expected " + COMMANDS + " (see 'iommuctl --help')";
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

    private static boolean jsonRequested(CommandLine.ParseResult parsed) {
        for (CommandLine.ParseResult r = parsed; r != null; r = r.subcommand()) {
            if (r.hasMatchedOption("--json")) {
                return true;
            }
        }
        return false;
    }

    /**
     * @param out standard output
     * @param err standard error
     * @param terminal whether the output is a terminal (progress is shown on standard error only then)
     * @param args the command line, to see --json when parsing failed
     * @return a configured command line
     */
    static CommandLine commandLine(PrintWriter out, PrintWriter err, boolean terminal, String... args) {
        CommandLine cl = new CommandLine(new Iommuctl(terminal));
        cl.setOut(out);
        cl.setErr(err);
        cl.setParameterExceptionHandler((e, given) -> {
            CommandLine at = e.getCommandLine();
            String message;
            if (e instanceof CommandLine.UnmatchedArgumentException u && at.getCommandSpec().parent() == null
                    && !u.getUnmatched().isEmpty() && !u.getUnmatched().get(0).startsWith("-")) {
                message = unknownCommand(u.getUnmatched().get(0));
            } else {
                message = oneLine(e.getMessage()) + " (see '" + at.getCommandSpec().qualifiedName() + " --help')";
            }
            return report(at, CommandError.of(new BadInput(null, message)), Arrays.asList(given).contains("--json"));
        });
        cl.setExecutionExceptionHandler((e, at, parsed) -> report(at, CommandError.of(e), jsonRequested(parsed)));
        return cl;
    }

    private static int report(CommandLine at, CommandError error, boolean json) {
        at.getOut().flush();
        if (json) {
            at.getOut().println(Json.write(error.json()));
            at.getOut().flush();
        }
        // help's errors are said as the command line's own: "iommuctl help bogus" as "iommuctl bogus"
        String who = at.getCommand() instanceof HelpCommand ? "iommuctl" : at.getCommandSpec().qualifiedName();
        at.getErr().println(who + ": " + oneLine(error.getMessage()));
        at.getErr().flush();
        return error.exitCode();
    }

    /**
     * @param args the command line
     * @param out standard output
     * @param err standard error
     * @param terminal whether the output is a terminal
     * @return the exit code
     */
    static int execute(String[] args, PrintWriter out, PrintWriter err, boolean terminal) {
        int code = commandLine(out, err, terminal, args).execute(args);
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
