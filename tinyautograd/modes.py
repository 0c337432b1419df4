"""Modes: is the graph being recorded, and are NaNs being hunted?

The switches that change what the engine does while it runs, each a context manager (or a
decorator) that gives back what it found on the way out: `no_grad`, `enable_grad` and
`set_grad_enabled` (record a graph or not), `detect_anomaly` (stop at the first NaN or Inf,
naming the op and the user's line), and `annotate` (attributes given to every node recorded
inside it, for pictures of the graph). Each thread has modes of its own. `engine.py` reads
them; nothing here knows what a Tensor is.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import traceback
from typing import Any, Callable, TypeVar, overload

import numpy as np


class _Mode(threading.local):
    """Each thread has its own modes, as in PyTorch: a worker computing one micro-batch's
    gradients records its graph while another thread runs under no_grad. (These class
    attributes are every new thread's starting values.)"""
    grad_enabled = True
    anomaly = False
    annotations = None     # attributes given to every node recorded now (see `annotate`)


_mode = _Mode()

# A function decorated with a mode, of the type it was given: a type checker reads its own
# hints through `@no_grad()`, where a hint of Callable (or Any) left its result unknown.
FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])



class _GradMode:
    """Context manager (or decorator) that turns graph recording on or off inside it, and
    gives back the mode it found on the way out."""

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)

    def __enter__(self) -> None:
        self.prev = _mode.grad_enabled
        _mode.grad_enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _mode.grad_enabled = self.prev

    def __call__(self, fn: FunctionT) -> FunctionT:
        mode = self.mode
        if inspect.isgeneratorfunction(fn):
            return _generator_in_mode(fn, mode)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(mode):
                return fn(*args, **kwargs)

        return wrapper              # type: ignore[return-value]  # fn's own signature


def _generator_in_mode(fn, mode):
    """A generator function `fn` decorated with a grad mode. Calling it only makes the generator;
    its body runs at each next(), send() or throw(), after the call has returned: each of those
    runs inside the mode, and the caller's own mode is back in between, as torch does."""

    @functools.wraps(fn)
    def generator(*args, **kwargs):
        steps = fn(*args, **kwargs)
        resume, value = steps.send, None          # how to run fn's next step, and with what
        while True:
            with _GradMode(mode):
                try:
                    response = resume(value)
                except StopIteration as end:      # fn returned: so does this generator
                    return end.value
            try:
                resume, value = steps.send, (yield response)
            except GeneratorExit:                 # closed: fn's generator closes in the mode
                with _GradMode(mode):
                    steps.close()
                raise
            except BaseException as error:        # thrown in: passed on to fn's generator
                resume, value = steps.throw, error

    return generator


class set_grad_enabled(_GradMode):
    """`set_grad_enabled(False)` turns recording off at once, as in torch; as a context manager
    it gives back the mode it found on exit; as a decorator it only wraps the function."""

    def __init__(self, mode: bool) -> None:
        super().__init__(mode)
        self.prev = _mode.grad_enabled
        _mode.grad_enabled = self.mode

    def __enter__(self) -> None:
        pass                                   # switched already, by the call

    def __call__(self, fn: FunctionT) -> FunctionT:
        _mode.grad_enabled = self.prev         # a decorator switches nothing until fn runs
        return super().__call__(fn)


@overload
def no_grad(fn: None = None) -> _GradMode: ...
@overload
def no_grad(fn: FunctionT) -> FunctionT: ...


def no_grad(fn: Callable | None = None) -> Any:
    """`with no_grad():` computes without recording a graph: faster, and nothing to free.
    Also a decorator, `@no_grad()` or `@no_grad` (which passes the function as `fn`)."""
    return _GradMode(False) if fn is None else _GradMode(False)(fn)


@overload
def enable_grad(fn: None = None) -> _GradMode: ...
@overload
def enable_grad(fn: FunctionT) -> FunctionT: ...


def enable_grad(fn: Callable | None = None) -> Any:
    """Recording on again inside it (within no_grad); a decorator too, as no_grad (`fn`)."""
    return _GradMode(True) if fn is None else _GradMode(True)(fn)


def is_grad_enabled() -> bool:
    """Whether ops record a graph now, in this thread (False inside no_grad)."""
    return _mode.grad_enabled


class annotate:
    """Context manager: every graph node recorded inside it gets these attributes.

    The one hook for what only pictures of the graph need; the chain rule never reads them.
    `nn.record_module_paths` gives each node the `module_path` of the module whose forward made
    it, and `backward(create_graph=True)` gives the nodes of each backward formula the
    `backward_of` node they differentiate. Nested annotations add to the outer ones.
    """

    def __init__(self, **attributes: Any) -> None:
        self.attributes = attributes

    def __enter__(self) -> None:
        self.outer = _mode.annotations
        _mode.annotations = {**(self.outer or {}), **self.attributes}

    def __exit__(self, *exc: object) -> None:
        _mode.annotations = self.outer


class AnomalyError(RuntimeError):
    """A NaN or Inf appeared while `detect_anomaly()` was on."""


class detect_anomaly:
    """Inside this context, the first NaN or Inf raises `AnomalyError`.

    Forward results are checked as they are computed, gradients as backward produces them, and
    the error names the op and the line of user code that created it. Slow: for debugging.
    A forward op that only passes on an infinity it was given is not an anomaly: a causal mask's
    `scores.masked_fill(mask, -inf)` and the softmax after it are how attention is written
    (torch's detect_anomaly checks no forward at all); an Inf made from finite inputs (log of
    0, an exp that overflows) and every NaN are.
    numpy's own warnings of a division by zero or an overflow are off inside it: they would
    point into the engine's formulas, where the error names the op and your line.
    """

    def __enter__(self) -> None:
        self.prev = _mode.anomaly
        _mode.anomaly = True
        self.numpy_warnings = np.errstate(all="ignore")
        self.numpy_warnings.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.numpy_warnings.__exit__(*exc)
        _mode.anomaly = self.prev


# The folder of tinyautograd's own files, with the separator after it: a file of the user's
# beside it whose name starts as the folder's does (tinyautograd_notes.py) is not inside it.
# (normcase: Windows names the same file in any case, and with either separator.)
_PACKAGE_DIR = os.path.normcase(os.path.join(os.path.dirname(os.path.abspath(__file__)), ""))


def _user_line():
    """The innermost stack frame outside tinyautograd: where the user asked for the op."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.normcase(os.path.abspath(frame.filename)).startswith(_PACKAGE_DIR):
            where, line = f"{frame.filename}:{frame.lineno}", (frame.line or "").strip()
            return f'{where}: "{line}"' if line else where   # (no source at a REPL: <stdin>)
    return "<unknown>"


def _has_nan_or_inf(array):
    return array.dtype.kind in "fc" and not np.isfinite(array).all()


def _made_nan_or_inf(result, operands):
    """Whether a forward op's `result` array is an anomaly, given its operands' arrays: it holds
    a NaN, or an infinity that none of its operands held (one passed on is the user's own,
    a mask's -inf). Checks the operands only when the result is not all finite."""
    if not _has_nan_or_inf(result):
        return False
    return bool(np.isnan(result).any()) or not any(_has_nan_or_inf(x) for x in operands)
