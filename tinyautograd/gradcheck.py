"""Check analytic gradients against finite differences.

For a function f and a random direction v over its output, compare, for every input element x_i,

    analytic:  d(v . f)/dx_i            from one backward pass
    numeric:   (v . f(x + h e_i) - v . f(x - h e_i)) / 2h      central differences

A random v checks every output at once: a wrong gradient for any of them shows up unless the
errors cancel exactly, which a random direction makes vanishingly unlikely. Use float64 inputs:
in float32 the differences drown in rounding.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from typing import Callable

import numpy as np

from .engine import Tensor, _repeats_elements, enable_grad, grad, no_grad


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree."""


def _as_inputs(inputs):
    """The inputs as a list, and the positions of those to check: the Tensors that require a
    gradient, which must be float64. Other inputs (indices, masks, constants) go to fn as they
    are. As in torch, the inputs may also come as one tuple or list: gradcheck(fn, (x, y))."""
    if len(inputs) == 1 and isinstance(inputs[0], (tuple, list)):
        inputs = inputs[0]
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise TypeError("gradcheck: no input is a Tensor with requires_grad=True, so there is "
                        "no gradient to check")
    for i in checked:
        t = inputs[i]
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs must be float64 (got {t.dtype}); in float32 "
                            f"finite differences drown in rounding error")
        # Each element is nudged in place, alone: a read-only array refuses it (numpy's bare
        # "assignment destination is read-only"), and one that repeats its elements (a stride
        # of 0, as np.broadcast_to makes, or overlapping windows) would move several with one,
        # as torch refuses.
        if not t.data.flags.writeable or _repeats_elements(t.data):
            raise ValueError(f"gradcheck: input {i} (shape {t.shape}) holds a read-only or "
                             f"broadcast array, whose elements cannot be nudged one at a time; "
                             f"pass a copy, Tensor(a.copy(), requires_grad=True, "
                             f"dtype=np.float64)")
    return inputs, checked


def _check_settings(who, eps, atol, rtol):
    """eps, the step of the differences, > 0 (at 0 they divide by zero); atol and rtol >= 0 (a
    negative tolerance fails every gradient, the right ones too); all finite numbers."""
    if isinstance(eps, bool) or not (isinstance(eps, numbers.Real) and 0 < eps < math.inf):
        raise ValueError(f"{who}: eps must be a finite number > 0, got {eps!r}")
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, bool) or not (isinstance(value, numbers.Real)
                                           and 0 <= value < math.inf):
            raise ValueError(f"{who}: {name} must be a finite number >= 0, got {value!r}")


def _outputs(result):
    """fn's result as a tuple of Tensors: one, or several (a tuple or list), as torch takes."""
    outputs = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    for out in outputs:
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got "
                            f"{type(out).__name__}")
    return outputs


def _project(outputs, directions, constants_too=False):
    """v . f: the sum over the outputs of (output * its direction).sum(), a Tensor. Outputs
    that do not require a gradient are constants, left out unless `constants_too`; None when
    nothing is left."""
    terms = [(out * d).sum() for out, d in zip(outputs, directions)
             if constants_too or out.requires_grad]
    return functools.reduce(operator.add, terms) if terms else None


def gradcheck(fn: Callable[..., Tensor | tuple[Tensor, ...]], *inputs: Tensor | object,
              eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0,
              raise_exception: bool = True) -> bool:
    """True when fn's analytic gradients match central differences for every element of every
    input that requires a gradient.

    `inputs` are fn's arguments, as torch's gradcheck takes them (or one tuple of them): the
    Tensors that require a gradient are checked, and must be float64 (in float32 the
    differences drown in rounding: a TypeError says so) and hold arrays whose elements can be
    nudged one at a time (not read-only, not broadcast: a ValueError says so); the others
    (indices, masks) are passed as they are. fn returns a Tensor or a tuple of them, projected
    on a random direction drawn with `seed`. Each element is moved by `eps` (> 0) either way,
    and an analytic value a passes against the numeric n when |a - n| <= atol + rtol |n|
    (torch's rule and defaults; atol, rtol >= 0).

    On a mismatch, raises GradcheckError naming the input (its position among all of them),
    the worst element's index, and the analytic and numeric values (or returns False with
    raise_exception=False).
    """
    _check_settings("gradcheck", eps, atol, rtol)
    return _check(fn, inputs, eps, atol, rtol, seed, raise_exception, "gradcheck: gradient")


def _check(fn, inputs, eps, atol, rtol, seed, raise_exception, wrong):
    """gradcheck's work; a mismatch's message starts with `wrong`, which says whose
    derivatives they are (gradgradcheck's are second derivatives)."""
    inputs, checked = _as_inputs(inputs)
    outputs = _outputs(fn(*inputs))
    rng = np.random.default_rng(seed)
    directions = [Tensor(rng.standard_normal(out.shape), dtype=np.float64) for out in outputs]

    def projected(*xs):
        with no_grad():
            return float(_project(_outputs(fn(*xs)), directions, constants_too=True).data)

    total = _project(outputs, directions)
    if total is None:                      # no output requires a gradient: every one is zero
        analytic = [None] * len(checked)
    else:
        analytic = grad(total, [inputs[i] for i in checked])
    for i, a in zip(checked, analytic):
        x = inputs[i]
        a = np.zeros(x.shape) if a is None else a.data
        numeric = np.zeros(x.shape)
        for j in np.ndindex(x.shape):      # each element nudged in place, in x's own array
            saved = x.data[j]
            try:
                x.data[j] = saved + eps
                up = projected(*inputs)
                x.data[j] = saved - eps
                down = projected(*inputs)
            finally:                       # fn may raise: the input is the user's again
                x.data[j] = saved
            numeric[j] = (up - down) / (2 * eps)
        error = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
        error = np.where(np.isnan(error), np.inf, error)   # a NaN either side: the worst misfit
        if error.size and error.max() > 0:
            worst = np.unravel_index(np.argmax(error), x.shape)
            message = (f"{wrong} of input {i} (shape {x.shape}) is wrong at index "
                       f"{tuple(int(k) for k in worst)}: analytic {a[worst]:.8g}, numeric "
                       f"{numeric[worst]:.8g}")
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def gradgradcheck(fn: Callable[..., Tensor | tuple[Tensor, ...]], *inputs: Tensor | object,
                  eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 1,
                  raise_exception: bool = True) -> bool:
    """Check second derivatives: gradcheck the function x -> (d(v . fn(x))/dx) . w, whose
    gradient is a Hessian-vector product, computed through grad(..., create_graph=True).
    Inputs, outputs and settings (`eps`, `atol`, `rtol`, `raise_exception`) as for
    gradcheck; `seed` draws v and w. A mismatch's message says it is the second-order check."""
    _check_settings("gradgradcheck", eps, atol, rtol)
    inputs, checked = _as_inputs(inputs)
    rng = np.random.default_rng(seed)
    v = [Tensor(rng.standard_normal(out.shape), dtype=np.float64)
         for out in _outputs(fn(*inputs))]
    w = [Tensor(rng.standard_normal(inputs[i].shape), dtype=np.float64) for i in checked]

    def first_derivative_projected(*xs):
        with enable_grad():    # gradcheck evaluates this under no_grad; it needs its graph
            wrt = [xs[i] for i in checked]
            total = sum((x * 0.0).sum() for x in wrt)   # keeps the result in the graph
            first = _project(_outputs(fn(*xs)), v)
            if first is None:                             # fn is constant: so is its gradient
                return total
            grads = grad(first, wrt, create_graph=True)
            for g, wi in zip(grads, w):
                if g is not None:
                    total = total + (g * wi).sum()
            return total

    return _check(first_derivative_projected, inputs, eps, atol, rtol, seed, raise_exception,
                  "gradgradcheck: second-order gradient (a Hessian-vector product)")
