"""`python quiet_when_stopped.py SCRIPT ARGUMENTS...` runs a benchmark script as `python
SCRIPT ARGUMENTS...` does, but ends quietly (exit status 130) on the interrupt with which the
suite stops it: the suite is what the user stopped, and it says so once ("stopped by
Ctrl-C"), not each script with a traceback. So too when the reader of the output has gone
(`tinyformer bench | head`): as the suite itself ends then.

It imports nothing of the project, so that what a script measures (its memory, its start) is
its own."""
import os
import runpy
import sys


def ended_quietly_if_the_reader_goes(run):
    """run()'s result, its output flushed; but when the reader of the output has gone
    (`python benchmarks/suite.py | head`), exit status 141, as a program that SIGPIPE ends,
    without a traceback; and what Python would flush at exit goes nowhere instead of failing
    again. The suite ends so, and each benchmark script it runs."""
    try:
        try:
            return run()
        finally:              # also on sys.exit: what is still buffered, while it can be told
            sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)


if __name__ == "__main__":
    # Asked what it is, or given no script or one not there: said in a few lines, not a
    # traceback of the missing script's (the help to stdout, status 0; a usage error to
    # stderr, status 2, as `python SCRIPT` ends on a missing SCRIPT).
    if len(sys.argv) >= 2 and sys.argv[1] in ("-h", "--help"):
        ended_quietly_if_the_reader_goes(lambda: print(__doc__))
        sys.exit(0)
    if len(sys.argv) < 2 or not os.path.isfile(sys.argv[1]):
        missing = f"no such file: {sys.argv[1]!r}\n" if len(sys.argv) >= 2 else ""
        sys.stderr.write(f"{missing}usage: python {os.path.basename(sys.argv[0])} SCRIPT "
                         f"ARGUMENTS... (--help says more)\n")
        sys.exit(2)
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))  # as `python SCRIPT` sets it
    try:
        ended_quietly_if_the_reader_goes(
            lambda: runpy.run_path(sys.argv[0], run_name="__main__"))
    except KeyboardInterrupt:
        sys.exit(130)
