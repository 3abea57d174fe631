package org.iommu4j.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/** {@code iommuctl help [COMMAND]}: a command's help, with the same error as {@code iommuctl COMMAND} for a name that is none. */
@Command(name = "help", description = "Show the help of iommuctl or of one command.")
final class HelpCommand implements Callable<Integer> {
    @Parameters(paramLabel = "COMMAND", arity = "0..1", description = "the command")
    String command;

    @ParentCommand
    Iommuctl parent;

    @Override
    public Integer call() {
        CommandLine top = parent.spec.commandLine();
        if (command == null) {
            top.usage(top.getOut());
            return 0;
        }
        CommandLine sub = top.getSubcommands().get(command);
        if (sub == null) {
            throw new BadInput(null, Iommuctl.unknownCommand(command));
        }
        sub.usage(top.getOut());
        return 0;
    }
}
