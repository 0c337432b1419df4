"""The `tinyformer` command line (also `python cli.py ...`): options, help, and the mapping of
errors to exit statuses; the packages do the work. Exit status is 0 on success, 2 on a usage or
input error (one line on stderr, no traceback), 1 on an internal error (a bug: the message asks
for a report, and `tinyformer --debug ...` shows the traceback), 130 when stopped by Ctrl-C,
143 when a training run is stopped by SIGTERM and 129 by SIGHUP (its terminal closed), 3 when an
exercise's check does not pass yet."""

from tinyformer_cli import loading      # first: Ctrl-C while the rest loads (see there)
from tinyformer_cli.matplotlib_folder import give_matplotlib_a_folder

import array
import codecs
import contextlib
import dataclasses
import importlib.util
import io
import os
import re
import shlex
import sys

import click

import tinyautograd
from tinyformer.summary import ops_with_loops, summary_line
from tinyformer.checkpoint import (PRETRAINED_TOKENIZER, check_export_dir, check_exportable,
                                   export_pretrained, load_model, load_tokenizer_at)
from tinyformer.data import builtin_bpe
from tinyformer.decoding import NoTokenToPick
from tinyformer.jobs import NothingToHide
from tinyformer.exercises import find, runner
from tinyformer.exercises.workspace import WorkspaceError, find_workspace
from tinyformer import files, parallel, resources, stops
from tinyformer.pretrained import PretrainedError
from tinyformer.progress import takes_escapes
from tinyformer.prompts import check_respond, check_task_prompt, respond
from tinyformer.rundir import (METRICS, PLOT, CheckpointError, check_not_a_run_file,
                               new_run_advice)
from tinyformer.sampling import KEEP_ALL, LIKELIEST
from tinyformer.schema import SEED, BadInput, Text as Nonempty, check_settings, option_name
from tinyformer.tokenizers import (EncodeError, check_training, compression_of,
                                   encode_text_or_file, ids_in_file, one_line,
                                   split_shown_parts, train_tokenizer)
from tinyformer.train import Trainer, TrainConfig
from tinyformer.train_config import setting_renamed, shown_default

EPILOG = """\b
Examples:
  tinyformer train                          a small GPT on the built-in corpus (under a minute)
  tinyformer generate --checkpoint runs/gpt-builtin --prompt "eve has a red kite."
  tinyformer tokenize show "Hello, world"   how a text splits into tokens
  tinyformer COMMAND --help                 each command's options and examples

\b
Environment:
  TINYAUTOGRAD_KERNELS=numpy|c   numpy: the engine's numpy forms only; c: its compiled loops,
                                 else an error saying why; unset: the loops where they build
  TINYFORMER_THREADS=N           --threads of train and generate
  TINYFORMER_EXERCISES=DIR       --workspace of the exercises
  NO_COLOR                       set to anything: no colours (as does TERM=dumb)

\b
Exit status: 0 done; 2 bad input (one line says what is wrong); 1 a bug of ours (the line asks
you to report it); 130 stopped by Ctrl-C; 143 and 129 when SIGTERM and SIGHUP (the terminal
closed) stop `train`, after its checkpoint; 141 when the reader of the output stops early
(`| head -c 100`); 3 from `exercises check` and `exercises draw` while your code does not
pass yet.
"""


INTERRUPTED = loading.INTERRUPTED   # the exit status of a program stopped by Ctrl-C (128 + SIGINT)
# The exit status of a training run stopped by each signal, by what `Trainer.train` returns
# after a first one (tinyformer.stops.STOPS; a second raises its row's exception: outcome_of):
# the shell's for a program the signal ended, 128 + its number (143 for SIGTERM, 129 SIGHUP).
STOPPED = {stop.outcome: 128 + signum for signum, stop in stops.STOPS.items()}
PIPE_CLOSED = 141          # of one whose reader went away, as `cat` gets in `cat FILE | head`
NOT_YET = 3                # an exercise's check that your code does not pass yet: not our bug (1)


class InputError(click.ClickException):
    """Bad input from the user: printed as one line `Error: ...`, exit status 2."""
    exit_code = 2


@contextlib.contextmanager
def input_errors(*kinds):
    """The library's complaints about the input (ValueError by default) as one line, exit 2;
    only around code whose errors are the input's fault (anything else is our bug: exit 1).
    Around a whole piece of work (a training run's start, loading a checkpoint, encoding a
    text, drawing a run's curves), whose ValueError may be a bug in it, only BadInput: what
    the library's checks of the input raise.
    An OSError (a full disk, a permission) is said as every other is: its file, what went
    wrong, and what to do."""
    kinds = kinds or (ValueError,)
    try:
        yield
    except kinds as e:
        if isinstance(e, BrokenPipeError):          # not the input's fault: Program's to answer
            raise
        message = files.describe_os_error(e) if isinstance(e, OSError) else str(e)
        raise InputError(message.splitlines()[0] if message else type(e).__name__) from None


def warn(line):
    """A note on the standard error, where the standard output holds a command's result (a
    file's name, a tokenizer's ids)."""
    click.echo(line, err=True)


class Text(click.ParamType):
    """A text the user types (a prompt, a text to encode, a special token), as UTF-8 whatever
    the locale. Under an ASCII one (LC_ALL=C, with Python's UTF-8 mode off) Python leaves a
    command line's bytes above 127 undecoded, as lone surrogates: the bytes are recovered and
    read as UTF-8 where they are (`--prompt héllo`); only those that are not stay as they came,
    for the command to refuse as not UTF-8. A path is no text: its bytes stay the locale's,
    as the file system takes them."""
    name = "text"

    def convert(self, value, param, ctx):
        try:
            return os.fsencode(value).decode("utf-8")
        except UnicodeError:       # not UTF-8; or characters already, not undecoded bytes
            return value


TEXT = Text()


class Path(click.ParamType):
    """A path the user gives (a file to read or write, a directory), as it came (see Text),
    but not empty or blank, which names no file: refused as the library refuses an empty --out
    ("--config must be a file's path, got ''"), where a check of whether a path was given would
    take it for none (`--config "$UNSET"` trained the defaults). Nor a ~ that the shell left as
    it was (`--out=~/runs/x`, or quoted), which would be a folder named ~ here, unless that is
    what exists."""
    name = "path"

    def __init__(self, what):
        self.what = what                # "a file's path", in the message

    def convert(self, value, param, ctx):
        called = (param.opts[0] if isinstance(param, click.Option)
                  else param.make_metavar(ctx).strip("[]."))     # RUN_DIR..., INPUT, [DIR]
        if isinstance(value, os.PathLike):      # main([... pathlib.Path]) from Python
            value = os.fspath(value)
        # One from an environment variable (TINYFORMER_EXERCISES) is named as the variable:
        # the user typed no option, and no = of theirs kept a ~ from the shell.
        from_variable = from_environment(ctx, param)
        if from_variable:
            called = param.envvar
        problem = Nonempty(self.what).why(value)
        if problem:
            raise InputError(f"{called} {problem}")
        unexpanded = files.unexpanded_home(value, called if isinstance(param, click.Option)
                                           and not from_variable else "")
        if unexpanded:
            raise InputError(f"{called}{'=' if from_variable else ' '}{value!r}: {unexpanded}")
        return value


FILE, DIRECTORY, FILE_OR_DIRECTORY = (Path("a file's path"), Path("a directory's path"),
                                      Path("a file's or a directory's path"))


class SaysBelow:
    """A click number range whose refusal of a number below it says what to give instead, as
    the library's own check says it: transformers' generate reads top_k=0 as every token and
    top_p=0 as the likeliest alone, and a user of it who types that here is told how to ask
    for it; --threads 0 is told to give a count or none (threads_below). The range stays in
    the message, as the help shows it. `words_too`: a word in place of the number (--threads
    auto, as other tools take it) is told the same."""

    def __init__(self, *args, below, words_too=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.below, self.words_too = below, words_too

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as error:
            try:
                number = (click.INT if isinstance(self, click.IntRange)
                          else click.FLOAT).convert(value, param, ctx)
            except click.BadParameter as not_a_number:
                if self.words_too:
                    not_a_number.message = f"{not_a_number.message.rstrip('.')} ({self.below})."
                raise
            if number < self.min or (self.min_open and number == self.min):
                error.message = f"{error.message.rstrip('.')} ({self.below})."
            raise


class IntRangeSaysBelow(SaysBelow, click.IntRange):
    """click.IntRange, with what to give instead of a number below it (SaysBelow)."""


class FloatRangeSaysBelow(SaysBelow, click.FloatRange):
    """click.FloatRange, with what to give instead of a number below it (SaysBelow)."""


# What to make smaller when a command runs out of memory, in its own options.
SMALLER = {"train": "smaller sizes (--batch-size, --context, --d-model, --n-layer)",
           "generate": "a smaller --beam or --max-new-tokens, or a shorter --prompt",
           "attention": "a shorter --prompt", "lens": "a shorter --prompt",
           "graph": "a smaller --max-nodes or a shorter --prompt"}


class Program(click.Group):
    """The command group, each error one line: what was wrong and where to look."""

    def invoke(self, ctx):
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()        # what is still buffered, while a closed pipe can be told
            return result
        except BrokenPipeError:
            # The reader (`| head`) has read all it wanted: stop quietly, as a Unix tool that
            # SIGPIPE stops, not as a bug (click's own answer is exit status 1). What Python
            # would flush at exit goes nowhere instead of failing again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(PIPE_CLOSED)

    def main(self, args=None, prog_name=None, **extra):
        """Run the program, named `prog_name` (its own name, "tinyformer", unless started
        otherwise: cli.py's "python cli.py"), as its usage lines and the commands its
        messages advise name it."""
        extra.pop("standalone_mode", None)
        prog_name = prog_name or self.name
        with files.program_named(prog_name):
            return self._main(args, prog_name, extra)

    def _main(self, args, prog_name, extra):
        standard_streams_opened()
        # What click colours (the exercises' marks and headings) follows the same rule as
        # our own colours: none with NO_COLOR, or on a dumb terminal (else click's own test).
        extra.setdefault("color", None if colour_wanted() else False)
        sys.stdout = NamedOutput(sys.stdout)
        try:
            try:
                return super().main(args, prog_name, standalone_mode=False, **extra)
            except click.exceptions.NoArgsIsHelpError as e:    # a group without its command:
                click.echo(e.ctx.get_help(), color=e.ctx.color)  # its help, as --help does;
                sys.exit(0)                    # (that it cannot be written is said below)
        except click.UsageError as e:
            where = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
            words = sys.argv[1:] if args is None else list(args)     # as click read them
            message = (elsewhere(e) or renamed(e) or negative_number(e, words)
                       or dashed_text(e, words)
                       if isinstance(e, click.NoSuchOption) else
                       with_example(e) if isinstance(e, click.MissingParameter) else None)
            click.echo(f"Error: {message or e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.Abort as e:            # Ctrl-C (click's name for it): the shell's code
            outcome = stops.outcome_of(e.__cause__)     # or SIGTERM or SIGHUP, in train
            click.echo(f"stopped by {stops.said(outcome)}", err=True)
            sys.exit(STOPPED[outcome])
        # Out of memory or disk, a file that cannot be read or written: the machine's answer
        except MemoryError:                         # to the input, not a bug: exit status 2
            command = getattr(self, "subcommand", None)
            click.echo(f"Error: out of memory; try {SMALLER.get(command, 'smaller inputs')} "
                       f"or close other programs", err=True)
            sys.exit(2)
        except OSError as e:
            click.echo(f"Error: {files.describe_os_error(e)}", err=True)
            sys.exit(2)
        except Exception:
            # Anything else is a bug of ours: exit 1, and a request to report it.
            if getattr(self, "debug", False):
                raise
            error = sys.exc_info()[1]
            first = str(error).splitlines()[0] if str(error) else ""
            click.echo(f"Error: internal error ({type(error).__name__}: {first}); this is a "
                       f"bug in tinyformer: please report it with the output of the same "
                       f"command run as `{files.command_line('--debug', '...')}`", err=True)
            sys.exit(1)
        finally:
            sys.stdout = sys.stdout.stream if isinstance(sys.stdout, NamedOutput) else sys.stdout


class Context(click.Context):
    """Every command's context (see the end of this file), whose help gives the examples as
    the program was run: the epilogs write them for the installed `tinyformer`, and under
    `python cli.py` its usage line and its messages say `python cli.py train ...`."""

    def __init__(self, command, *args, **kwargs):
        super().__init__(command, *args, **kwargs)
        # A word given to a command that takes options only (`tinyformer train input.txt`) is
        # refused in invoke below, with an example of its options, where click's parser said
        # only "Got unexpected extra argument". A group's extra words are its command's, and a
        # command with arguments of its own (plot RUN_DIR...) is left to click, as ever.
        self.refuses_extra_words = not (
            self.allow_extra_args or isinstance(command, click.Group)
            or any(isinstance(param, click.Argument) for param in command.params))
        self.allow_extra_args = self.allow_extra_args or self.refuses_extra_words

    def invoke(self, callback, /, *args, **kwargs):
        if self.refuses_extra_words and self.args:
            raise click.UsageError(extra_words_said(self), self)
        return super().invoke(callback, *args, **kwargs)

    def get_help(self):
        return re.sub(r"(?m)^(\s*)tinyformer(?= )", lambda line: line[1] + files.command_line(),
                      super().get_help())

    @contextlib.contextmanager
    def scope(self, cleanup=True):
        # click's parser names no command in some of its errors ("Option '--out' requires an
        # argument."), which then lacked the "(see tinyformer graph --help)" of every other:
        # they are this command's, whose arguments it was reading.
        try:
            with super().scope(cleanup) as ctx:
                yield ctx
        except click.UsageError as error:
            if error.ctx is None:
                error.ctx = self
            raise


def standard_streams_opened() -> None:
    """A program started with its standard input, output or error closed (`>&-`, or by a
    launcher) has them on the null device instead, as a daemon does: Python leaves a closed
    one None, which the first print or prompt trips on, and the next file opened would take
    its descriptor, so that what a child process writes to its output would land in that."""
    while (fd := os.open(os.devnull, os.O_RDWR)) <= 2:
        pass                        # a closed one (the lowest free descriptor): now the null
    os.close(fd)
    for fd, name, mode in [(0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")]:
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False))
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            # An ASCII output (the C locale, Python's UTF-8 mode off) is written in UTF-8, as
            # click writes to one anyway, and in the error handler below.
            # (the codec's own name: the locale may call it ANSI_X3.4-1968 or US-ASCII)
            codec = codecs.lookup(stream.encoding).name
            stream.reconfigure(encoding="utf-8" if codec == "ascii" else None,
                               errors=BYTES_BACK)


def bytes_back_else_escaped(error: UnicodeEncodeError) -> tuple[str | bytes, int]:
    """The standard output's and error's handler of what their encoding cannot write.

    A lone surrogate that stands for a byte the locale could not decode (a path's, as Python
    reads a command line and a folder under the C locale) is written as that byte, as Python's
    surrogateescape does: a file's name printed names the file, where click's wrapper printed
    "??" for "ü" (`f=$(tinyformer graph ...)` then named no file). Any other character the
    encoding lacks (a latin-1 locale; on Windows, output sent to a file or a pipe, in the ANSI
    code page) is written \\u-escaped, as Python writes it to stderr: it would otherwise end
    the command at the first one, a training run at its first sample, where a BPE writes
    U+FFFD for a character cut apart."""
    try:
        return codecs.lookup_error("surrogateescape")(error)
    except UnicodeError:                                 # not a byte's stand-in
        return codecs.lookup_error("backslashreplace")(error)


BYTES_BACK = "tinyformer.bytes_back_else_escaped"
codecs.register_error(BYTES_BACK, bytes_back_else_escaped)


class NamedOutput:
    """The standard output (`stream`), whose errors name it. A write to it that fails (a full
    disk under `> file`, or `> /dev/full`) raises an OSError that names no file: said as every
    OSError is, it read "no space left on device", as if a file of the command's had failed."""

    NAME = "the standard output"

    def __init__(self, stream):
        self.stream = stream

    def __getattr__(self, name):          # all else as the stream: isatty, fileno, encoding
        return getattr(self.stream, name)

    def write(self, data):
        return self._named(self.stream.write, data)

    def writelines(self, lines):
        return self._named(self.stream.writelines, lines)

    def flush(self):
        return self._named(self.stream.flush)

    @property
    def buffer(self):                     # its bytes, which click writes to at times
        return NamedOutput(self.stream.buffer)

    @staticmethod
    def _named(method, *args):
        try:
            return method(*args)
        except OSError as error:
            if error.filename is None:
                error.filename = NamedOutput.NAME
            raise


def colour_wanted() -> bool:
    """Whether to colour what goes to standard output, where the user has not said: on a
    terminal that shows colours (TERM not "dumb"), unless NO_COLOR is set to anything
    (no-color.org)."""
    return takes_escapes(sys.stdout) and not os.environ.get("NO_COLOR")


def command_words(ctx: click.Context) -> list[str]:
    """The words of the command `ctx` runs, after the program's name: ["tokenize", "decode"]."""
    words = []
    while ctx.parent is not None:
        words, ctx = [ctx.info_name, *words], ctx.parent
    return words


def elsewhere(error: click.NoSuchOption) -> str | None:
    """For an option of another command (`train --prompt`, from `generate`): the commands
    that take it, in place of click's guesses among the names of this one's options."""
    if error.ctx is None:
        return None
    # The program's own (--debug, which the bug report asks for, and --version), given after
    # the command: they go before it.
    root, path = error.ctx.find_root(), command_words(error.ctx)
    own = [p for p in root.command.params if error.option_name in p.opts]
    if own and path:
        instead = files.command_line(error.option_name,
                                     *([] if own[0].is_eager else [*path, "..."]))
        return (f"No such option {error.option_name!r}: it is the program's own, given before "
                f"the command: `{instead}`")
    def commands(group, path):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command, (*path, name))
            else:
                yield (*path, name), command
    takers = [f"`{files.command_line(*path)}`"
              for path, command in commands(error.ctx.find_root().command, ())
              if any(error.option_name in p.opts + p.secondary_opts for p in command.params)]
    if not takers:
        return None
    shown = ", ".join(takers[:3]) + (", ..." if len(takers) > 3 else "")
    return f"No such option {error.option_name!r}: it is an option of {shown}"


def negative_number(error: click.NoSuchOption, words: list[str]) -> str | None:
    """For a negative number given as an argument (`tokenize decode -1`), which click reads as
    an option: how to give it, after --, where click's own words ("No such option") left the
    user looking for an option of that name. `words` are the command line's, after the
    program's name: click names a short option by its first character alone ('-1' of '-15'),
    and the advice gives the number as it was typed."""
    if error.ctx is None or not any(isinstance(p, click.Argument)
                                    for p in error.ctx.command.params):
        return None
    typed = typed_number(error.option_name, words)
    if typed is None:
        return None
    instead = files.command_line(*command_words(error.ctx), "...", "--", typed)
    return (f"No such option {typed!r}: a number that starts with '-' is read as an option; "
            f"to give it as an argument, put -- before it, after the options: `{instead}`")


def dashed_text(error: click.NoSuchOption, words: list[str]) -> str | None:
    """For a TEXT that starts with '-' (`tokenize encode "-hello world"`), which click reads as
    options: how to give it, after --, where click named a letter of it ("No such option
    '-e'", after reading -h) or all of it ("No such option '-- a'"). `words` as
    negative_number's. None where the command takes no TEXT, or no word before -- is read so;
    a word spelled as a long option (--tokenzier) is a misspelt option, not text."""
    if error.ctx is None or not any(isinstance(p, click.Argument) and isinstance(p.type, Text)
                                    for p in error.ctx.command.params):
        return None
    name = error.option_name
    given = words[:words.index("--")] if "--" in words else words
    for word in given:
        # click reads "-hello" as the short options -h -e -l ..., and "-- a" as one long one.
        as_letters = (not word.startswith("--") and not name.startswith("--")
                      and word.startswith("-") and name[1:] in word[1:])
        whole = word == name and re.fullmatch(r"--[\w-]+", word) is None
        if as_letters or whole:
            instead = files.command_line(*command_words(error.ctx), "...", "--", word)
            return (f"No such option {name!r}: {word!r} starts with '-' and is read as "
                    f"options; to give it as TEXT, put -- before it, after the options: "
                    f"`{instead}`")
    return None


def typed_number(option_name: str, words: list[str]) -> str | None:
    """The number, as typed among the command line's `words`, that click read as the unknown
    option `option_name`: click names a short option by its first character alone, '-1' of
    '-15'. None if no word before -- (after it, nothing is an option) is that number."""
    given = words[:words.index("--")] if "--" in words else words
    for word in given:
        if word.startswith(option_name):
            try:
                float(word)
            except ValueError:
                continue
            return word
    return None


def with_example(error: click.MissingParameter) -> str | None:
    """For a missing argument or option, click's words and a command line that gives it: the
    plainest of the command's help examples that do (an option by its name; an argument is in
    every example), the one with the fewest options (the first of those), as the program was
    run: the missing one is shown, not the command's other features (--beam). None where no
    example gives it."""
    if error.ctx is None or error.param is None:
        return None
    giving = [line for line in example_lines(error.ctx.command.epilog or "")
              if isinstance(error.param, click.Argument)
              or any(word.split("=")[0] in error.param.opts for word in line.split())]
    if not giving:
        return None
    plainest = min(giving, key=lambda line: sum(word.startswith("-")
                                                for word in shlex.split(line)))
    example = re.sub(r"^tinyformer", lambda _: files.command_line(), plainest)
    return f"{error.format_message()} For example: `{example}`"


def extra_words_said(ctx: click.Context) -> str:
    """click's words for words given to a command that takes options only (`tinyformer train
    input.txt`, a prompt without --prompt), and the first of its help examples that gives
    options, as the program was run."""
    words = " ".join(ctx.args)
    said = f"Got unexpected extra argument{'s' * (len(ctx.args) > 1)} ({words})"
    for line in example_lines(ctx.command.epilog or ""):
        if " --" in line:
            example = re.sub(r"^tinyformer", lambda _: files.command_line(), line)
            return f"{said}: {ctx.info_name} takes options only. For example: `{example}`"
    return said


def example_lines(text: str) -> list[str]:
    """The `tinyformer ...` command lines of a help's examples (or of a shell block that shows
    some), continuation lines joined, each without its prompt ($), its comment (after two
    spaces or a #), or what follows && or a redirection (>); none that stands for any COMMAND."""
    lines = (line.strip().removeprefix("$ ")
             for line in re.sub(r"\s*\\\n\s*", " ", text).splitlines())
    return [re.split(r"\s{2,}|\s#|&&|\s>", line)[0].strip() for line in lines
            if line.startswith("tinyformer ") and "COMMAND" not in line]


def renamed(error: click.NoSuchOption) -> str | None:
    """For a setting of `train` under another program's name (--max-iters, nanoGPT's), or
    nearly (--learning-rat): ours, in place of click's guesses by spelling (--eval-iters)."""
    ours = setting_renamed(error.option_name.lstrip("-"))
    if error.ctx is None or error.ctx.command is not train or ours is None:
        return None
    return f"No such option {error.option_name!r}; did you mean {option_name(ours)!r}?"


@click.group("tinyformer", cls=Program,
             context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(tinyautograd.__version__, prog_name="tinyformer")
@click.option("--debug", is_flag=True, help="On an internal error, show Python's traceback "
              "(to report the bug).")
def main(debug):
    """tinyformer: see every gradient of a Transformer, on a numpy autograd engine."""
    # Program.main reads it when an exception reaches it, after this context has closed.
    context = click.get_current_context()
    context.command.debug, context.command.subcommand = debug, context.invoked_subcommand
    # Before anything draws (or starts a process that draws: exercises draw), so that a
    # home that cannot be written gets no warnings from matplotlib (see matplotlib_folder).
    give_matplotlib_a_folder()
    try:                      # refused before any work, rather than at a run's first op
        tinyautograd.kernels.check()
    except tinyautograd.kernels.KernelError as error:    # (the variable is not in --help)
        raise InputError(str(error)) from None


# ----- tokenize: train, apply and inspect tokenizers

DEFAULT_SPECIALS = ("<pad>", "<bos>", "<eos>", "<mask>")
DEFAULT_VOCAB_SIZE = 512          # a BPE's, in `tokenize train`
DEFAULT_SHOW_MERGES = 64          # `show` without --tokenizer: see data.builtin_bpe


@main.group(epilog="""\b
Examples:
  tinyformer tokenize train corpus.txt --out tok.json        a 512-token BPE
  tinyformer tokenize show "Hello, world" --tokenizer tok.json
""")
def tokenize():
    """Train, apply and inspect tokenizers (text <-> ids). A tokenizer file is the JSON that
    `tokenize train` writes; in Python, tinyformer.tokenizers.load_tokenizer(path) reads it.
    --tokenizer also takes a checkpoint directory, for the ids its model reads, or a Hugging
    Face tokenizer's directory (GPT-2's, or any byte-level BPE's tokenizer.json)."""


@tokenize.command("train", short_help="Learn a tokenizer from a text file and save it.",
                  epilog="""\b
Examples:
  tinyformer tokenize train corpus.txt --out tok.json        a 512-token BPE
  tinyformer tokenize train corpus.txt --vocab-size 1024 --special "<eos>" --out tok1024.json
  tinyformer tokenize train corpus.txt --kind char --no-special --out chars.json
""")
@click.argument("input_path", metavar="INPUT", type=FILE)
@click.option("--kind", type=click.Choice(["char", "bpe"]), default="bpe", show_default=True,
              help="bpe: byte-level byte-pair encoding (GPT-2's); char: one id per character.")
@click.option("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, show_default=True,
              help="The BPE's vocabulary size: all its ids, the 256 bytes and the special "
              "tokens included.")
@click.option("--special", "specials", type=TEXT, multiple=True, default=DEFAULT_SPECIALS,
              show_default=True, metavar="TOKEN", help="A special token (repeat for several).")
@click.option("--no-special", is_flag=True, help="No special tokens at all.")
@click.option("--out", "out_path", required=True, metavar="FILE.json", type=FILE,
              help="Where to save the tokenizer.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.pass_context
def tokenize_train(ctx, input_path, kind, vocab_size, specials, no_special, out_path, force):
    """Learn a tokenizer from the UTF-8 text file INPUT and save it as JSON: a BPE learns
    merges of the 256 bytes up to --vocab-size ids, a char tokenizer has an id per character.
    Prints the vocabulary (a BPE's first merges, each as the two tokens it joined: "t"+"he",
    and its longest tokens) and the compression (bytes per token: more, shorter sequences)."""
    if no_special and given_options(ctx, "specials"):
        raise InputError("give --special or --no-special, not both")
    if "" in specials:          # the library's advice (an empty list) is Python's
        raise InputError("--special '' is an empty special token; leave it out (--no-special "
                         "for no special tokens at all)")
    if kind == "char" and not given_options(ctx, "vocab_size"):
        vocab_size = None               # a char tokenizer has none: refused only if given
    with input_errors():
        specials = [] if no_special else list(specials)
        vocab_size = check_training(kind, vocab_size, specials, name=option_name)
    check_out_file(out_path, force=force, reads=[input_path])   # before the work
    with input_errors():                         # a run's tokenizer.json, even with --force
        check_not_a_run_file(out_path)
    # Unreadable text, too little for the merges: BadInput. Any other ValueError from the
    # training is a bug of ours.
    with input_errors(BadInput):
        # BPE on a large corpus takes a while: say so, and show the merges as they are
        # learned (on stderr: stdout keeps the result).
        tok, report = train_tokenizer(input_path, kind, vocab_size, specials,
                                      log=warn,
                                      name=option_name, progress=True)
    with input_errors(OSError):                  # e.g. the disk filled up since the check
        tok.save(out_path)
    click.echo(f"{report[0]}, saved to {out_path}\n" + "\n".join(report[1:]))


def given_options(ctx, *names):
    """Those of the options `names` that the user gave (not left at their defaults), as
    --names: to refuse one that does not apply, rather than ignore it."""
    return [option_name(name) for name in names
            if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT]


def check_out_file(path, suffixes=None, force=True, reads=(), dash=None):
    with input_errors():
        files.check_out_file(path, suffixes, force, reads, dash)


TOKENIZER_HELP = ("A tokenizer saved by `tokenize train` (or a directory holding it as "
                  "tokenizer.json), a checkpoint's (a run directory, or a Hugging Face model's, "
                  "as generate --checkpoint takes), or a directory of a Hugging Face tokenizer: "
                  "GPT-2's vocab.json and merges.txt, or the tokenizer.json of a byte-level BPE "
                  "(as GPT-2's, SmolLM's or Qwen's).")


def open_tokenizer(path):
    """A tokenizer file, the tokenizer of a checkpoint directory (a run's, or a Hugging Face
    model's, as generate reads it: the ids that its model reads), or a Hugging Face tokenizer's
    directory: any byte-level BPE's tokenizer.json, since `tokenize` only encodes and decodes
    (train takes GPT-2's alone, which a run can save)."""
    # What the reading refuses (BadInput), or a file it cannot read: a pipe too, `--tokenizer
    # <(...)`, read once. Any other ValueError in building the tokenizer is a bug of ours.
    with input_errors(BadInput, OSError):
        return load_tokenizer_at(path, saveable=False, pipe=True)


# --allow-special, as `tokenize encode` and `show` and `generate` take it.
allow_special_option = click.option(
    "--allow-special", is_flag=True,
    help="Give special tokens written in the text (\"<eos>\") their own ids, rather than read "
    "them as plain text; a special token that the tokenizer lacks is plain text either way "
    "(`tokenize show` names the tokenizer's).")


def text_options(command):
    """TEXT, or --file, and --allow-special: what `encode` and `show` read."""
    command = allow_special_option(command)
    command = click.option("--file", "file_path", metavar="PATH", type=FILE,
                           help="Read the text from a UTF-8 file instead of TEXT.")(command)
    return click.argument("text", type=TEXT, required=False)(command)


def encoded_pieces(tok, text, file_path, allow_special):
    """The text (TEXT or --file's: exactly one of them) and its ids, a piece at a time, as
    (piece, its ids): a large file's ids are never held at once. Read them under
    input_errors(): a file that cannot be read, or a character that the tokenizer cannot
    encode, is found as the pieces go."""
    if (text is None) == (file_path is None):
        raise InputError("give a TEXT or --file PATH (one of them)")
    with input_errors():                         # TEXT that is not UTF-8
        pieces = encode_text_or_file(tok, text, file_path, allow_special)
    return advised(tok, pieces)


def advised(tok, pieces):
    """`pieces`, where a character that a char tokenizer lacks is said with what to do, as
    `generate` says it of a prompt (the tokenizer says only what is wrong)."""
    try:
        yield from pieces
    except EncodeError as error:
        if tok.kind != "char":
            raise
        retrain = files.command_line("tokenize", "train", "FILE", "--kind", "char", "--out",
                                     "chars.json")
        raise BadInput(f"{error}; use only characters the tokenizer was trained on, or train "
                       f"one on a text that has them: `{retrain}`") from None


@tokenize.command("encode", short_help="Print the ids of a text, separated by spaces.",
                  epilog="""\b
Examples:
  tinyformer tokenize encode "Hello, world" --tokenizer tok.json
  tinyformer tokenize encode "<bos>Hi<eos>" --allow-special --tokenizer tok.json
""")
@text_options
@click.option("--tokenizer", "tokenizer_path", required=True, metavar="FILE.json|DIR",
              type=FILE_OR_DIRECTORY, help=TOKENIZER_HELP)
def tokenize_encode(text, file_path, allow_special, tokenizer_path):
    """Print the ids of TEXT (or of --file PATH), separated by spaces, on one line. A large
    file's ids are printed as it is read, as a filter prints them: an error found part way (a
    character the tokenizer cannot encode, bytes that are not UTF-8), named by its line,
    comes after the ids of the text before it, and the exit status is 2."""
    tok = open_tokenizer(tokenizer_path)
    separator = ""                               # between the ids of two pieces
    pieces = encoded_pieces(tok, text, file_path, allow_special)
    # A character the tokenizer cannot encode, bytes that are not UTF-8 (BadInput); any other
    # ValueError in encoding is a bug of ours.
    with input_errors(BadInput), line_ended_on_error(lambda: separator):
        for _, ids in pieces:
            if ids:
                click.echo(separator + " ".join(map(str, ids)), nl=False)
                separator = " "
    click.echo()


@contextlib.contextmanager
def line_ended_on_error(started, color=None):
    """Where the block raises once `started()` is true (a line is written in part), the new
    line that ends it: the output stays lines of text, and the error is not printed on the
    end of its line, in a terminal."""
    try:
        yield
    except Exception:
        if started():
            click.echo(color=color)
        raise


@tokenize.command("decode", short_help="Print the text of the token IDS.",
                  epilog="""\b
Examples:
  tinyformer tokenize decode 72 101 108 --tokenizer tok.json
  tinyformer tokenize encode --file story.txt --tokenizer tok.json > ids.txt
  tinyformer tokenize decode --file ids.txt --tokenizer tok.json
""")
@click.argument("ids", nargs=-1, type=int)
@click.option("--file", "file_path", metavar="PATH", type=FILE,
              help="Read the ids from a UTF-8 file instead of IDS, separated by spaces or new "
              "lines, as `encode` prints them: for more than a command line holds.")
@click.option("--tokenizer", "tokenizer_path", required=True, metavar="FILE.json|DIR",
              type=FILE_OR_DIRECTORY, help=TOKENIZER_HELP)
@click.option("--skip-special", is_flag=True,
              help="Leave out the special tokens' text (\"<eos>\"), as transformers' "
              "decode(ids, skip_special_tokens=True) does.")
def tokenize_decode(ids, file_path, tokenizer_path, skip_special):
    """Print the text of the token IDS (or of --file PATH's) and a new line, as echo does: all
    of it, special tokens (unless --skip-special), escape sequences and other control
    characters too (`tokenize show` shows them escaped); ids that cut a character's bytes
    apart as U+FFFD."""
    if bool(ids) == (file_path is not None):
        raise InputError("give IDS or --file PATH (one of them)")
    tok = open_tokenizer(tokenizer_path)
    if file_path is not None:
        with input_errors(BadInput, OSError):    # a word that is no id, a file unread
            ids = ids_in_file(file_path)
    # An id outside the vocabulary (BadInput); any other ValueError in decoding is a bug of ours.
    with input_errors(BadInput):
        # color=True: click drops a text's escape sequences ("\x1b[31m") where the output is
        # not a terminal, so a file or pipe got a text that its ids do not hold.
        click.echo(tok.decode(ids, skip_special_tokens=skip_special), color=True)


@tokenize.command("show", short_help="Show how a text splits into tokens.",
                  epilog=f"""\b
Examples:
  tinyformer tokenize show "Hello, world"                   the default tokenizer
  tinyformer tokenize show --file story.txt --tokenizer chars.json --ids --no-color

Without --tokenizer: a BPE of {DEFAULT_SHOW_MERGES} merges learned on the built-in corpus: its
commonest words (" the", " has") are single tokens, other text falls back to pieces and bytes.
""")
@text_options
@click.option("--tokenizer", "tokenizer_path", metavar="FILE.json|DIR", type=FILE_OR_DIRECTORY,
              show_default="a BPE of the built-in corpus, see below", help=TOKENIZER_HELP)
@click.option("--ids", "show_ids", is_flag=True, help="Also print the ids, in order.")
@click.option("--color/--no-color", default=None,
              show_default="on a terminal, unless NO_COLOR is set or TERM is dumb",
              help="Colour the tokens; without colour they are framed by '|', and a '|' of the "
              "text shows as '\\|'; a backslash of the text shows as '\\\\'.")
def tokenize_show(text, file_path, allow_special, tokenizer_path, show_ids, color):
    """Show how TEXT (or --file PATH) splits into tokens, and how well it compresses: as
    |Hello|,| world| (a '|' of the text as \\|), or in colours; new lines and tabs as \\n and
    \\t, other control characters and a BPE token that holds part of a character's bytes as
    \\xNN, a character that prints as nothing (a zero-width joiner) as \\u200d, as is an
    accent that starts a token (\\u0301), and a backslash of the text as \\\\ (C:\\new as
    C:\\\\new). A large file is shown as it is read, as encode prints its ids: an error part
    way comes after the tokens before it."""
    tok = (open_tokenizer(tokenizer_path) if tokenizer_path
           else builtin_bpe(DEFAULT_SHOW_MERGES, DEFAULT_SPECIALS))
    color = color if color is not None else colour_wanted()
    # The split line is written a piece at a time; the rest is counted as the pieces go.
    n_tokens = n_characters = n_bytes = 0
    shown_ids = array.array("q")       # for --ids: 8 bytes an id, where a list's int takes 36
    written = set()                               # the special tokens written in the text
    def counted_ids(pieces):
        nonlocal n_tokens, n_characters, n_bytes
        for piece, ids in pieces:
            n_tokens += len(ids)
            n_characters += len(piece)
            n_bytes += len(piece.encode("utf-8"))
            shown_ids.extend(ids if show_ids else ())
            written.update(s for s in tok.special_tokens if s in piece)
            yield ids
    pieces = encoded_pieces(tok, text, file_path, allow_special)
    with input_errors(BadInput), line_ended_on_error(lambda: n_tokens > 0, color):   # as encode's
        for part in split_shown_parts(tok, counted_ids(pieces), colour=color):
            click.echo(part, nl=False, color=color)
    click.echo(color=color)
    click.echo(("ids: " + " ".join(map(str, shown_ids)) + "\n") * show_ids
               + compression_of(n_tokens, n_characters, n_bytes))
    click.echo(f"tokenizer: {tokenizer_path or 'the default (see --help)'}, {tok.kind}, "
               f"{tok.vocab_size} ids, {special_tokens_named(tok)}")
    # A special token written in the text splits into pieces unless asked for: say why.
    as_text = [] if allow_special else [s for s in tok.special_tokens if s in written]
    if as_text:
        click.echo(f"special tokens read as plain text: {' '.join(map(one_line, as_text))} "
                   f"(--allow-special gives each its own id)")


SHOWN_SPECIALS = 8      # a Llama 3 tokenizer has 256: `show` names the first few


def special_tokens_named(tok):
    """The tokenizer's special tokens, for `show` to name: --allow-special finds those alone."""
    specials = [one_line(s) for s in tok.special_tokens]
    if not specials:
        return "no special tokens"
    more = (f" and {len(specials) - SHOWN_SPECIALS} more" if len(specials) > SHOWN_SPECIALS
            else "")
    return f"special tokens {' '.join(specials[:SHOWN_SPECIALS])}{more}"


# ----- train, generate, export

def from_environment(ctx, param):
    """Whether the option `param` took its value from its environment variable."""
    return (ctx is not None and ctx.get_parameter_source(param.name) ==
            click.core.ParameterSource.ENVIRONMENT)


class EnvironmentOption(click.Option):
    """An option that an environment variable may give: an error names the variable only
    when the value came from it (click names it always, a typo on the command line too)."""

    def get_error_hint(self, ctx):
        return (super().get_error_hint(ctx) if from_environment(ctx, self)
                else click.Parameter.get_error_hint(self, ctx))


def at_most_the_cores(ctx, param, threads):
    """--threads, lowered to the cores this process may run on, and said so: threads beyond
    them wait for each other (a BLAS thread spins while it waits, on a core another needs)."""
    cores = resources.usable_cores()
    if threads is None or threads <= cores:
        return threads
    given = (f"{param.envvar}={threads}" if from_environment(ctx, param)
             else f"--threads {threads}")
    click.echo(f"{given}: this machine lets the run use {cores} "
               f"core{'s' * (cores > 1)}, and threads beyond the cores only slow it down; "
               f"using {cores}", err=True)
    return cores


def threads_below(unset):
    """What --threads 0 (to some tools, as xz -T0, "as many as the cores") is told to give
    instead: a count, or nothing for what `unset` says runs then."""
    return f"give 1 or more, or leave it unset for {unset}"


def threads_option(what, chosen):
    """--threads, whose help says what the threads run (`what`) and how many run when it is
    not given (`chosen`)."""
    return click.option(
        "--threads", type=IntRangeSaysBelow(min=1, max=4096, below=threads_below(
            "threads chosen as it runs"), words_too=True), metavar="N", cls=EnvironmentOption,
        envvar="TINYFORMER_THREADS", show_envvar=True, callback=at_most_the_cores,
        show_default=chosen, help=f"{what}, at most the machine's cores.")


def train_options(command):
    """TrainConfig's settings that have help, as options of their annotation's type, each None
    unless given (so that a --config file's value or the job's default applies)."""
    metavars = dict(corpus="PATH", task="NAME", model="NAME", tokenizer="KIND|FILE.json|DIR",
                    positions="KIND", norm="WHERE", schedule="KIND", normalization="KIND",
                    activation="KIND")
    for field in reversed(dataclasses.fields(TrainConfig)):
        if "help" in field.metadata:
            flag, kind = "--" + field.name.replace("_", "-"), str(field.type).split(" ")[0]
            if kind == "bool":                         # --whole-words / --no-whole-words
                flag, kind = f"{flag}/--no-{flag[2:]}", None
            # Each default is None (a --config file's or the job's applies): its help says
            # what it comes to, as click writes a default.
            shown = shown_default(field.name)
            command = click.option(flag, field.name, type={"int": int, "float": float}.get(kind),
                                   metavar=metavars.get(field.name), default=None,
                                   help=field.metadata["help"]
                                   + (f"  [default: {shown}]" if shown else ""))(command)
    return command


@main.command(short_help="Train a model, with samples and checkpoints as it goes.",
              epilog="""\b
Examples:
  tinyformer train                                   a small GPT on the built-in stories
  tinyformer train --corpus input.txt --out runs/shakespeare
  tinyformer train --model bert                      learns to fill in a hidden colour
  tinyformer train --config run.toml --lr 3e-4       flags override the file
  tinyformer train --resume runs/shakespeare         continue after Ctrl-C, SIGTERM or a crash

\b
Defaults depend on the data: the built-in corpus trains a 2-layer GPT in under a minute; a
--corpus file gets nanoGPT's small CPU recipe (4 layers, width 128); a --task, a 2-layer
encoder-decoder.
""")
@train_options
# multiple: click would keep the last of two --config files and drop the other unsaid, where a
# sweep's user may expect the two layered; one given twice is refused instead (_train).
@click.option("--config", "config_paths", metavar="FILE.toml", type=FILE, multiple=True,
              help="Settings from a TOML file (keys as the options, with _ or -, but for "
              "--out, --force, --resume and --threads; and those only a file sets: "
              + ", ".join(f.name for f in dataclasses.fields(TrainConfig)
                          if "help" not in f.metadata) + "). Relative paths in it are read "
              "from the current directory, as on the command line.")
@click.option("--out", metavar="DIR", type=DIRECTORY,
              show_default="runs/<model>-<data>, numbered if taken",
              help="The run directory.")
@click.option("--force", is_flag=True, help="Overwrite a non-empty --out (only a run's own "
              "files are removed).")
@click.option("--resume", "resume_dir", metavar="DIR", type=DIRECTORY,
              help="Continue the run in DIR to its planned --iters, exactly as if it had not "
              "stopped (on the same kind of processor).")
@threads_option("Cores for a training step's micro-batches (processes on Linux, else threads), "
                "and threads for the matrix products",
                "chosen by timing the steps, again as the machine's load changes")
@click.pass_context
def train(ctx, config_paths, out, force, resume_dir, threads, **options):
    """Train a model, printing samples and saving checkpoints as it goes; with no options, a
    small GPT learns the built-in stories (their last sentence recalls a colour from the
    first). Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stops after the current step with a
    checkpoint; --resume continues it."""
    # SIGTERM or SIGHUP, anywhere in the command, stops it as Ctrl-C at that point would.
    with stops.signals_stop_at_once():
        _train(ctx, config_paths, out, force, resume_dir, threads, options)


def _train(ctx, config_paths, out, force, resume_dir, threads, options):
    if len(config_paths) > 1:
        raise InputError(f"--config is given {len(config_paths)} times "
                         f"({', '.join(map(repr, config_paths))}), but a run reads one file; "
                         f"give one, and what changes from it as options (--lr 3e-4)")
    config_path = config_paths[0] if config_paths else None
    given = {name: value for name, value in options.items()
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    # Opening a run checks everything the user gave (settings, files, a run to resume), and
    # builds the data, tokenizer and model from them: only what the checks refuse (BadInput)
    # is the input's fault; any other ValueError from the building is a bug of ours.
    with input_errors(BadInput):
        trainer = Trainer.open(resume_dir, config_path, given, out, force, log=click.echo,
                               name=option_name)
    directory, first_step = trainer.directory, trainer.step
    resume = f"continue with: {files.command_line('train', '--resume', directory)}"
    try:
        click.echo(f"model: {summary_line(trainer.model)}; run directory: {directory}")
        # (may build the loops first) The ops with loops that this model runs, alone.
        click.echo(f"engine: {tinyautograd.kernels.summary(ops_with_loops(trainer.model))}")
        try:
            outcome = trainer.train(threads)
        except OSError as e:
            # The terminal closed as the run wrote to it, before its SIGHUP came: that stop,
            # at once (the write broke off a step), and no one left to read an error.
            if stops.closed_terminal(e):
                stops.leave_the_terminal()
                raise stops.HungUp from None
            raise
    # Settings that diverge, or a BERT that can hide nothing: resuming would fail again.
    except (FloatingPointError, NothingToHide) as e:
        raise InputError(new_run_advice(directory, str(e))) from None
    # A full disk, say: the run keeps its last checkpoint (or starts again), and goes on from
    # there once the cause is put right; the same command again would be refused.
    except OSError as e:
        if isinstance(e, BrokenPipeError):          # the reader of `| head` went: Program's
            raise
        if isinstance(e, parallel.WorkerLost):      # its advice, as the command that goes on
            in_one = files.command_line("train", "--resume", directory, "--threads", "1")
            raise InputError(f"{e}: {in_one}") from None
        again = (resume if trainer.run.has_checkpoint() else
                 f"start it again with: {files.command_line('train', '--resume', directory)}")
        raise InputError(files.describe_os_error(e, then=again)) from None
    except KeyboardInterrupt as stop:     # at once: a second Ctrl-C, SIGTERM or SIGHUP, or
                                          # any before step 1
        stopped = stops.outcome_of(stop)
        if trainer.run.has_finished():    # after the last checkpoint (its workers ending):
            click.echo(f"stopped by {stops.said(stopped)} after the last step; the run in "
                       f"{directory} is finished and saved: draw its curves with "
                       f"`{files.command_line('plot', directory)}`", err=True)
        elif trainer.run.has_checkpoint():
            click.echo(f"stopped at once; {directory} keeps its last checkpoint; {resume}",
                       err=True)
        else:
            click.echo(f"stopped at once; {directory} has no checkpoint yet; "
                       f"{files.command_line('train', '--resume', directory)} starts it again "
                       f"from step 0", err=True)
        sys.exit(STOPPED[stopped])
    finally:              # train() lets go of the run directory as it ends; before it, this
        trainer.close()   # does (a reader that stopped early, `| head`, a Ctrl-C)
    # Stopped: say so first (a SIGKILL may follow a SIGTERM soon), then draw the curves so far.
    if outcome != "done":
        by = "" if outcome == "interrupted" else f" by {stops.said(outcome)}"
        click.echo(f"stopped{by} at step {trainer.step} with a checkpoint in {directory}; "
                   f"{resume}", err=True)
    # A finished run resumed draws the curves it lacks: a kill (SIGKILL, `timeout -k`, a
    # power cut) as it drew them, after its last checkpoint, left it without its loss.png.
    # (One whose metrics.jsonl is lost or empty too has no curves to draw: resume said so.)
    metrics = trainer.run.file(METRICS)
    unplotted = (outcome == "done" and trainer.step > 0
                 and not os.path.exists(trainer.run.file(PLOT))
                 and os.path.isfile(metrics) and os.path.getsize(metrics) > 0)
    if trainer.step > first_step or unplotted:
        try:
            # Loaded here, inside the try: the plotting modules take a moment to load, and a
            # stop then is a stop while drawing too.
            from viz.write import plot_after_training
            click.echo(plot_after_training(directory))
        except KeyboardInterrupt as stop:
            # The run is saved; only its picture is lost. "stopped by Ctrl-C" alone read as a
            # run cut short, which --resume then called finished, with no loss.png.
            stopped = stops.outcome_of(stop)
            state = "finished and saved" if outcome == "done" else "saved"
            click.echo(f"stopped by {stops.said(stopped)} while drawing the loss plot; the run "
                       f"in {directory} is {state}: draw its curves with "
                       f"`{files.command_line('plot', directory)}`", err=True)
            sys.exit(STOPPED[stopped])
    if outcome != "done":
        sys.exit(STOPPED[outcome])
    # The run's job knows its data and tokenizer: a task's prompt is a held-out source of the
    # run's lengths; BERT fills in a held-out line, with as many <mask> as its tokenizer makes
    # of the hidden word; a GPT on a text starts from a new line where it can.
    prompt = trainer.job.example_prompt()
    click.echo(f"done: checkpoint in {directory}\ntry: " + files.command_line(
        "generate", "--checkpoint", directory, *(["--prompt", prompt] if prompt else [])))


# --checkpoint of the commands that read a model (generate, attention, lens, graph).
CHECKPOINT_HELP = ("A run directory written by `tinyformer train`, or a Hugging Face model's "
                   "(GPT-2, Llama or Qwen3).")

# What each kind of checkpoint that samples nothing does instead, and the options of
# `generate` that it therefore takes none of: a BERT writes nothing, so no --beam either.
SAMPLING_OPTIONS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "allow_special")
WRITES_NO_SAMPLE = {
    "bert": ("a bert checkpoint fills in its prompt's masks, in one step",
             (*SAMPLING_OPTIONS, "beam")),
    "transformer": ("an encoder-decoder checkpoint translates its prompt to its end, greedily "
                    "or with --beam", SAMPLING_OPTIONS),
}


@main.command(short_help="Continue a prompt (or translate it, or fill in its masks).",
              epilog="""\b
Examples:
  tinyformer generate --checkpoint runs/gpt-builtin --prompt "bob has"            a sampled text
  tinyformer generate --checkpoint runs/gpt-builtin --prompt "bob has" --beam 4   the likeliest text
  tinyformer generate --checkpoint runs/shakespeare --max-new-tokens 500 --top-k 20
  tinyformer generate --checkpoint runs/bert-builtin \\
      --prompt "eve has a red kite. a dog barked. the kite of eve is <mask><mask><mask>."

\b
--checkpoint also takes a Hugging Face directory: GPT-2, Llama or Qwen3, as on a model page or
as `tinyformer export` writes. No --prompt starts from <|endoftext|>, if the tokenizer has it.
Its generation_config.json gives the ids that end a text, not the sampling: give that here
(--temperature 0 for transformers' greedy default, --top-k 50 for its do_sample's). A GPT reads
at most its context, sliding on past it; transformers goes on reading every token of a Llama or
Qwen3, so their texts part there, and a note says where that may happen.
--temperature, --top-k, --top-p and --seed shape a GPT's sampling, which --beam replaces
(--seed N draws what Python's GPT.generate draws with generator=np.random.default_rng(N));
--temperature 0 draws nothing, so it takes no --top-k, --top-p or --seed. An
encoder-decoder or BERT checkpoint takes none of them, nor --max-new-tokens, nor
--allow-special, with which a GPT reads a chat model's "<|im_start|>" in the prompt as its
token. An encoder-decoder's answer ending in "…" filled the model's context without <eos>: it
was cut there, unfinished; "(no answer)" is <eos> at once, as the training log says it.
""")
@click.option("--checkpoint", "checkpoint_dir", required=True, metavar="DIR", type=DIRECTORY,
              help=CHECKPOINT_HELP)
@click.option("--prompt", type=TEXT, default="",
              show_default="none: a GPT starts from <|endoftext|>, or a new line",
              help="The text to continue (GPT), to translate (encoder-decoder), or with <mask> "
              "tokens to fill in (BERT). A GPT reads at most its context: it continues a longer "
              "prompt from its last tokens, and says so.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=200, show_default=True,
              help="How many tokens a GPT writes at most (it stops sooner at an end of text).")
@click.option("--temperature", type=click.FloatRange(min=0), default=0.8, show_default=True,
              help="Below 1 sharper, above 1 flatter; 0 always takes the likeliest token.")
@click.option("--top-k", type=IntRangeSaysBelow(min=1, below=KEEP_ALL),
              show_default="every token",
              help="Sample among the k likeliest tokens only.")
@click.option("--top-p", type=FloatRangeSaysBelow(0, 1, min_open=True, below=LIKELIEST),
              show_default="1, every token",
              help="Sample among the likeliest tokens whose probabilities add up to p (nucleus "
              "sampling).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the sampling: the same seed, the same text.")
@click.option("--beam", type=click.IntRange(min=1), show_default="none: sample",
              help="Beam search with N beams: the most likely text rather than a sample, its "
              "log-probability divided by GNMT's length penalty (0.6) (GPT and encoder-decoder "
              "checkpoints). --beam 1 is greedy but for an end of text, which it may pass "
              "over for a longer ending that the penalty prefers.")
@allow_special_option
@threads_option("Threads for the matrix products of each generated token",
                "chosen by timing the tokens as they are written, again as the machine's "
                "load changes; for BERT's one step, BLAS's own")
@click.pass_context
def generate(ctx, checkpoint_dir, prompt, max_new_tokens, temperature, top_k, top_p, seed, beam,
             allow_special, threads):
    """Continue a prompt with a trained model (or translate it, or fill in its masks)."""
    # The settings and the checkpoint refused (BadInput); any other ValueError in building the
    # model is a bug of ours.
    with input_errors(BadInput):
        check_respond(max_new_tokens, temperature, top_k, top_p, beam,   # before loading
                      name=option_name)
        check_settings({"seed": seed}, {"seed": SEED})
        model, tokenizer, saved = load_model(checkpoint_dir)
    # Every option the kind does not take named at once, rather than one refused after another.
    does, not_taken = WRITES_NO_SAMPLE.get(saved["model"], ("", ()))
    unused = given_options(ctx, *not_taken)
    if unused:
        raise InputError(f"{does}: {' '.join(unused)} {'does' if len(unused) == 1 else 'do'} "
                         f"not apply; drop {'it' if len(unused) == 1 else 'them'}")
    # Beam search draws nothing: the sampling options are refused rather than ignored; after
    # the kind's check, as a BERT takes neither (told to drop --seed here, it refused --beam
    # next).
    sampling = given_options(ctx, "temperature", "top_k", "top_p", "seed")
    if beam is not None and sampling:
        raise InputError(f"--beam searches for the likeliest text; it does not sample: drop "
                         f"{' '.join(sampling)}, or --beam")
    # Temperature 0 takes the likeliest token: top-k, top-p and the seed shape a draw that
    # never happens. Refused, as with --beam, rather than ignored; after the kind's check, as
    # a BERT or an encoder-decoder takes no --temperature at all (a temperature above 0, as
    # this would advise, was refused next).
    unsampled = given_options(ctx, "top_k", "top_p", "seed") if temperature == 0 else []
    if unsampled:
        raise InputError(f"--temperature 0 takes the likeliest token; it does not sample: drop "
                         f"{' '.join(unsampled)}, or give a --temperature above 0")
    with input_errors(BadInput):                 # a prompt the model cannot take
        note = check_task_prompt(saved, prompt, name=option_name)
        answer = respond(model, tokenizer, saved["model"], prompt, max_new_tokens,
                         temperature, top_k, top_p, seed, beam, name=option_name,
                         threads=threads, eos_ids=saved.get("eos_ids"),
                         allow_special=allow_special, warn=warn)
    if note:
        warn(note)
    # respond checked the settings and the prompt before the work. The work finds one fault
    # more only as the model writes: logits that leave no token to pick (its activations on
    # this prompt are not finite). That is the checkpoint's or the prompt's, said in one line
    # (exit 2), on a line of its own after the text written so far; any other error from the
    # work is a bug of ours (exit 1).
    mid_line = False                    # whether the text written so far ends mid-line

    def write(text):
        nonlocal mid_line
        click.echo(text, nl=False)
        mid_line = not text.endswith("\n") if text else mid_line

    try:
        with input_errors(NoTokenToPick):
            answer(write)
    except InputError:
        if mid_line:
            click.echo()
        raise


@main.command(short_help="Write a trained GPT as a GPT-2, Llama or Qwen3 for transformers.",
              epilog="""\b
Examples:
  tinyformer export --checkpoint runs/shakespeare --out shakespeare-hf
  python -c 'import transformers as t; t.AutoModelForCausalLM.from_pretrained("shakespeare-hf")'

\b
GPT-2's block is written as a GPT-2; the modern block as a Llama (--positions rope
--normalization rmsnorm --activation swiglu, any --n-kv-head, with or without --no-bias), or
with --qk-norm and --no-bias as a Qwen3. Other mixes are refused, naming the setting.
A BPE tokenizer is written as GPT-2's vocab.json and merges.txt (transformers.AutoTokenizer
loads it too); a character tokenizer has no GPT-2 form and is kept as tinyformer-tokenizer.json.
""")
@click.option("--checkpoint", "checkpoint_dir", required=True, metavar="DIR", type=DIRECTORY,
              help="A GPT run directory written by `tinyformer train` (a Hugging Face "
              "directory is in that format already: use it as it is).")
@click.option("--out", "out_dir", required=True, metavar="DIR", type=DIRECTORY,
              help="A new directory to write (it must not exist).")
def export(checkpoint_dir, out_dir):
    """Write a trained GPT in Hugging Face's format (config.json, model.safetensors,
    generation_config.json)."""
    # --out or the checkpoint refused (BadInput), or OSError: the disk, permissions, a race.
    # Any other ValueError in building the model is a bug of ours.
    with input_errors(BadInput, OSError):
        check_export_dir(out_dir)                # before loading anything
        check_exportable(checkpoint_dir)
        model, tokenizer, _ = load_model(checkpoint_dir)
    # Writing finds what of the checkpoint no Hugging Face format holds (CheckpointError: a
    # model of a kind with none; PretrainedError: a GPT's setting none expresses, a tokenizer
    # GPT-2's files cannot hold), or --out taken meanwhile (CheckpointError); any other
    # ValueError in writing the files is a bug of ours.
    with input_errors(PretrainedError, CheckpointError, OSError):
        export_pretrained(model, tokenizer, out_dir)
    if tokenizer.kind != "bpe":                  # see export_pretrained
        click.echo(f"note: a {tokenizer.kind} tokenizer has no GPT-2 form; transformers loads "
                   f"the model, and tinyformer reads the tokenizer ({PRETRAINED_TOKENIZER})")
    click.echo(f"wrote {out_dir}: try {files.command_line('generate', '--checkpoint', out_dir)}")


# ----- attention, lens, plot, graph: what viz draws (viz/write.py)


checkpoint_option = click.option("--checkpoint", "checkpoint_dir", required=True, metavar="DIR",
                                 type=DIRECTORY, help=CHECKPOINT_HELP)
prompt_option = click.option("--prompt", type=TEXT, required=True, help="The text to read "
                             "(for BERT, <mask> tokens allowed; for an encoder-decoder, the "
                             "source to translate).")


@main.command(short_help="Draw a checkpoint's attention maps for a prompt.",
              epilog="""\b
Examples:
  tinyformer attention --checkpoint runs/gpt-builtin --prompt "eve has a red kite. the kite is "
  tinyformer attention --checkpoint runs/transformer-reverse --prompt 0123456 --which encoder

\b
A PNG has a heatmap per layer (rows) and head (columns): row i is how query i spreads its
attention over all the keys (each row sums to 1 over them). A masked map (GPT's, a decoder's)
of a prompt longer than 48 tokens shows its last 48; one that reads both ways (BERT's, an
encoder's, cross-attention) is drawn whole up to 128, and beyond that its last 128 queries
against the 128 keys they read most, a red line where keys are left out; the title says
what is left out. An encoder-decoder checkpoint translates the prompt greedily. A page
holds every attention, layer and head, weights read on hover, up to ten million weights in
all (a longer prompt is refused: draw a PNG).
""")
@checkpoint_option
@prompt_option
@click.option("--out", "out_path", default="attention.png", show_default=True,
              metavar="FILE.png|FILE.html", type=FILE,
              help="The picture, or the page (replaced if there).")
@click.option("--which", type=click.Choice(["self", "cross", "encoder", "decoder"]),
              show_default="cross; self for GPT and BERT",
              help="Which attention to draw (a page opens on it): an encoder-decoder checkpoint "
              "has cross, encoder (the source's self-attention) and decoder (the target's), "
              "not self; GPT and BERT have self only (a GPT's also answers to decoder, a BERT's to "
              "encoder).")
def attention(checkpoint_dir, prompt, out_path, which):
    """Draw a checkpoint's attention maps for a prompt: every layer and head."""
    from viz.attention import SHOWN_QUERIES, attention_maps, check_prompt, choose_map
    from viz.attention_page import MAX_WEIGHTS, TooBigForPage
    from viz.write import write_attention
    check_out_file(out_path, [".png", ".html"])   # before loading and running the model
    # The checkpoint, the prompt or --which refused (BadInput); any other ValueError in
    # building the model is a bug of ours.
    with input_errors(BadInput):
        model, tokenizer, saved = load_model(checkpoint_dir)
        note = check_task_prompt(saved, prompt, name=option_name)
        name = choose_map(model, which)
        check_prompt(model, tokenizer, prompt, saved["model"], name=option_name)
    # A page shows every weight, as many as it holds, which is counted before any is recorded;
    # a picture the last SHOWN_QUERIES queries' at most, and only theirs are kept (every
    # weight of a long prompt would take far more memory than the run).
    page = out_path.lower().endswith(".html")
    last_queries, max_weights = (None, MAX_WEIGHTS) if page else (SHOWN_QUERIES, None)
    # As generate's work: the faults of the input the run alone finds are an encoder-decoder's
    # logits that leave no token to pick as it translates, and a translation too long for a
    # page; any other error is a bug of ours.
    with input_errors(NoTokenToPick, TooBigForPage):
        maps = attention_maps(model, tokenizer, prompt, saved["model"], last_queries,
                              max_weights)
    if note:              # a source of a length never trained on: as generate says it
        warn(note)
    # A full disk is no fault of ours; any other error in drawing or writing the maps (a
    # ValueError too) is a bug of ours.
    # An encoder-decoder translates the prompt: the title names what (as lens's).
    source = prompt if saved["model"] == "transformer" else None
    with input_errors(OSError):
        click.echo(write_attention(out_path, maps, name, saved["model"], checkpoint_dir,
                                   source=source, log=warn))


@main.command(short_help="The logit lens: what each layer would predict.",
              epilog="""\b
Examples:
  tinyformer lens --checkpoint runs/gpt-builtin \\
      --prompt "eve has a red kite. it rained. the kite of eve is "
  tinyformer lens --checkpoint runs/transformer-reverse --prompt 0123456 --out lens.html

\b
The residual stream after the embeddings and each layer, read by the model's own final norm
and head as if it stopped there: a row per position, a column per layer, a cell the token it
would predict (for BERT, the one at that position) and its probability. A PNG of a long
prompt shows its last 48 positions (a BERT's, 128), as attention does, and its title says
how many are left out; the table and a page show every one.
""")
@checkpoint_option
@prompt_option
@click.option("--out", "out_path", default="-", show_default=True,
              metavar="-|FILE.png|FILE.html", type=FILE,
              help="- prints the table; a .png draws it, an .html makes it a page (replaced if "
              "there).")
def lens(checkpoint_dir, prompt, out_path):
    """The logit lens: what a checkpoint would predict after each layer, for each position."""
    from viz.attention import MAX_TOKENS, MAX_TOKENS_UNMASKED, check_prompt
    from viz.lens import lens_of_prompt, lens_text
    from viz.write import write_lens
    if out_path != "-":
        # before loading and running the model
        check_out_file(out_path, [".png", ".html"], dash="to print the table")
    with input_errors(BadInput):                   # as attention's checks
        model, tokenizer, saved = load_model(checkpoint_dir)
        note = check_task_prompt(saved, prompt, name=option_name)
        check_prompt(model, tokenizer, prompt, saved["model"], name=option_name)
    with input_errors(NoTokenToPick):              # as attention's run: the rest is our bug
        table, tokens = lens_of_prompt(model, tokenizer, prompt, saved["model"])
    if note:              # a source of a length never trained on: as generate says it
        warn(note)
    # An encoder-decoder's rows are its translation: the title names what it translates.
    source = prompt if saved["model"] == "transformer" else None
    # A picture shows as many positions as attention's does of a prompt: the last 48 of a
    # GPT's (what comes next is read at the end), up to 128 of a BERT's (a <mask> may be
    # anywhere).
    most = MAX_TOKENS_UNMASKED if saved["model"] == "bert" else MAX_TOKENS
    with input_errors(OSError):
        click.echo(lens_text(table, tokens, tokenizer, colour=colour_wanted()) if out_path == "-"
                   else write_lens(out_path, table, tokens, tokenizer, checkpoint_dir,
                                   source=source, log=warn, max_positions=most))


@main.command(short_help="Plot a run's curves, or write its report page.",
              epilog="""\b
Examples:
  tinyformer plot runs/gpt-builtin                 writes runs/gpt-builtin/loss.png
  tinyformer plot runs/gpt-builtin --out report.html --follow   a page that keeps up
  tinyformer plot runs/lr-* --out sweep.png        several runs in one picture, to compare

\b
Train loss per step and smoothed, validation loss at each evaluation, recall or accuracy if
the run measured one, and the learning rate. A page shows the values at a step on hover.
Several runs share one picture, a colour a run, the legend giving each its last val_loss
(a note says where their losses, per token, are of different models or tokenizers).
A loss that is NaN or infinite is marked by a tick atop the losses, and so is the step
where a run diverged and stopped.
A RUN_DIR may be a run's metrics.jsonl, or a pipe giving one, read once
(<(ssh host cat runs/gpt/metrics.jsonl)); --out - writes the PNG to the standard output
(ssh host tinyformer plot runs/gpt --out - > loss.png).
""")
@click.argument("run_dirs", metavar="RUN_DIR...", nargs=-1, required=True, type=DIRECTORY)
@click.option("--out", "out_path", metavar="FILE.png|FILE.html|-", type=FILE,
              show_default="RUN_DIR/loss.png",
              help="The picture, or the report page (replaced if there); - writes the PNG to "
              "the standard output.")
@click.option("--follow", is_flag=True, help="With an .html --out: rewrite the page as the run "
              "trains (it reloads itself), until the run ends.")
def plot(run_dirs, out_path, follow):
    """Plot the curves of the run in RUN_DIR (from its metrics.jsonl) to a PNG, or write its
    report page; or several runs' curves in one PNG, to compare them."""
    from viz.write import write_comparison, write_curves
    for run_dir in run_dirs:
        if os.path.exists(run_dir):
            continue
        unreadable = files.unreadable_folder(run_dir)    # in a folder the user may not read
        if unreadable:
            raise InputError(f"run directory {unreadable}")
        # Said as --checkpoint's and --resume's are: a path through a file ("notes.txt/",
        # "metrics.jsonl/run") names the file, not "does not exist", which sends the user
        # looking for a file that is there.
        raise InputError(files.not_a_directory(run_dir, "run directory", "give a run "
                                               "directory (or its metrics.jsonl)"))
    if len(run_dirs) > 1 and out_path is None:
        raise InputError(f"{len(run_dirs)} runs are compared in one picture, which is no "
                         f"run's own: give --out FILE.png")
    if len(run_dirs) > 1 and follow:
        raise InputError("--follow keeps one run's page up to date: give one RUN_DIR")
    if len(run_dirs) > 1 and out_path is not None and out_path.lower().endswith(".html"):
        raise InputError("a report page is one run's; give --out FILE.png to compare several "
                         "runs in one picture")
    to_stdout = out_path == "-"
    if to_stdout:                    # the PNG's bytes, for a redirection or another program
        if follow:
            raise InputError("--follow rewrites a page as the run trains: give --out "
                             "FILE.html, not -")
        out_path = sys.stdout.buffer
        if out_path.isatty():
            raise InputError("--out - writes the PNG's bytes to the standard output, which is "
                             "a terminal here; redirect it (> loss.png), or give --out "
                             "FILE.png")
    elif out_path is not None:
        # a comparison is a picture alone: its error names only what it takes
        check_out_file(out_path, [".png"] if len(run_dirs) > 1 else [".png", ".html"],
                       dash="to write the PNG to the standard output")
    # Metrics not as a run writes them (BadInput), or a file that cannot be read or written;
    # any other ValueError in drawing the curves is a bug of ours.
    with input_errors(BadInput, OSError):
        if len(run_dirs) > 1:
            written = write_comparison(list(run_dirs), out_path, log=warn)
        else:
            written = write_curves(run_dirs[0], out_path, follow, log=warn)
    if not to_stdout:                # the standard output holds the picture itself
        click.echo(written)


@main.command(short_help="Draw a computation graph, forward or backward, or its page.",
              epilog="""\b
Examples:
  tinyformer graph --example layernorm --what backward --out ln-backward.png
  tinyformer graph --checkpoint runs/gpt-builtin --prompt "eve has a red kite." \\
      --what backward --depth 1 --out gpt-backward.png
  tinyformer graph --example gpt --fold-repeats --out gpt.html   the interactive page

\b
forward: the graph that computes the loss; backward: the graph that computing the gradients
records, the chain rule made visible. svg, png and pdf need graphviz's dot (without it, the
source is saved as FILE.dot, unless that file exists). A page holds both: pan, zoom, search,
fold a module's box, click a node for its formula, values and gradient.
""")
@click.option("--example", help="A small built-in computation to draw.", type=click.Choice(
    ["mlp", "attention", "layernorm", "gpt", "bert", "transformer"]))
@click.option("--checkpoint", "checkpoint_dir", metavar="DIR", type=DIRECTORY,
              help="Draw a checkpoint's training step on --prompt instead (a BERT guesses "
              "the first token and every seventh after it; an encoder-decoder translates it "
              "by teacher forcing). "
              + CHECKPOINT_HELP)
@click.option("--prompt", type=TEXT, help="With --checkpoint: the text of the batch.")
@click.option("--what", type=click.Choice(["forward", "backward"]), default="forward",
              show_default=True, help="The graph that computes the loss, or the one that "
              "computing its gradients records (a page opens on it).")
@click.option("--data", "show_data", is_flag=True, help="Show each value's norm, min and max.")
@click.option("--grad", "show_grad", is_flag=True, help="Show each gradient's norm, min, max.")
@click.option("--flow", is_flag=True, help="Colour every node by its gradient norm on a log "
              "scale (gradient flow), with a legend.")
@click.option("--max-nodes", type=click.IntRange(min=2), default=1000, show_default=True,
              help="Draw at most this many nodes, those nearest the loss (or the gradients; a "
              "backward graph draws every dL/d box first).")
@click.option("--depth", type=click.IntRange(min=0), default=None, metavar="N",
              show_default="none: no module collapsed",
              help="Collapse each module N levels down into one node: --depth 2 draws a GPT "
              "as its embeddings, each block and the final norm.")
@click.option("--fold-repeats", is_flag=True, help="Collapse each stack of blocks of one "
              "class into one node (decoder.layers: DecoderLayer x N).")
@click.option("--out", "out_path", default="graph.svg", show_default=True,
              metavar="FILE.svg|png|pdf|dot|html", type=FILE,
              help="The picture, its graphviz source (.dot), or the page (replaced if there); "
              "the suffix says which.")
def graph(example, checkpoint_dir, prompt, what, show_data, show_grad, flow, max_nodes, depth,
          fold_repeats, out_path):
    """Draw a computation graph, forward or backward, or make the page of both (.html)."""
    from viz import DotNotFoundError
    from viz.graph import NodeCapError
    from viz.plots import run_name
    from viz.write import GRAPH_SUFFIXES, prepare_step, write_graph
    check_out_file(out_path, GRAPH_SUFFIXES)
    if depth == 0 and str(out_path).lower().endswith(".html"):
        # A page folds the boxes around modules, and the model itself has none.
        raise InputError("--depth 0 folds the whole model into one node, which a page has no "
                         "box for: give --depth 1 or more, or draw it as a picture (--out "
                         "graph.svg)")
    # The options, the checkpoint or the prompt refused (BadInput); any other ValueError in
    # building the model is a bug of ours.
    with input_errors(BadInput):
        compute_step = prepare_step(example, checkpoint_dir, prompt, warn=warn)
    # The step itself (a forward, a loss) refuses nothing of the input, which prepare_step has
    # checked: any error from it is a bug of ours (exit 1), a ValueError too.
    shown = compute_step()
    title = (f"the {example} example: its loss's graph" if example else
             f"{run_name(checkpoint_dir)}: the graph of the loss on {prompt!r}")
    with input_errors(DotNotFoundError, OSError):    # no graphviz: what to install
        try:
            click.echo(write_graph(out_path, shown, what, show_data, show_grad, flow,
                                   max_nodes, depth, fold_repeats, title, log=warn))
        except NodeCapError as e:                    # said in the command's own words
            raise InputError(e.sentence(name=option_name)) from None


# ----- exercises: the course (tinyformer/exercises/runner.py does the work)

class Course(click.Group):
    """The exercises' commands, where a learner's mistakes (no workspace here, a file that is
    not an exercise's) are input errors: one line, exit status 2."""

    def invoke(self, ctx):
        try:
            # OSError: what the machine said (a full disk, a folder the grader may not
            # write), said as one line here so that --json can print its object too.
            with input_errors(runner.RunnerError, WorkspaceError, OSError):
                try:
                    return super().invoke(ctx)
                except click.NoSuchOption as e:
                    # `show -1` is a number to the learner, an option to click: said as the
                    # course says any number that is not an exercise's or a chapter's, as
                    # typed (click's option of `show -15` is '-1').
                    takes = {p.name for p in e.ctx.command.params} if e.ctx else set()
                    typed = typed_number(e.option_name, ctx.meta.get(COMMAND_WORDS, []))
                    if typed is not None:
                        if "ex" in takes:
                            with input_errors(BadInput):     # no such exercise
                                find(typed)
                        if "chapter" in takes:
                            runner.chapter_to_ask(None, typed)
                    raise
        except click.ClickException as error:
            # With --json a grading script reads stdout: it gets the object there too, the
            # error in it, and the one line on stderr as without --json.
            if ctx.meta.get(AS_JSON):
                runner.echo_json_error(ctx.meta.get(WORKSPACE), ctx.meta.get(EXERCISE),
                                       error.format_message())
            raise

    def resolve_command(self, ctx, args):
        # The subcommand's words, kept for the number its parsing may refuse as an option.
        name, command, words = super().resolve_command(ctx, args)
        ctx.meta[COMMAND_WORDS] = list(words)
        return name, command, words


# What the exercises' options found, for Course.invoke to say with --json when a check fails
# before it could be made (ctx.meta is shared by a command's context and its group's); and the
# subcommand's words as typed.
AS_JSON, WORKSPACE, EXERCISE = "exercises.json", "exercises.workspace", "exercises.exercise"
COMMAND_WORDS = "exercises.words"


class AnswersInJson(click.Command):
    """A command whose --json answer a grading script reads even when its arguments are
    refused. Whether --json was given is noted before click reads them: an option click does
    not know (`--bogus`, `-1`) fails there, before any option's callback could say so. So is
    the exercise asked for: click reads the options before the argument N, so that a refused
    --workspace would leave the answer without the exercise it fails."""

    def parse_args(self, ctx, args):
        ctx.meta[AS_JSON] = "--json" in args
        if ctx.meta[AS_JSON]:
            try:            # a copy: click's parser consumes the list it reads
                asked, _, _ = self.make_parser(ctx).parse_args(args=list(args))
                if asked.get("ex") is not None:
                    ctx.meta[EXERCISE] = find(asked["ex"])
            except (click.UsageError, BadInput):    # refused by click or find below, as ever
                pass
        return super().parse_args(ctx, args)


@main.group(cls=Course, short_help="Work through the course, one exercise file at a time.",
            epilog="""\b
Examples:
  tinyformer exercises init my-course && cd my-course    a fresh set of exercise files
  tinyformer exercises show 1        read exercise 1's explanation, then edit its file
  tinyformer exercises watch         check the next unfinished exercise on every save
""")
def exercises():
    """Work through the course: from one-hot vectors to a GPT you assemble and train
    yourself. Each exercise is a file you edit; the runner says what is still wrong."""


def workspace_option(required=True):
    """--workspace, given to the command as the open workspace (None if optional and none)."""
    def open_workspace(ctx, param, directory):
        try:
            ctx.meta[WORKSPACE] = find_workspace(directory, required=required)
        except WorkspaceError as error:          # a folder the learner did not type here
            if from_environment(ctx, param):
                raise WorkspaceError(f"{param.envvar}={directory}: {error}") from None
            raise
        return ctx.meta[WORKSPACE]
    return click.option("--workspace", "-w", "workspace", metavar="DIR", type=DIRECTORY,
                        callback=open_workspace, envvar="TINYFORMER_EXERCISES", show_envvar=True,
                        show_default="the one holding the current directory",
                        help="The exercise workspace.")


class ExerciseName(click.types.StringParamType):
    """An exercise's number or name, as typed; missing, said with where to find them."""

    def get_missing_message(self, param, ctx):
        return (f"Give an exercise's number or name (`{files.command_line('exercises', 'list')}`"
                f" lists them).")


def exercise_argument(required=True):
    """N, given to the command as the exercise (None if not required and not given)."""
    def find_exercise(ctx, param, name):
        with input_errors(BadInput):             # no such exercise; a ValueError is our bug
            ctx.meta[EXERCISE] = find(name) if name is not None else None
        return ctx.meta[EXERCISE]
    return click.argument("ex", metavar="N" if required else "[N]", required=required,
                          type=ExerciseName(), callback=find_exercise)


# A day: longer than any exercise needs, and well within what the operating system's timers
# take (some weeks more and subprocess fails with an OverflowError).
MAX_TIMEOUT = 86_400
timeout_option = click.option("--timeout", type=click.IntRange(min=1, max=MAX_TIMEOUT),
                              default=120, show_default=True, help="Seconds your code may "
                              "run, then stopped (a day at most).")


@exercises.command("init", short_help="Copy fresh exercise files into DIR.",
                   epilog="""\b
Examples:
  tinyformer exercises init                     into ./tinyformer-exercises
  tinyformer exercises init my-course && cd my-course
""")
@click.argument("directory", default="tinyformer-exercises", metavar="[DIR]", type=DIRECTORY)
def exercises_init(directory):
    """Copy fresh exercise files into DIR, new or empty; without DIR, into
    tinyformer-exercises."""
    runner.init(directory)


@exercises.command("list", epilog="""\b
Examples:
  tinyformer exercises list                     in (or below) the workspace
  tinyformer exercises list -w my-course
""")
@workspace_option(required=False)
def exercises_list(workspace):
    """Every exercise, by chapter, done or not done."""
    runner.list_course(workspace)


@exercises.command("show", short_help="Explain exercise N, or the next unfinished one.",
                   epilog="""\b
Examples:
  tinyformer exercises show 1
  tinyformer exercises show one_hot             by its name
  tinyformer exercises show                     the next unfinished exercise
""")
@exercise_argument(required=False)
@workspace_option(required=False)
def exercises_show(ex, workspace):
    """Print exercise N's explanation (N is its number or its name; without N, the next
    unfinished exercise's, as `check` picks it)."""
    runner.show(ex, workspace)


@exercises.command("hint", short_help="One more hint for exercise N, or the next unfinished one.",
                   epilog="""\b
Examples:
  tinyformer exercises hint 1                   again for the next hint
  tinyformer exercises hint                     for the next unfinished exercise
""")
@exercise_argument(required=False)
@workspace_option()
def exercises_hint(ex, workspace):
    """One more hint for exercise N (without N, the next unfinished one) each time you ask."""
    runner.hint(workspace, ex)


@exercises.command("check", cls=AnswersInJson,
                   short_help="Check exercise N, or the next unfinished one.", epilog="""\b
Examples:
  tinyformer exercises check                    the next unfinished exercise
  tinyformer exercises check 3 --timeout 30
  tinyformer exercises check --all              where the whole course stands
  tinyformer exercises check --all --json       one JSON object, for a grading script

To grade, use `check --all` (or --json): it runs every check again. `list` shows what the
workspace's progress file says, which its owner can edit.

Exit status: 0 when the check passes (with --all: all of them), 3 when it does not, 2
when the workspace or the exercise cannot be used.""")
@exercise_argument(required=False)
@click.option("--all", "check_all", is_flag=True,
              help="Check every exercise, one line each with what is wrong (as many at once "
                   "as there are cores); a missing file is its exercise's failure.")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object instead: {"workspace", "exercises": [{"number", '
                   '"name", "passed", "reason", "seconds"}], "passed", "total", "error"}; '
                   'error is null, or why the check could not be made (exit status 2).')
@timeout_option
@workspace_option()
def exercises_check(ex, check_all, as_json, timeout, workspace):
    """Check exercise N (without N, the next unfinished one) and say what is still wrong."""
    if check_all and ex is not None:
        raise InputError("give an exercise N or --all, not both")
    passed = runner.check_all(workspace, timeout, as_json) if check_all else \
        runner.check(workspace, ex, timeout, as_json)
    sys.exit(0 if passed else NOT_YET)


@exercises.command("watch", short_help="Check exercise N again on every save.",
                   epilog="""\b
Examples:
  tinyformer exercises watch                    from the next unfinished exercise on
  tinyformer exercises watch 4
""")
@exercise_argument(required=False)
@timeout_option
@click.option("--max-checks", type=click.IntRange(min=1), hidden=True,
              help="Stop after this many checks (for tests).")
@workspace_option()
def exercises_watch(ex, timeout, max_checks, workspace):
    """Check exercise N (without N, the next unfinished one) again every time you save it;
    when it passes, move on to the next. Ctrl-C stops."""
    try:
        runner.watch(workspace, ex, timeout, max_checks)
    except KeyboardInterrupt:           # it has said "Stopped watching."
        sys.exit(INTERRUPTED)


@exercises.command("predict", short_help="Predict what a chapter's code prints, then run it.",
                   epilog="""\b
Examples:
  tinyformer exercises predict 4 --answer "what you expect it to print"
""")
@click.argument("chapter", metavar="[CHAPTER]", required=False)
@click.option("--answer", type=TEXT, metavar="TEXT",
              help="Your prediction, instead of typing it after the code is shown.")
@workspace_option(required=False)
def exercises_predict(chapter, answer, workspace):
    """Predict, then run: a few lines that use CHAPTER's ideas (without CHAPTER, the next
    unfinished one's); say what they print, then see what they do print, and why."""
    runner.predict(workspace, runner.chapter_to_ask(workspace, chapter), answer)


@exercises.command("solution", short_help="Show exercise N's reference solution.",
                   epilog="""\b
Examples:
  tinyformer exercises solution 1               asks first
  tinyformer exercises solution 1 --yes
""")
@exercise_argument()
@click.option("--yes", "-y", is_flag=True, help="Show it without asking first.")
@workspace_option(required=False)
def exercises_solution(ex, yes, workspace):
    """Show exercise N's reference solution, once you confirm; `list` marks it as seen."""
    runner.solution(workspace, ex, confirmed=yes)


@exercises.command("draw", short_help="Draw what your code for exercise N computes.",
                   epilog="""\b
Examples:
  tinyformer exercises draw 3                   into pictures/ in the workspace
  tinyformer exercises draw scalar_engine --out engine.svg

Exit status: 0 when it is drawn, 3 when your code cannot draw it yet (it says why).""")
@exercise_argument()
@click.option("--out", "out_path", metavar="FILE.png|FILE.svg", type=FILE,
              show_default="pictures/NN_NAME.png in the workspace",
              help="The picture to write, in the format its suffix names.")
@timeout_option
@workspace_option()
def exercises_draw(ex, out_path, timeout, workspace):
    """Draw what your code for exercise N computes: the scalar engine's graph, a backward
    pass, attention maps, and more (your code runs in a process of its own)."""
    failure = runner.draw(workspace, ex, out_path, timeout)
    sys.exit(0 if failure is None else NOT_YET)


@exercises.command("reset", short_help="Restore exercise N's file as it came (yours kept).",
                   epilog="""\b
Examples:
  tinyformer exercises reset 1                  your version kept in .tinyformer/backups/
""")
@exercise_argument()
@workspace_option()
def exercises_reset(ex, workspace):
    """Restore exercise N's file as it came; your version is kept in .tinyformer/backups/."""
    runner.reset(workspace, ex)


# ----- bench: the benchmarks, ours beside PyTorch eager

# The scripts are the repository's (benchmarks/, beside this package), not installed with it.
BENCH_SUITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "benchmarks", "suite.py")


def bench_suite():
    """benchmarks/suite.py as a module: a script of the repository's, not of the package."""
    spec = importlib.util.spec_from_file_location("benchmarks_suite", BENCH_SUITE)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


@main.command(short_help="Time our engine beside PyTorch eager.",
              epilog="""\b
Examples:
  tinyformer bench --quick                  the default benchmarks, briefly: about a minute
  tinyformer bench --case loaded            beside a busy core, each engine as a user runs it
  tinyformer bench --only gpt2 --threads 2  GPT-2 small (124M) generating, ours and PyTorch's
  tinyformer bench --only builtin_run       tinyformer train, quiet and beside a busy core
  tinyformer bench --whole-run --corpus tinyshakespeare.txt          also the whole run

\b
A table per case: one-thread, two-threads (both engines), loaded (a busy core beside; PyTorch
at its defaults, ours as by default). PyTorch's columns need PyTorch installed.""")
@click.option("--only", multiple=True, metavar="NAME",
              show_default="all but those run on request", help="Run only this benchmark "
              "(repeatable); --list names them.")
@click.option("--list", "list_names", is_flag=True, help="Name the benchmarks, marking those "
              "run only on request (--only, or --whole-run), and stop.")
@click.option("--quick", is_flag=True, help="Fewer repetitions: rougher figures, sooner.")
@click.option("--whole-run", is_flag=True, help="Also train the Shakespeare recipe to the end "
              "in both engines (about ten minutes; needs PyTorch, and the tinyshakespeare text: "
              "--corpus).")
@click.option("--corpus", metavar="PATH", type=FILE,
              help="The tinyshakespeare text, which the whole run and the blocks need and the "
              "tokenizer benchmark uses if there (else the built-in corpus); README says how "
              "to download it.",
              show_default="tinyshakespeare.txt in the current directory")
@click.option("--case", "cases", multiple=True, metavar="NAME", show_default="one-thread",
              help="Run this case (repeatable): one-thread, two-threads or loaded.")
@click.option("--threads", type=IntRangeSaysBelow(min=1, below=threads_below(
    "the --case's own count"), words_too=True), metavar="N", show_default="the --case's",
              help="Both engines on N BLAS and PyTorch threads, instead of a --case.")
@click.option("--save", is_flag=True, help="Write each benchmark's JSON to benchmarks/results/, "
              "replacing the file of its name there: the repository's own figures among them.")
def bench(only, list_names, quick, whole_run, corpus, cases, threads, save):
    """Measure our engine beside PyTorch eager: training step, generation, per-op overhead,
    memory, tokenizer, and the whole Shakespeare run."""
    if not os.path.exists(BENCH_SUITE):
        raise InputError("the benchmarks live in the repository's benchmarks/ folder, which "
                         "this installation lacks: clone the repository and `pip install -e .`")
    suite = bench_suite()
    if list_names:
        width = max(map(len, suite.BENCHMARKS))
        click.echo("\n".join(f"{name:<{width}}  on request only" if name in suite.ON_REQUEST
                             else name for name in suite.BENCHMARKS))
        return
    with input_errors():
        suite.check_choices(only, cases, threads, whole_run, quick, corpus, save)
    arguments = ["--only", *only] * bool(only) + ["--case", *cases] * bool(cases)
    arguments += ["--corpus", corpus] * (corpus is not None)
    arguments += ["--threads", str(threads)] * (threads is not None) + ["--quick"] * quick
    arguments += ["--whole-run"] * whole_run + ["--save"] * save
    sys.exit(suite.main(arguments))


def every_command(command=main):
    """The command, and every command and group below it."""
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from every_command(sub)


for command in every_command():
    command.context_class = Context     # its help's examples as the program was run


loading.done()                # the program has loaded: see loading.py
