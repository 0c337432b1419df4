"""The engine's random numbers: one seedable generator for initialisers, dropout and factories.

`manual_seed(s)` makes every later draw repeatable; functions that draw also take an explicit
`generator=` (a `numpy.random.Generator`) for code that wants its own stream.

Threads that draw at once (micro-batches computed side by side, each with its dropout) would
take numbers from the one generator in whatever order they happen to run. `seeded(seed)` gives
the calling thread a generator of its own, so each thread's draws repeat whatever the timing;
`drawing_from(generator)` gives it one that is kept from call to call (a trainer's dropout, whose
stream nothing else in the program then moves).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import numpy as np

from .engine import _check

_generator = np.random.default_rng(0)   # seeded by default: the same program, the same numbers
_this_thread = threading.local()        # .generator: the one `seeded` gave this thread


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the default generator to a known state: `seed` a whole number >= 0 (numpy's
    generators take no negative one; torch maps it to a positive one).

    Reseeded in place, as torch does: a generator fetched before (`default_generator()`, or
    what an earlier `manual_seed` returned) draws the new stream too."""
    # None would seed from the operating system: the opposite of a known state.
    _check("manual_seed", "a whole number >= 0", seed=seed)
    _generator.bit_generator.state = np.random.default_rng(seed).bit_generator.state
    return _generator


def default_generator() -> np.random.Generator:
    """The generator draws come from: this thread's own inside `seeded` or `drawing_from`, else
    the shared one."""
    return getattr(_this_thread, "generator", None) or _generator


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[np.random.Generator]:
    """Inside, this thread draws from a generator of its own seeded with `seed`; other threads,
    and this one afterwards, draw as before.

        seeds = default_generator().integers(2**63, size=2)     # drawn in order, in one thread
        # then, in worker i:   with seeded(seeds[i]): loss = model(x_i) ...
    """
    _check("seeded", "a whole number >= 0", seed=seed)     # as manual_seed: None is the OS's
    with drawing_from(np.random.default_rng(seed)) as generator:
        yield generator


@contextlib.contextmanager
def drawing_from(generator: np.random.Generator) -> Iterator[np.random.Generator]:
    """Inside, this thread draws from `generator` (a numpy Generator), which moves on as it is
    drawn from; other threads, and this one afterwards, draw as before. A stream of one's own,
    taken up again where it stopped, that no draw elsewhere in the program moves:

        dropout = np.random.default_rng(0)
        with drawing_from(dropout): loss = model(x) ...       # a step; then, later, the next
    """
    _check_generator("drawing_from", generator)            # a seed: seeded(seed) takes one
    outer = getattr(_this_thread, "generator", None)
    _this_thread.generator = generator
    try:
        yield generator
    finally:
        _this_thread.generator = outer


def generator_or_default(generator: np.random.Generator | None,
                         caller: str) -> np.random.Generator:
    """`generator` where a function that draws was given one, else `default_generator()`. A
    seed in its place is refused (TypeError, naming `caller`): 0 was taken for no generator at
    all, so the draws came from the shared stream, unseeded, and another seed failed at the
    draw, on a method an int lacks."""
    if generator is None:
        return default_generator()
    _check_generator(caller, generator)
    return generator


def _check_generator(caller, generator):
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{caller}: generator must be a numpy Generator, as "
                        f"np.random.default_rng(seed) makes, got {generator!r}")


def get_state() -> dict:
    """The default generator's state, a JSON-friendly dict (save it to resume a run exactly)."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Put the default generator back in a state that `get_state` gave."""
    _generator.bit_generator.state = state
