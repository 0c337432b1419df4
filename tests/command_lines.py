"""The `tinyformer` command lines that users read (the examples of every --help, the commands
of README.md), parsed as the program parses them, without running them."""

import shlex

import click

from tinyformer_cli import main


def commands(command=main, path=()):
    """Every command and group, with the words that call it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def parse(line):
    """Parse `line` as `tinyformer` would, up to running the command: click's error (an
    option the command does not take, a value of the wrong type, a missing or extra argument)
    is raised. The options' callbacks, which look for files and workspaces, are not run."""
    words = shlex.split(line)[1:]
    command, ctx = main, None
    while True:
        ctx = click.Context(command, info_name=command.name, parent=ctx)
        options, rest, _ = command.make_parser(ctx).parse_args(args=words)
        for param in command.params:
            found = options.get(param.name)     # a word, several (a tuple), or a flag's bool
            if isinstance(found, (str, tuple, bool)) and found != ():
                param.type_cast_value(ctx, found)
            elif param.required:
                raise click.MissingParameter(ctx=ctx, param=param)
        if not isinstance(command, click.Group) or not rest:     # a group alone: its help
            if rest:
                raise click.UsageError(f"unexpected extra arguments {rest}", ctx)
            return command
        command, words = command.get_command(ctx, rest[0]), rest[1:]
        if command is None:
            raise click.UsageError(f"no command {rest[0]!r}", ctx)
