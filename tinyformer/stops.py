"""How a training run stops when asked: Ctrl-C, SIGTERM or SIGHUP (its terminal closed) finishes
the step in progress and saves a checkpoint; a second of any stops at once. Outside the loop,
SIGTERM and SIGHUP stop at once, as Ctrl-C does."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import sys
from typing import Callable, Iterator, NamedTuple

from . import parallel


class Terminated(KeyboardInterrupt):
    """A run stopped at once by SIGTERM: one that came outside the training loop, or after a
    first stop in it. Handled as the KeyboardInterrupt of a Ctrl-C at that point is, but for
    the exit status, which says SIGTERM."""


class HungUp(KeyboardInterrupt):
    """A run stopped at once by SIGHUP, as Terminated is by SIGTERM."""


def leave_the_terminal() -> None:
    """After the SIGHUP of a closed terminal (its window closed, its ssh session dropped), point
    this process's stdout and stderr at /dev/null where they go to that terminal or to a pipe.
    Every write to the terminal would fail (EIO) and turn a clean stop into a crash. A pipe's
    reader on it (`| tee train.log`, `| less`, `| grep`) got the same SIGHUP: it is gone, or
    about to be (which cannot be told before it dies), and every write to its pipe would fail
    as well (EPIPE: the run would exit 141 without its checkpoint). A closed terminal is seen
    as one of stdin, stdout and stderr hung up; a SIGHUP sent by hand (`kill -HUP`) to a run
    whose terminal works changes nothing, and the run says there how it stops. Output that goes
    to a file (`> train.log`) goes on there. A stream with no file behind it (a test's, a
    notebook's) is left alone."""
    if not _terminal_hung_up():
        return
    for descriptor in _descriptors(sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):
            if _hung_up(descriptor) or stat.S_ISFIFO(os.fstat(descriptor).st_mode):
                null = os.open(os.devnull, os.O_WRONLY)
                try:
                    os.dup2(null, descriptor)
                finally:
                    os.close(null)


def closed_terminal(error: OSError) -> bool:
    """Whether `error` is a write to this process's terminal that closed: EIO, with one of
    stdin, stdout and stderr hung up. The kernel marks a closing terminal hung up before it
    sends the SIGHUP, so a write in between fails before the stop is asked for."""
    return error.errno == errno.EIO and _terminal_hung_up()


def _terminal_hung_up() -> bool:
    """Whether this process's terminal closed: one of stdin, stdout and stderr is hung up."""
    return any(map(_hung_up, _descriptors(sys.stdin, sys.stdout, sys.stderr)))


def _descriptors(*streams) -> list[int]:
    """The file descriptors behind `streams`, leaving out those with none."""
    found = []
    for stream in streams:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            found.append(stream.fileno())
    return found


def _hung_up(descriptor: int) -> bool:
    """Whether `descriptor` is a terminal that hung up: asked for its settings, it answers EIO,
    where a working terminal gives them and anything else (a file, a pipe, /dev/null) answers
    ENOTTY. A terminal that closes is marked hung up before the kernel sends its SIGHUP: the
    SIGHUP of a closed terminal finds it so here."""
    try:
        import termios          # here: POSIX only, as SIGHUP is
    except ImportError:         # Windows: no terminal to hang up; an EIO there is the disk's
        return False
    try:
        termios.tcgetattr(descriptor)
    except termios.error as error:
        return error.args[0] == errno.EIO
    return False


class Stop(NamedTuple):
    """What a signal that stops a run is: what the trainer calls it, what `train` returns after
    a first one, what a second one raises, and what is done first, as it comes."""
    said: str
    outcome: str
    at_once: type[KeyboardInterrupt]
    first: Callable[[], None] = lambda: None


# Each signal that stops a run (parallel.STOPPING). Windows has no SIGHUP.
STOPS = {signal.SIGINT: Stop("Ctrl-C", "interrupted", KeyboardInterrupt),
         signal.SIGTERM: Stop("SIGTERM", "terminated", Terminated)}
if hasattr(signal, "SIGHUP"):
    STOPS[signal.SIGHUP] = Stop("SIGHUP", "hung up", HungUp, leave_the_terminal)


def said(outcome: str) -> str:
    """The name of the signal after which `train` returned `outcome`."""
    return next(stop.said for stop in STOPS.values() if stop.outcome == outcome)


def outcome_of(stop: BaseException | None) -> str:
    """The outcome of the signal whose stop at once raised `stop`: "interrupted" for any other
    (Python's own Ctrl-C)."""
    return next((row.outcome for row in STOPS.values() if type(stop) is row.at_once),
                "interrupted")


@contextlib.contextmanager
def signals_stop_at_once() -> Iterator[None]:
    """Inside, SIGTERM and SIGHUP raise Terminated and HungUp wherever they come, as Ctrl-C
    raises KeyboardInterrupt: a run stopped while it builds its model, tokenises, forks its
    workers or evaluates step 0 then lets go of its lock and its workers and says how to go on,
    as after Ctrl-C, instead of dying where it stands (Python's default for both).
    interrupt_between_steps takes them over for the loop, and gives them back after."""
    def handler(signum, frame):
        STOPS[signum].first()
        raise STOPS[signum].at_once
    with parallel.handling([signum for signum in STOPS if signum != signal.SIGINT], handler):
        yield


class StopsAsked:
    """What interrupt_between_steps yields. Called: the outcome the first stop asked for
    ("interrupted", "terminated" or "hung up"), or None while none came. `finishing(work)`:
    a block after the step (an evaluation) that a first stop waits for too, and says so."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.asked: list[str] = []
        self.work = "step"              # what a first stop waits for now

    def __call__(self) -> str | None:
        return self.asked[0] if self.asked else None

    def handle(self, signum: int, frame: object) -> None:
        """The handler of each signal that stops a run."""
        stop = STOPS[signum]
        stop.first()
        if self.asked:
            raise stop.at_once
        self.asked.append(stop.outcome)
        self.log(f"\n{stop.said}: finishing this {self.work} and saving a checkpoint "
                 f"({stop.said} again to stop now)")

    @contextlib.contextmanager
    def finishing(self, work: str) -> Iterator[None]:
        """Inside, a first stop says it finishes `work` ("evaluation"), not a step: the step
        is done, and an evaluation (--eval-iters 200) can take as long as many steps."""
        self.work = work
        try:
            yield
        finally:
            self.work = "step"


@contextlib.contextmanager
def interrupt_between_steps(log: Callable[[str], None]) -> Iterator[StopsAsked]:
    """Ctrl-C, SIGTERM (`kill`, `timeout`, a container's or a cluster's stop) or SIGHUP (the
    terminal closed) asks the loop to stop after the step in progress (so that the checkpoint
    holds whole steps), and its evaluation if one is due (StopsAsked.finishing); a second of
    any stops at once (the row's exception in STOPS). Yields a StopsAsked: called, the outcome
    the first asked for ("interrupted", "terminated" or "hung up"), or None while none came."""
    asked = StopsAsked(log)
    with parallel.handling(parallel.STOPPING, asked.handle):      # (in the main thread only)
        yield asked
