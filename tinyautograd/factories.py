"""Ways to make tensors, named as numpy names them."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import DTypeLike

from . import random
from .engine import DEFAULT_DTYPE, Tensor


def _shape(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def zeros(*shape: int | Sequence[int], dtype: DTypeLike = DEFAULT_DTYPE,
          requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: `zeros(2, 3)` or `zeros((2, 3))`, float32 unless `dtype` says; a
    leaf that requires a gradient with `requires_grad=True` (as for every factory here)."""
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def ones(*shape: int | Sequence[int], dtype: DTypeLike = DEFAULT_DTYPE,
         requires_grad: bool = False) -> Tensor:
    """A tensor of ones: `ones(2, 3)` or `ones((2, 3))`, float32 unless `dtype` says;
    `requires_grad` as for zeros."""
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad, dtype=dtype)


def zeros_like(t: Tensor | np.ndarray, dtype: DTypeLike | None = None,
               requires_grad: bool = False) -> Tensor:
    """Zeros of t's shape, in t's dtype unless `dtype` says otherwise (numpy's, torch's);
    `requires_grad` as for zeros."""
    return zeros(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def ones_like(t: Tensor | np.ndarray, dtype: DTypeLike | None = None,
              requires_grad: bool = False) -> Tensor:
    """Ones of t's shape, in t's dtype unless `dtype` says otherwise (numpy's, torch's);
    `requires_grad` as for zeros."""
    return ones(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def _floating_dtype(dtype, caller):
    """Random draws are real numbers: truncated to integers they would be mostly 0 and -1."""
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"{caller}: dtype must be a floating-point type, got {np.dtype(dtype)}")


def randn(*shape: int | Sequence[int], dtype: DTypeLike = DEFAULT_DTYPE,
          requires_grad: bool = False, generator: np.random.Generator | None = None) -> Tensor:
    """Standard normal samples of `shape` (`randn(2, 3)` or `randn((2, 3))`) from the
    engine's seeded generator (or `generator`), float32 unless `dtype` (a floating-point
    type) says; `requires_grad` as for zeros."""
    _floating_dtype(dtype, "randn")
    rng = random.generator_or_default(generator, "randn")
    data = rng.standard_normal(_shape(shape)).astype(dtype)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def rand(*shape: int | Sequence[int], dtype: DTypeLike = DEFAULT_DTYPE,
         requires_grad: bool = False, generator: np.random.Generator | None = None) -> Tensor:
    """Uniform samples in [0, 1), with randn's arguments (`shape`, `dtype`, `requires_grad`,
    `generator`)."""
    _floating_dtype(dtype, "rand")
    rng = random.generator_or_default(generator, "rand")
    data = rng.random(_shape(shape)).astype(dtype)
    # Rounded to a narrower float, the float64 draws nearest 1 become 1.0 (one in 4096 in
    # float16): they are the largest number below 1 instead, so that no draw reaches 1.
    below_one = np.nextafter(np.array(1, dtype), np.array(0, dtype))
    data = np.minimum(data, below_one)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def arange(*args: float, dtype: DTypeLike | None = None) -> Tensor:
    """numpy's arange, `arange(stop)` or `arange(start, stop[, step])` as `args`: integers
    unless a float is involved (then float32), or `dtype` where it is given."""
    return Tensor(np.arange(*args), dtype=dtype)
