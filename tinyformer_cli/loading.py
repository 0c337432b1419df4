"""Ctrl-C while the program loads: importing numpy and the rest takes a moment, and Ctrl-C
then would end the program with a traceback from inside whichever import was running. The
package imports this module first. Until `done()`, at the package's end, a KeyboardInterrupt
that nothing catches is said as Ctrl-C is said at any other time, "stopped by Ctrl-C" on
stderr, and Python exits with status 130 as it does after any uncaught Ctrl-C. Only what
Python prints changes, not what happens: a program that imports the package and catches
KeyboardInterrupt still gets it. That covers every way of starting the command (cli.py, the
installed `tinyformer`, python -m tinyformer_cli): each imports the package first. cli.py
also catches the Ctrl-C that comes before this module is imported, the package's first line;
the other two cannot, as Python imports the package itself."""

import os
import sys
import traceback

INTERRUPTED = 130          # as tinyformer_cli's: 128 + SIGINT

_HERE = os.path.dirname(os.path.abspath(__file__))
_python_says = sys.excepthook


def _said_as_ctrl_c(kind, error, tb):
    # Only a Ctrl-C that came while this package loaded: one in a program whose import of it
    # failed (the hook is then left in place) is the program's, and Python says it.
    if issubclass(kind, KeyboardInterrupt) and any(
            os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _HERE
            for frame, _ in traceback.walk_tb(tb)):
        sys.stderr.write("stopped by Ctrl-C\n")
    else:
        _python_says(kind, error, tb)


sys.excepthook = _said_as_ctrl_c


def done():
    """The program has loaded: from here its own handling says a Ctrl-C, and an uncaught
    exception is printed as Python prints it."""
    if sys.excepthook is _said_as_ctrl_c:
        sys.excepthook = _python_says
