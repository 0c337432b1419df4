"""Ways to make tensors, named as numpy names them."""

import numpy as np

from . import random
from .engine import DEFAULT_DTYPE, Tensor


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape, dtype=DEFAULT_DTYPE, requires_grad=False):
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def ones(*shape, dtype=DEFAULT_DTYPE, requires_grad=False):
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def zeros_like(t, requires_grad=False):
    return zeros(t.shape, dtype=t.dtype, requires_grad=requires_grad)


def ones_like(t, requires_grad=False):
    return ones(t.shape, dtype=t.dtype, requires_grad=requires_grad)


def randn(*shape, dtype=DEFAULT_DTYPE, requires_grad=False, generator=None):
    """Standard normal samples from the engine's seeded generator (or `generator`)."""
    rng = generator or random.default_generator()
    data = rng.standard_normal(_shape(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def rand(*shape, dtype=DEFAULT_DTYPE, requires_grad=False, generator=None):
    """Uniform samples in [0, 1)."""
    rng = generator or random.default_generator()
    data = rng.random(_shape(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def arange(*args, dtype=None):
    """numpy's arange: integers unless a float is involved (then float32 by default)."""
    return Tensor(np.arange(*args), dtype=dtype)
