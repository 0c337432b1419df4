"""Ctrl-C while the program loads: importing numpy and the rest takes a moment, and Ctrl-C
then would end the program with a traceback from inside whichever import was running. The
package imports this module first, which stops it instead as Ctrl-C does at any other time:
"stopped by Ctrl-C" on stderr, exit status 130; and calls `done()` at its end, from where
click's handling takes over. That covers every way of starting it (cli.py, the installed
`tinyformer`, python -m tinyformer_cli): each imports the package first."""

import signal
import sys

INTERRUPTED = 130          # as tinyformer_cli's: 128 + SIGINT


def _stopped(number, frame):
    sys.stderr.write("stopped by Ctrl-C\n")
    raise SystemExit(INTERRUPTED)     # out of the import, which exits quietly with it


# Not where Ctrl-C is ignored (a shell's `&` starts a program so) or handled already, nor in a
# thread other than the main one, which cannot set a signal handler.
_catching = signal.getsignal(signal.SIGINT) is signal.default_int_handler
if _catching:
    try:
        signal.signal(signal.SIGINT, _stopped)
    except ValueError:
        _catching = False


def done():
    """The program has loaded: Ctrl-C is Python's KeyboardInterrupt again."""
    global _catching
    if _catching:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _catching = False
