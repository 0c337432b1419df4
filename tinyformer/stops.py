"""How a training run stops when asked: Ctrl-C or SIGTERM (`kill`, `timeout`, a container's or
a cluster's stop) finishes the step in progress and saves a checkpoint; a second of either
stops at once. Outside the loop, SIGTERM stops at once, as Ctrl-C does."""

from __future__ import annotations

import contextlib
import signal
from typing import Callable, Iterator

from . import parallel


class Terminated(KeyboardInterrupt):
    """A run stopped at once by SIGTERM: one that came outside the training loop, or after a
    first Ctrl-C or SIGTERM in it. Handled as the KeyboardInterrupt of a Ctrl-C at that point
    is, but for the exit status, which says SIGTERM."""


# Each signal that stops a run (parallel.STOPPING): what the trainer calls it, what `train`
# returns after a first one, and what a second one raises.
STOPS = {signal.SIGINT: ("Ctrl-C", "interrupted", KeyboardInterrupt),
         signal.SIGTERM: ("SIGTERM", "terminated", Terminated)}


@contextlib.contextmanager
def sigterm_stops_at_once() -> Iterator[None]:
    """Inside, SIGTERM raises Terminated wherever it comes, as Ctrl-C raises KeyboardInterrupt:
    a run stopped while it builds its model, tokenises, forks its workers or evaluates step 0
    then lets go of its lock and its workers and says how to go on, as after Ctrl-C, instead
    of dying where it stands (Python's default for SIGTERM). interrupt_between_steps takes
    SIGTERM over for the loop, and gives it back after."""
    def handler(signum, frame):
        raise Terminated
    with parallel.handling([signal.SIGTERM], handler):
        yield


@contextlib.contextmanager
def interrupt_between_steps(log: Callable[[str], None]) -> Iterator[Callable[[], str | None]]:
    """Ctrl-C, or SIGTERM (`kill`, `timeout`, a container's or a cluster's stop), asks the loop
    to stop after the step in progress (so that the checkpoint holds whole steps); a second of
    either stops at once (KeyboardInterrupt; Terminated for a SIGTERM). Yields a function: the
    outcome the first asked for ("interrupted" or "terminated"), or None while none came."""
    asked = []
    def handler(signum, frame):
        said, outcome, at_once = STOPS[signum]
        if asked:
            raise at_once
        asked.append(outcome)
        log(f"\n{said}: finishing this step and saving a checkpoint ({said} again to stop now)")
    with parallel.handling(parallel.STOPPING, handler):      # (in the main thread only)
        yield lambda: asked[0] if asked else None
