"""The `tinyformer` command line (also `python cli.py ...`).

The contract (../shared/CONTRACT.md) fixes its commands: train, generate, graph, attention,
tokenize, exercises, bench. Exit status is 0 on success, 2 on a usage or input error (one line
on stderr, no traceback), 1 on an internal error (a bug: the traceback is kept, to report it).
"""

import contextlib
import sys

import click

import tinyautograd

EPILOG = """\b
Examples:
  tinyformer train                          a small GPT on the built-in corpus (about a minute)
  tinyformer generate --checkpoint runs/gpt --prompt "alice has"
  tinyformer tokenize show "Hello, world"   how a text splits into tokens
  tinyformer COMMAND --help                 each command's options and examples
"""


class InputError(click.ClickException):
    """Bad input from the user: printed as one line `Error: ...`, exit status 2."""
    exit_code = 2


@contextlib.contextmanager
def input_errors(*kinds):
    """Turn the library's complaints about the user's input (ValueError by default) into an
    InputError, so they reach the user as one line. Used only around code whose errors are the
    input's fault; anything else stays a traceback with exit status 1."""
    try:
        yield
    except (kinds or (ValueError,)) as e:
        raise InputError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(tinyautograd.__version__, prog_name="tinyformer")
def main():
    """tinyformer: see every gradient of a Transformer, on a numpy autograd engine."""


if __name__ == "__main__":
    sys.exit(main())
