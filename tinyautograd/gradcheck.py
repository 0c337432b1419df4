"""Check analytic gradients against finite differences.

For a function f and a random direction v over its output, compare, for every input element x_i,

    analytic:  d(v . f)/dx_i            from one backward pass
    numeric:   (v . f(x + h e_i) - v . f(x - h e_i)) / 2h      central differences

A random v checks every output at once: a wrong gradient for any of them shows up unless the
errors cancel exactly, which a random direction makes vanishingly unlikely. Use float64 inputs:
in float32 the differences drown in rounding.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .engine import Tensor, enable_grad, grad, no_grad


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree."""


def _as_inputs(inputs):
    for t in inputs:
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise TypeError("gradcheck: every input must be a Tensor with requires_grad=True")
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs must be float64 (got {t.dtype}); in float32 "
                            f"finite differences drown in rounding error")
        t.data = np.asarray(t.data, order="C")   # contiguous, so reshape(-1) below is a view
    return list(inputs)


def gradcheck(fn: Callable[..., Tensor], *inputs: Tensor, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0, raise_exception: bool = True) -> bool:
    """True when fn's analytic gradients match central differences for every input element.

    On a mismatch, raises GradcheckError naming the input, the worst element's index, and the
    analytic and numeric values (or returns False with raise_exception=False).
    """
    inputs = _as_inputs(inputs)
    out = fn(*inputs)
    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(out.shape)

    def projected(*xs):
        with no_grad():
            return float((fn(*xs).data * direction).sum())

    analytic = grad((out * Tensor(direction, dtype=np.float64)).sum(), inputs)
    for i, (x, a) in enumerate(zip(inputs, analytic)):
        a = np.zeros(x.shape) if a is None else a.data
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)          # a view: nudging it nudges the input in place
        for j in range(flat.size):
            saved = flat[j]
            flat[j] = saved + eps
            up = projected(*inputs)
            flat[j] = saved - eps
            down = projected(*inputs)
            flat[j] = saved
            numeric.reshape(-1)[j] = (up - down) / (2 * eps)
        error = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
        error = np.where(np.isnan(error), np.inf, error)   # a NaN either side: the worst misfit
        if error.size and error.max() > 0:
            worst = np.unravel_index(np.argmax(error), x.shape)
            message = (f"gradcheck: gradient of input {i} (shape {x.shape}) is wrong at index "
                       f"{tuple(int(k) for k in worst)}: analytic {a[worst]:.8g}, numeric "
                       f"{numeric[worst]:.8g}")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def gradgradcheck(fn: Callable[..., Tensor], *inputs: Tensor, seed: int = 1,
                  **tolerances: float) -> bool:
    """Check second derivatives: gradcheck the function x -> (d(v . fn(x))/dx) . w, whose
    gradient is a Hessian-vector product, computed through backward(create_graph=True)."""
    inputs = _as_inputs(inputs)
    rng = np.random.default_rng(seed)
    out = fn(*inputs)
    v = Tensor(rng.standard_normal(out.shape), dtype=np.float64)
    w = [Tensor(rng.standard_normal(x.shape), dtype=np.float64) for x in inputs]

    def first_derivative_projected(*xs):
        with enable_grad():    # gradcheck evaluates this under no_grad; it needs its graph
            grads = grad((fn(*xs) * v).sum(), list(xs), create_graph=True)
            total = sum((x * 0.0).sum() for x in xs)   # keeps the result in the graph
            for g, wi in zip(grads, w):
                if g is not None:
                    total = total + (g * wi).sum()
            return total

    return gradcheck(first_derivative_projected, *inputs, seed=seed, **tolerances)
