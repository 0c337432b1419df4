"""The engine's random numbers: one seedable generator for initialisers, dropout and factories.

`manual_seed(s)` makes every later draw repeatable; functions that draw also take an explicit
`generator=` (a `numpy.random.Generator`) for code that wants its own stream.

Threads that draw at once (micro-batches computed side by side, each with its dropout) would
take numbers from the one generator in whatever order they happen to run. `seeded(seed)` gives
the calling thread a generator of its own, so each thread's draws repeat whatever the timing.
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
    """The generator draws come from: this thread's own inside `seeded`, else the shared one."""
    return getattr(_this_thread, "generator", None) or _generator


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[np.random.Generator]:
    """Inside, this thread draws from a generator of its own seeded with `seed`; other threads,
    and this one afterwards, draw as before.

        seeds = default_generator().integers(2**63, size=2)     # drawn in order, in one thread
        # then, in worker i:   with seeded(seeds[i]): loss = model(x_i) ...
    """
    _check("seeded", "a whole number >= 0", seed=seed)     # as manual_seed: None is the OS's
    outer = getattr(_this_thread, "generator", None)
    _this_thread.generator = np.random.default_rng(seed)
    try:
        yield _this_thread.generator
    finally:
        _this_thread.generator = outer


def get_state() -> dict:
    """The default generator's state, a JSON-friendly dict (save it to resume a run exactly)."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    """Put the default generator back in a state that `get_state` gave."""
    _generator.bit_generator.state = state
