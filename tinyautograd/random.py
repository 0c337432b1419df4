"""The engine's random numbers: one seedable generator for initialisers, dropout and factories.

`manual_seed(s)` makes every later draw repeatable; functions that draw also take an explicit
`generator=` (a `numpy.random.Generator`) for code that wants its own stream.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)   # seeded by default: the same program, the same numbers


def manual_seed(seed: int) -> None:
    """Reset the default generator to a known state."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    return _generator


def get_state() -> dict:
    """The default generator's state, a JSON-friendly dict (save it to resume a run exactly)."""
    return _generator.bit_generator.state


def set_state(state: dict) -> None:
    _generator.bit_generator.state = state
