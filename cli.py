"""The `tinyformer` command line (also `python cli.py ...`).

The contract (../shared/CONTRACT.md) fixes its commands: train, generate, graph, attention,
tokenize, exercises, bench. They arrive with the issues that build them; exit status is 0 on
success, 2 on a usage or input error (one line, no traceback), 1 on an internal error.
"""

import sys

import click

import tinyautograd

EPILOG = """\b
Examples:
  tinyformer --version
  tinyformer --help
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG)
@click.version_option(tinyautograd.__version__, prog_name="tinyformer")
def main():
    """tinyformer: see every gradient of a Transformer, on a numpy autograd engine."""


if __name__ == "__main__":
    sys.exit(main())
