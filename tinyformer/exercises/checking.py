"""What a checker uses to test a learner's file and to say precisely what is still wrong.

A checker is a function that receives the learner's loaded file (a `Learner`) and raises
`CheckFailure` with a message a learner can act on (its chapter is that of the checks module
it is in, checks/ch01_vectors.py here):

    @exercise("one_hot", "One-hot vectors", hints=[...])
    def check(learner):
        one_hot = learner.function("one_hot")
        got = one_hot(np.array([2, 0]), 3)            # a TODO or a crash becomes a CheckFailure
        expect_array(got, [[0, 0, 1], [1, 0, 0]], call=one_hot.last_call)

Messages name the function and the input it was called with, then what differs: the shape, or
the worst element's index with the expected and the actual value, or, for gradients, which
input's gradient is wrong.
"""

from __future__ import annotations

import ast
import bdb
import codecs
import copy
import gc
import importlib
import importlib.machinery
import importlib.util
import inspect
import io
import linecache
import os
import sys
import tokenize
import traceback
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from tinyautograd import Tensor

from ..files import StrPath, command_line, not_regular, size_said
from ..tokenizers import escape_controls
from .catalogue import Exercise


class CheckFailure(Exception):
    """The learner's answer is not right yet; the message says what differs. `raised`: the
    exception the learner's code raised, where that is the failure (a checker that knows a
    slip by its kind of error reads it, never the message's words)."""

    def __init__(self, message: str, raised: BaseException | None = None) -> None:
        super().__init__(message)
        self.raised = raised


# ---------------------------------------------------------------------------------------------
# Loading the learner's file and calling its functions
# ---------------------------------------------------------------------------------------------

def load_learner_file(path: StrPath, module_name: str = "learner",
                      number: int | None = None) -> Learner:
    """Import the learner's file as a fresh module. A file that does not even run becomes a
    CheckFailure pointing at the line; `number`, the exercise's, goes into its advice."""
    if special_file(path):
        raise CheckFailure(f"{Path(path).name} is not a regular file (a pipe, a device, or a "
                           f"link to one): put your exercise file back in its place")
    path = Path(path).resolve()     # tracebacks name it so; messages match frames by it
    # Loaded as Python source whatever its name ends in: a link to a file without .py (which
    # resolve() follows) would otherwise find no loader at all.
    loader = _SourceOnlyLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        data = path.read_bytes()
        _check_text(path, data, number)
        line, text = e.lineno, e.text
        if line is None:          # a NUL byte: refused before any line is read; find it
            nul = data.find(b"\0")
            if nul >= 0:
                line = data.count(b"\n", 0, nul) + 1
                text = data.splitlines()[line - 1].decode("utf-8", "replace")
        where = f" line {line}" if line is not None else ""
        # The line as the learner wrote it, but for what a terminal would act on (an escape).
        raise CheckFailure(f"{path.name}{where} is not valid Python: {e.msg}\n"
                           f"    {escape_controls((text or '').strip())}") from None
    except MemoryError as e:
        raise out_of_memory(f"{path.name}, as it is imported,", e, path) from None
    except SystemExit:
        raise
    except BaseException as e:          # as run_learner_code says: not only Exceptions
        raise CheckFailure(f"{path.name} fails as soon as it is imported:\n"
                           f"{_where(e, path)}") from None
    return Learner(module, path)


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the file from its source every time, reading and writing no bytecode cache
    (__pycache__/*.pyc). A cache is trusted while the file's size and its modification time in
    whole seconds are unchanged, so a file saved again within the same second at the same size
    (a one-character fix, under `watch`) would run the code as it was before."""

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        try:
            return self.source_to_code(self.get_data(path), path)
        except ValueError as e:     # a NUL byte, in Python 3.10; a SyntaxError in 3.11 on
            raise SyntaxError(str(e)) from None


def special_file(path: StrPath) -> bool:
    """Whether `path`, after following links, is neither a regular file nor a folder (a pipe,
    a device, a socket): reading a pipe waits for a writer forever, a device (/dev/zero) may
    never end. (A folder fails as soon as it is opened, in its own words.)"""
    try:
        what = not_regular(path)
    except OSError:                 # missing, or not to be looked at: reading it says why
        return False
    return what is not None and not os.path.isdir(path)


def _check_text(path: Path, data: bytes, number: int | None) -> None:
    """CheckFailure for a file that is not text in its encoding (UTF-8, unless a coding line
    says otherwise): overwritten by something binary, whose lines are no use to show."""
    # Text, but in an encoding Python does not read source in: Windows' PowerShell 5 writes
    # UTF-16 with `>`. The code is all there; only the saving needs doing again.
    for encoding, bom in (("UTF-32", codecs.BOM_UTF32_LE), ("UTF-32", codecs.BOM_UTF32_BE),
                          ("UTF-16", codecs.BOM_UTF16_LE), ("UTF-16", codecs.BOM_UTF16_BE)):
        if data.startswith(bom):
            raise CheckFailure(f"{path.name} is saved as {encoding}, and Python reads source as "
                               f"UTF-8: save it again as UTF-8 (your editor's encoding "
                               f"setting)")
    try:
        encoding = tokenize.detect_encoding(io.BytesIO(data).readline)[0]
        data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError):
        reset = ["reset"] if number is None else ["reset", str(number)]
        raise CheckFailure(f"{path.name} is not a text file: Python cannot read it as source "
                           f"(UTF-8); put your code back, or "
                           f"`{command_line('exercises', *reset)}` "
                           f"restores the exercise's file as it came") from None


def python_source(path: StrPath) -> str:
    """The text of a Python file, decoded as Python decodes it to run it: UTF-8, unless a
    coding line says otherwise, a BOM dropped. (Path.read_text would use the system's encoding,
    cp1252 on Windows, and fail on a comment in Russian that the file ran with.)"""
    with tokenize.open(path) as f:
        return f.read()


class Learner:
    """The learner's file, loaded: hands out its functions and classes wrapped so that a TODO
    still in place, or an exception, becomes a CheckFailure that names the call."""

    def __init__(self, module: ModuleType, path: StrPath) -> None:
        self.module, self.path = module, Path(path)

    def _get(self, name: str) -> Any:
        if not hasattr(self.module, name):
            raise CheckFailure(f"{self.path.name} has no `{name}`: the checker calls it by that "
                               f"name, so keep the name the exercise gave it.")
        return getattr(self.module, name)

    def function(self, name: str) -> Call:
        """The learner's function (or class: calling it builds one), wrapped."""
        return Call(self._get(name), name, self.path)

    def attribute(self, name: str) -> Any:
        """A plain value or class from the file, unwrapped (for classes whose methods the
        checker calls through `call_method`)."""
        return self._get(name)

    def call_method(self, obj: object, method: str, *args: Any, **kwargs: Any) -> Any:
        """obj.method(*args, **kwargs), with the learner's TODOs and crashes reported."""
        name = f"{type(obj).__name__}.{method}"
        return Call(getattr(obj, method), name, self.path)(*args, **kwargs)


class Call:
    """A learner's function. Calling it runs it; `last_call` then reads like
    `one_hot(ids=[2 0], vocab_size=3)`, for messages."""

    def __init__(self, fn: Callable[..., Any], name: str, path: StrPath) -> None:
        self.fn, self.name, self.path = fn, name, path
        self.last_call = name + "(...)"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.last_call = describe_call(self.name, self.fn, args, kwargs)
        return run_learner_code(self.path, lambda: self.fn(*args, **kwargs), self.last_call)


def run_learner_code(path: StrPath, action: Callable[[], Any], doing: str) -> Any:
    """Run `action()`, which calls into the learner's file at `path`. A TODO still in place
    becomes a CheckFailure naming the function it is in (a closure by the method around it);
    any other error one that names what was being done (`doing`: the call, usually) and the
    lines of the learner's file the error went through."""
    try:
        return action()
    except CheckFailure:
        raise
    except NotImplementedError as e:
        qualname, line = _learner_frame(e, path)
        where = f"{Path(path).name} line {line}" if line else "a TODO"
        # Reached through something else (a Function's backward through its wrapper, say)?
        via = "" if qualname is None or qualname.split(".")[-1] in doing else \
            f" (reached while {doing})"
        # What to do, said: the raise is the placeholder the learner's code takes the place of.
        what = "that line" if line else "its raise"
        raise CheckFailure(f"{_todo_name(qualname, doing)} is not written yet: {where} still "
                           f"raises NotImplementedError{via}; replace {what} with your "
                           f"code.") from None
    except MemoryError as e:
        raise out_of_memory(doing, e, path) from None
    except SystemExit:
        raise                           # exit(): the runner says the learner's code called it
    except BaseException as e:
        # Not only Exceptions: BaseException itself, a class of the learner's own made from
        # it, or KeyboardInterrupt, which only the learner's code raises here (a check runs
        # in a process of its own, which the terminal's Ctrl-C does not reach).
        raise CheckFailure(f"{doing} raised an error:\n{_where(e, path)}", raised=e) from None


def out_of_memory(doing: str, error: MemoryError, path: StrPath) -> CheckFailure:
    """The CheckFailure for a MemoryError while `doing`: past the memory a check may use (the
    limit the runner sets), or the machine's."""
    limit = _memory_limit()
    needed = (f"needed more than the {size_said(limit)} of memory a check may use"
              if limit else "ran out of memory")
    return CheckFailure(f"{doing} {needed}: does a loop keep every array it makes, or is an "
                        f"array far bigger than it should be?\n{_where(error, path)}",
                        raised=error)


def _memory_limit() -> int | None:
    """The address space this process may use, in bytes; None when there is no limit."""
    try:
        import resource
    except ImportError:                 # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def _learner_frame(error: BaseException, path: StrPath) -> tuple[str | None, int | None]:
    """(qualified function name, line) of the innermost frame of the learner's file in the
    error's traceback, or (None, None)."""
    found, path = (None, None), Path(path).resolve()
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if Path(code.co_filename).resolve() == path:
            found = (_qualname(code), tb.tb_lineno)
        tb = tb.tb_next
    return found


def _qualname(code: Any) -> str:
    """The qualified name of the function that runs `code` (`Value.__mul__.<locals>._backward`):
    the code's own since Python 3.11; before, the function's that holds it."""
    if hasattr(code, "co_qualname"):
        return code.co_qualname
    holders = [f for f in gc.get_referrers(code) if getattr(f, "__code__", None) is code]
    return holders[0].__qualname__ if holders else code.co_name


def _todo_name(qualname: str | None, doing: str) -> str:
    """`Value.__mul__.<locals>._backward` -> "the `_backward` inside `Value.__mul__`"; without a
    frame in the learner's file, what was being done."""
    if qualname is None:
        return f"`{doing}`"
    if ".<locals>." in qualname:
        outer, inner = qualname.split(".<locals>.", 1)
        return f"the `{inner}` inside `{outer}`"
    return f"`{qualname}`"


def error_line(error: BaseException, message: str | None = None) -> str:
    """`ValueError: message` (`message` the error's own when None), or the error's name alone
    when there is no message, as Python's traceback writes it (`raise KeyboardInterrupt`)."""
    message = str(error) if message is None else message
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _where(error: BaseException, path: StrPath) -> str:
    """`ValueError: ...` followed by the lines of the learner's file the error went through."""
    lines = []
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename).resolve() == Path(path).resolve():
            source = linecache.getline(frame.filename, frame.lineno).strip()
            lines.append(f"    {Path(path).name} line {frame.lineno}, in {frame.name}: {source}")
    lines = _fold_repeats(lines)
    message = str(error).splitlines()[0] if str(error) else ""
    lines.append(f"    {error_line(error, message)}")
    if isinstance(error, TypeError) and "does not support ufuncs" in message:
        # numpy's words for np.tanh(tensor): a Tensor refuses numpy's elementwise functions.
        lines.append("    A numpy function (np.tanh, np.exp, np.maximum, ...) was given a Tensor: "
                     "use the Tensor's own operations (x.tanh(), x.exp(), x.relu(), ...), "
                     "which record the graph so that gradients flow.")
    if isinstance(error, bdb.BdbQuit):
        # breakpoint() or pdb in the learner's code: the debugger read its commands from the
        # check's empty stdin and quit, which says nothing by itself.
        lines.append(f"    A debugger (breakpoint(), pdb) quit at once: a check runs your code "
                     f"in a process of its own, with nowhere to type the debugger's commands. "
                     f"To step through your code, run the file yourself, `python -i "
                     f"{Path(path).name}` in its folder, and call your function there.")
    return "\n".join(lines)


# The longest run of calls that _fold_repeats looks for repeating: a function calling itself
# is a run of 1, two calling each other (__sub__ and __neg__) a run of 2.
_LONGEST_CYCLE = 8


def _fold_repeats(lines: list[str]) -> list[str]:
    """`lines` with each run of lines that repeats back to back, three times or more, written
    once and followed by how many more times it came: a recursion that never ends is a
    thousand identical calls, which Python's own traceback folds too (it writes three before
    its count, this one)."""
    folded, i = [], 0
    while i < len(lines):
        period, repeats = 1, 1
        for size in range(1, _LONGEST_CYCLE + 1):
            block = lines[i:i + size]
            count = 1
            while lines[i + count * size:i + (count + 1) * size] == block:
                count += 1
            if count >= 3:
                period, repeats = size, count
                break
        folded.extend(lines[i:i + period])
        if repeats > 1:
            above = "line above" if period == 1 else f"{period} lines above"
            folded.append(f"    [the {above} repeated {repeats - 1} more times]")
        i += period * repeats
    return folded


# ---------------------------------------------------------------------------------------------
# Describing values and calls briefly
# ---------------------------------------------------------------------------------------------

# What describe shows whole: an array or a list of at most this many items, a repr of at most
# this many characters (longer, it is cut). Shared with _shown_in_full, which must agree.
_ITEMS_SHOWN, _CHARACTERS_SHOWN = 12, 80


def describe(value: Any, limit: int = _ITEMS_SHOWN) -> str:
    """A short picture of a value for a message: small arrays in full, big ones by shape, and
    a dict or list of weights by the names and shapes of its arrays."""
    if isinstance(value, Tensor):       # written as a call, to paste into Python as it is
        data = describe(value.data, limit)
        return f"Tensor({data})" if value.data.size <= limit else "Tensor" + data[5:]
    if isinstance(value, np.ndarray):
        if value.size <= limit:
            text = np.array2string(value, precision=4, separator=", ", threshold=limit)
            return " ".join(text.split())
        return f"array of shape {value.shape}, {value.dtype}"
    if isinstance(value, dict) and _holds_arrays(value.values()):
        return _by_shape([(f"{k}: ", v) for k, v in value.items()], "{", "}")
    if isinstance(value, (list, tuple)) and _holds_arrays(value):
        return _by_shape([("", v) for v in value], *"[]" if isinstance(value, list) else "()")
    if isinstance(value, (list, tuple)) and len(value) > limit:
        return f"{type(value).__name__} of {len(value)} items"
    if isinstance(value, str) and len(value) > 60:
        return repr(value[:57] + "...")
    text = repr(value)
    return text if len(text) <= _CHARACTERS_SHOWN else text[:_CHARACTERS_SHOWN - 3] + "..."


def _holds_arrays(values: Iterable[Any]) -> bool:
    return any(isinstance(v, (np.ndarray, Tensor)) for v in values)


def _by_shape(items: list[tuple[str, Any]], opening: str, closing: str, shown: int = 6) -> str:
    """`{w_q: (8, 8), w_k: (8, 8), ... 16 in all}`: each (label, value) pair with an array's
    shape in place of its numbers, the first `shown` of them."""
    parts = [label + (str(as_array(v).shape) if isinstance(v, (np.ndarray, Tensor))
                      else describe(v, limit=4)) for label, v in items[:shown]]
    if len(items) > shown:
        parts.append(f"... {len(items)} in all")
    return opening + ", ".join(parts) + closing


def describe_call(name: str, fn: Callable[..., Any], args: Sequence[Any],
                  kwargs: Mapping[str, Any]) -> str:
    """`name(a=..., b=...)`, with the parameter names of the learner's own signature."""
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        parts = [f"{k}={describe(v)}" for k, v in bound.arguments.items() if k != "self"]
    except (TypeError, ValueError):
        parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kwargs.items()]
    return f"{name}({', '.join(parts)})"


# ---------------------------------------------------------------------------------------------
# Comparing answers
# ---------------------------------------------------------------------------------------------

def a_kind(value: Any) -> str:
    """`an ndarray`, `a list`: the name of the value's type, with its article."""
    name = type(value).__name__
    # By the sound: "an int", "an ndarray" (said en-dee-array), "a uint8", "a list".
    vowel = name[0] in "aeioAEIO" or name.startswith("nd")
    return f"{'an' if vowel else 'a'} {name}"


def as_array(value: Any) -> np.ndarray:
    """A Tensor's data, or the value as an array; used before comparing."""
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def of_shape(value: Any, shape: tuple[int, ...]) -> str:
    """`a Tensor of shape (2, 2)`, or `an array of shape ...` for anything else: a message
    says what the learner's code gave."""
    return f"{'a Tensor' if isinstance(value, Tensor) else 'an array'} of shape {shape}"


def expect_array(got: Any, expected: ArrayLike, call: str, what: str = "returned",
                 atol: float = 1e-5, rtol: float = 1e-4, tensor: bool | None = None,
                 dtype: DTypeLike | None = None) -> None:
    """Compare an array (or Tensor) with the expected one; on a difference, raise a
    CheckFailure naming the call, then the dtype, the shape or the worst element.

    `what` says which value this is ("returned", "the gradient with respect to `x`");
    `tensor=True` also demands a tinyautograd Tensor (so that gradients can flow through it),
    `tensor=False` a numpy array; `dtype`, where the exercise names one, that dtype.
    """
    if got is None:
        raise CheckFailure(f"{call} {what} None. Did you forget a `return`?")
    # (Not `getattr(got, "dtype", None) != ...`: numpy reads None as float64, so a list
    # would pass for float64.)
    if dtype is not None and (not hasattr(got, "dtype") or got.dtype != np.dtype(dtype)):
        given = (f"an array of dtype {got.dtype}" if hasattr(got, "dtype")
                 else a_kind(got))
        raise CheckFailure(f"{call} {what} {given}; it should be an array of dtype "
                           f"{np.dtype(dtype)}, as the docstring says (numpy's functions take "
                           f"dtype=np.{np.dtype(dtype)}).")
    if tensor is True and not isinstance(got, Tensor):
        raise CheckFailure(f"{call} {what} {a_kind(got)}; it should be a Tensor, "
                           f"computed with Tensor operations so that gradients flow through it.")
    if tensor is False and isinstance(got, Tensor):
        raise CheckFailure(f"{call} {what} a Tensor; this exercise works on numpy arrays: "
                           f"return an ndarray.")
    given = got
    try:
        shown = as_array(got)           # as it came, for the message (True stays True)
        if shown.dtype.kind in "US":    # astype would read the text "0.5" as the number 0.5
            raise TypeError
        got = shown.astype(np.float64)
    except (TypeError, ValueError):
        raise CheckFailure(f"{call} {what} {describe(got)}, which is not an array of "
                           f"numbers.") from None
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        raise CheckFailure(f"{call} {what} {of_shape(given, got.shape)}; expected shape "
                           f"{expected.shape}.{_shape_cause(got, expected, atol, rtol)}")
    bad = ~np.isclose(got, expected.astype(np.float64), atol=atol, rtol=rtol, equal_nan=True)
    if not bad.any():
        return
    error = np.where(bad, np.abs(np.nan_to_num(got - expected, nan=np.inf)), -1.0)
    worst = np.unravel_index(np.argmax(error), got.shape)
    index = ", ".join(str(int(i)) for i in worst)
    where = f"at [{index}]" if got.ndim else "the value"
    count = int(bad.sum())
    among = ("" if got.size == 1 else        # a single number: nothing else to count
             f"  (the only wrong element of {got.size})" if count == 1 else
             f"  (the worst of {count} wrong elements, out of {got.size})")
    whole = ""
    if 1 < got.size <= 16:      # small enough to see at a glance: show both in full
        whole = (f"\n    expected: {describe(expected, limit=16)}"
                 f"\n    got:      {describe(shown, limit=16)}")
    whole_numbers = ""
    wanted = expected.astype(np.float64)[bad]
    if shown.dtype.kind in "iu" and np.any(wanted != np.round(wanted)):
        # An array of zeros made with dtype=int (or from integer inputs) cuts every fraction
        # written into it: the numbers look nearly right, only whole.
        whole_numbers = (f"\n    Your result is an array of integers ({shown.dtype}), which "
                         f"cannot hold these fractions: make it with a float dtype.")
    flipped = ""
    if np.allclose(got, -expected.astype(np.float64), atol=atol, rtol=rtol):
        # Every element right but for its sign: one subtraction or minus sign is the cause,
        # and a look at the worst element alone does not show it.
        flipped = (f"\n    {'Every element is' if got.size > 1 else 'It is'} minus the "
                   f"expected one: a sign is flipped somewhere (a difference taken the wrong "
                   f"way round, or a minus sign too many or too few).")
    raise CheckFailure(f"{call} {what} a wrong value.\n"
                       f"    {where}: expected {_number(expected[worst])}, got "
                       f"{_number(shown[worst])}{among}{whole}{whole_numbers}{flipped}")


def _summed_axes(shape: tuple[int, ...], target: tuple[int, ...]) -> tuple[int, ...] | None:
    """The axes of `shape` that summing brings down to `target`, as numpy broadcasting would
    have stretched `target` up to `shape`: the leading axes it added, and the axes where
    `target` has size 1 (summed keeping them). None where `target` does not broadcast to
    `shape`, or where nothing needs summing."""
    added = len(shape) - len(target)
    if added < 0 or any(t not in (1, s) for s, t in zip(shape[added:], target)):
        return None
    stretched = [added + i for i, (s, t) in enumerate(zip(shape[added:], target))
                 if t == 1 and s != 1]
    axes = tuple(range(added)) + tuple(stretched)
    # Axes of size 1 alone hold nothing to sum: the numbers are already right.
    return axes if any(shape[a] != 1 for a in axes) else None


def _shape_cause(got: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> str:
    """What a value of the wrong shape but the right numbers is missing, for a message: a sum
    over the axes the expected shape was broadcast along (the gradient of a broadcast input),
    or only axes of size 1 (a sum without keepdims=True). Empty when neither explains it."""
    if not expected.any():      # zeros: summing or reshaping zeros "explains" any shape
        return ""
    axes = _summed_axes(got.shape, expected.shape)
    if axes is not None:
        added = len(got.shape) - len(expected.shape)
        summed = got.sum(axis=axes[:added])         # the leading axes (axis=() sums none)
        summed = summed.sum(axis=tuple(a - added for a in axes[added:]), keepdims=True)
        if np.allclose(summed, expected, atol=atol, rtol=rtol):
            names = (f"axis {axes[0]}" if len(axes) == 1 else
                     f"axes {', '.join(map(str, axes[:-1]))} and {axes[-1]}")
            return (f"\n    Summed over {names} it is exactly the expected value: a value "
                    f"broadcast along an axis (used once for each element along it) gets the "
                    f"sum of the gradients along that axis.")
    squeezed = tuple(n for n in got.shape if n != 1)
    if (squeezed == tuple(n for n in expected.shape if n != 1)
            and np.allclose(got.reshape(expected.shape), expected, atol=atol, rtol=rtol)):
        if got.ndim < expected.ndim:
            fix = "a sum keeps its axis, with size 1, given keepdims=True"
        elif got.ndim > expected.ndim:
            fix = (f"drop the extra ones (a sum without keepdims=True, or a reshape to "
                   f"{expected.shape})")
        else:                               # as many axes, the ones of size 1 elsewhere
            fix = f"reshape to {expected.shape}"
        return f"\n    The numbers are right; only the axes of size 1 differ: {fix}."
    return ""


def _number(x: Any) -> str:
    x = x.item() if hasattr(x, "item") else x
    return f"{x:.6g}" if isinstance(x, float) else repr(x)


def expect_equal(got: Any, expected: Any, call: str, what: str = "returned") -> None:
    """Exact comparison for ints, strings, lists, dicts; the message shows both."""
    if isinstance(got, (np.ndarray, Tensor)) and not isinstance(expected, np.ndarray):
        got = as_array(got).tolist()
    if got is None and expected is not None:
        raise CheckFailure(f"{call} {what} None. Did you forget a `return`?")
    if got != expected:
        raise CheckFailure(f"{call} {what} a wrong value.\n"
                           f"    expected: {describe(expected, limit=40)}\n"
                           f"    got:      {describe(got, limit=40)}")


def expect_gradients(inputs: Mapping[str, Tensor], expected: Mapping[str, ArrayLike], call: str,
                     atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Compare each input Tensor's `.grad` with the expected gradient.

    `inputs` and `expected` are dicts keyed by the input's name; the message says which input's
    gradient is wrong, and where.
    """
    for name, tensor in inputs.items():
        if tensor.grad is None:
            raise CheckFailure(f"after backward through {call}, `{name}` has no gradient: it "
                               f"is not connected to the output (did you leave the Tensor "
                               f"world, e.g. through .data or numpy?).")
        expect_array(tensor.grad, expected[name], call,
                     what=f"gives the gradient with respect to `{name}`", atol=atol, rtol=rtol)


def on_copies(fn: Call, *args: Any, advice: str | None = None, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) on copies of its arguments, which must come back unchanged: a checker
    works out its expected answers from the originals, and a function that wrote into what it
    was given (zeros into an array, say, returning zeros) would spoil the answers it is
    compared with. `advice`: what to do instead, in the exercise's own words (see
    expect_unchanged); without it, to compute into new arrays. The arguments are copied
    together, so two that are one object stay one object in the copies: a checker passes
    separate objects (x and x.copy(), not x twice), or a write through one argument is
    blamed on the other too."""
    given_args, given_kwargs = copy.deepcopy((args, kwargs))
    got = fn(*given_args, **given_kwargs)
    expect_left_as_they_were(fn, (args, kwargs), given_args, given_kwargs, advice=advice)
    return got


def expect_left_as_they_were(fn: Call, before: tuple[Sequence[Any], Mapping[str, Any]],
                             args: Sequence[Any], kwargs: Mapping[str, Any],
                             advice: str | None = None) -> None:
    """A CheckFailure unless fn's last call, fn(*args, **kwargs), left its arguments as they
    were `before`: (args, kwargs), deep-copied before the call. For a checker that must give
    the learner's function the very Tensors whose gradients it reads, and so cannot give it
    copies (on_copies), yet uses those arguments again. `advice` as expect_unchanged's."""
    expect_unchanged(fn.last_call, zip(_argument_names(fn, args, kwargs),
                                       [*before[0], *before[1].values()],
                                       [*args, *kwargs.values()]), advice)


def expect_unchanged(call: str, arguments: Iterable[tuple[str, Any, Any]],
                     advice: str | None = None) -> None:
    """A CheckFailure unless each of `arguments`, (name, as it was before `call`, as the
    learner's code left it), still holds what it did; for a call made other than through a
    `Call` (a backward run by hand). The message names the arguments changed, then says what
    to do instead: `advice`, the exercise's own sentence, where `{name}` stands for the (first)
    argument changed; without it, to compute into new arrays."""
    changed = [(name, given) for name, original, given in arguments
               if not _same(original, given)]
    if not changed:
        return
    names = " and the ".join(name for name, _ in changed)
    now = f", to {describe(changed[0][1])}" if len(changed) == 1 and _shown_in_full(
        changed[0][1]) else ""
    advice = (advice or "Compute the answer into new arrays (or new lists), and leave what "
                        "you are given as it came.").replace("{name}", changed[0][0])
    raise CheckFailure(f"{call} changed the {names} it was given, in place{now}: the caller "
                       f"still needs what it passed in. {advice}")


def _shown_in_full(value: Any) -> bool:
    """Whether `describe` shows `value` whole, as a call's arguments are shown: a small array,
    a short list or tuple (a big one it shows by its shape, which may not have changed;
    anything else, a model say, by a name that says nothing of what changed)."""
    if isinstance(value, (np.ndarray, Tensor)):
        return as_array(value).size <= _ITEMS_SHOWN
    return (isinstance(value, (list, tuple)) and len(value) <= _ITEMS_SHOWN
            and not _holds_arrays(value) and len(repr(value)) <= _CHARACTERS_SHOWN)


def _argument_names(fn: Call, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[str]:
    """The names of fn's parameters that args and then kwargs fill, for messages."""
    try:
        positional = list(inspect.signature(fn.fn).parameters)[:len(args)]
    except (TypeError, ValueError):                     # a builtin without a signature
        positional = []
    positional += [f"argument {i + 1}" for i in range(len(positional), len(args))]
    return [*positional, *kwargs]


def _same(original: Any, given: Any) -> bool:
    """Whether `given`, a deep copy of `original` that the learner's code was given, still holds
    what `original` does: arrays and Tensors element by element, containers item by item,
    other objects (a model, a tokenizer) attribute by attribute."""
    if isinstance(original, Tensor):
        return isinstance(given, Tensor) and _same(original.data, given.data)
    if isinstance(original, np.ndarray):
        return (isinstance(given, np.ndarray) and original.shape == given.shape
                and bool(np.all((original == given) | ((original != original)
                                                       & (given != given)))))
    if isinstance(original, (list, tuple)):
        return (type(given) is type(original) and len(given) == len(original)
                and all(_same(a, b) for a, b in zip(original, given)))
    if isinstance(original, dict):
        return (isinstance(given, dict) and list(given) == list(original)
                and all(_same(original[key], given[key]) for key in original))
    if isinstance(original, (FunctionType, MethodType, BuiltinFunctionType, type)):
        return True                                     # deep copies share functions
    if hasattr(original, "__dict__"):
        return _same(vars(original), vars(given))
    return bool(original == given)


def expect(condition: object, message: str) -> None:
    """A CheckFailure with `message` unless `condition` holds."""
    if not condition:
        raise CheckFailure(message)


# ---------------------------------------------------------------------------------------------
# Refusing a file that calls the implementation it is asked to write
# ---------------------------------------------------------------------------------------------

def refuse_forbidden(learner: Learner, forbidden: Sequence[str]) -> None:
    """A CheckFailure if the learner's file reaches one of the `forbidden` modules (e.g.
    "tinyformer.blocks" in the exercise that asks for an encoder layer): by an import anywhere
    in the file, by an attribute of an imported package (`tinyformer.blocks.EncoderLayer`,
    `tinyformer.Encoder`, whose home is tinyformer.transformer), or by a module-level name
    that holds something from there however it got there. A name is judged by where the thing
    it names lives, so a re-export under another name is caught too."""
    found = _forbidden_use(learner, forbidden)
    if found:
        where, home = found
        raise CheckFailure(_refusal(learner.path, where, home, forbidden))


# What no exercise's file may use, whatever the exercise asks for: the course's own code (its
# checkers work out the expected answers, and its reference solutions are the answers), and
# the deep-learning libraries, which have every part of the course built in (a one-hot, a
# matrix product, a softmax, AdamW).
THE_COURSE_ITSELF = "tinyformer.exercises"
DEEP_LEARNING_LIBRARIES = ("torch", "tensorflow", "jax", "keras")


def refuse_outside_answers(learner: Learner, exercise: Exercise) -> None:
    """A CheckFailure if the learner's file uses the course's own code or a deep-learning
    library (as refuse_forbidden finds a use; a library by its name alone, so that judging a
    file never imports one: torch takes seconds)."""
    found = _forbidden_use(learner, [THE_COURSE_ITSELF])
    what = "the course's own code (its checkers and reference solutions)"
    if not found:
        found = _library_use(learner, DEEP_LEARNING_LIBRARIES)
        what = "a deep-learning library, which has every part of the course built in"
    if found:
        where, used = found
        raise CheckFailure(f"{learner.path.name} uses {used}, in {where}: no exercise may use "
                           f"{what}. Write the answer yourself, from the pieces in the "
                           f"file{_what_else_is_fine(exercise.forbid)}.")


def _forbidden_use(learner: Learner, forbidden: Sequence[str]) -> tuple[str, str] | None:
    """(where, home module) of the first use of a `forbidden` module in the learner's file
    (see refuse_forbidden), where being `line 3 (`the line`)` or `its name `x``; or None."""
    if not forbidden:
        return None
    source = python_source(learner.path)
    found = _forbidden_in_source(ast.parse(source), forbidden)
    if found:
        line, home = found
        return f"line {line} (`{source.splitlines()[line - 1].strip()}`)", home
    for name, value in vars(learner.module).items():
        if name.startswith("__") and name.endswith("__"):
            continue        # set by the import (__loader__ is ours, which ran it), not written
        home = _home(value)
        if _is_forbidden(home, forbidden):
            return f"its name `{name}`", home
    return None


def _library_use(learner: Learner, packages: Sequence[str]) -> tuple[str, str] | None:
    """(where, package) of the first import of one of the top-level `packages` anywhere in the
    learner's file, or of a module-level name holding something from one; or None. Judged by
    names alone: nothing is imported to judge it."""
    source = python_source(learner.path)
    imports = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imports += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imports.append((node.lineno, node.module))
    for line, module in sorted(imports):
        package = module.split(".")[0]
        if package in packages:
            return f"line {line} (`{source.splitlines()[line - 1].strip()}`)", package
    for name, value in vars(learner.module).items():
        if name.startswith("__") and name.endswith("__"):
            continue
        package = (_home(value) or "").split(".")[0]
        if package in packages:
            return f"its name `{name}`", package
    return None


def refuse_forbidden_methods(learner: Learner, methods: Sequence[str]) -> None:
    """A CheckFailure if the learner's file calls one of the `methods` on anything (`x.gelu()`
    in the exercise that asks for gelu): the engine's own version of the answer. Read from the
    source, so that a call the checks never reach is refused too."""
    if not methods:
        return
    source = python_source(learner.path)
    calls = sorted((node.lineno, node.func.attr) for node in ast.walk(ast.parse(source))
                   if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                   and node.func.attr in methods)
    if calls:
        line, name = calls[0]
        text = source.splitlines()[line - 1].strip()
        raise CheckFailure(f"{learner.path.name} calls the engine's own `.{name}()`, in line "
                           f"{line} (`{text}`): this exercise asks you to write {name} "
                           f"yourself, so it may not call it. Build it from other Tensor "
                           f"operations, as the exercise says.")


def _refusal(path: Path, where: str, home: str, forbidden: Sequence[str]) -> str:
    return (f"{path.name} uses {home}, in {where}: this exercise asks you to write that part "
            f"yourself, so it may not use {', '.join(forbidden)}. Build it from the pieces "
            f"in the file{_what_else_is_fine(forbidden)}.")


def _what_else_is_fine(forbidden: Sequence[str]) -> str:
    """What a refused file may still use: numpy always, and what it may of tinyautograd."""
    if "tinyautograd" in forbidden:
        return " and numpy"
    if any(f.startswith("tinyautograd.") for f in forbidden):
        return " (numpy and the rest of tinyautograd are fine)"
    return " (numpy and tinyautograd are fine)"


def _is_forbidden(home: str | None, forbidden: Sequence[str]) -> bool:
    return home is not None and any(home == f or home.startswith(f + ".") for f in forbidden)


def _home(value: Any) -> str | None:
    """The module a value comes from: a module's own name, else its `__module__`."""
    if inspect.ismodule(value):
        return value.__name__
    home = getattr(value, "__module__", None)
    return home if isinstance(home, str) else None


def _resolve(dotted: str) -> str | None:
    """The home module of what `a.b.c` names, importing only as far as it must; None when it
    names nothing."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute, None)
        return _home(value) if value is not None else None
    return None


def _forbidden_in_source(tree: ast.AST, forbidden: Sequence[str]) -> tuple[int, str] | None:
    """(line, home module) of the first place the parsed file names a forbidden module, or
    None. An import of it is the place to quote, wherever it is in the file; failing one, the
    first use of an imported name (`tinyformer.blocks.residual` after `import tinyformer`).
    Only names under the forbidden modules' top-level packages are resolved, so that no other
    module (a slow `import torch`, say) is imported to judge it."""
    roots = {f.split(".")[0] for f in forbidden}
    aliases = {}                            # a name in the file -> the dotted path it stands for
    imported = []                           # (line, dotted path) of every import
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0])
                imported.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                imported.append((node.lineno, f"{node.module}.{alias.name}"))
    for named in (imported, _uses(tree, aliases, frozenset())):
        for line, dotted in sorted(named):
            if dotted.split(".")[0] in roots and _is_forbidden(_resolve(dotted), forbidden):
                return line, _resolve(dotted)
    return None


def _uses(node: ast.AST, aliases: dict[str, str], local: frozenset[str]) -> list[tuple[int, str]]:
    """(line, dotted path) of every use of an imported name under `node`: `B.residual` after
    `import tinyformer.blocks as B` is tinyformer.blocks.residual. A name in `local`, one
    that the enclosing function binds itself (`B, T, C = x.shape`), is not the import; nor is
    a comprehension's own variable inside it."""
    found = []
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        # Defaults, annotations and decorators are read outside the function; only its body
        # sees its own names.
        outside = [*node.args.defaults, *node.args.kw_defaults,
                   *(p.annotation for p in _parameters(node)),
                   *getattr(node, "decorator_list", []), getattr(node, "returns", None)]
        for child in outside:
            if child is not None:
                found += _uses(child, aliases, local)
        body = node.body if isinstance(node.body, list) else [node.body]
        inner = local | _bound_in(node)
        for child in body:
            found += _uses(child, aliases, inner)
        return found
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        # Its loops' variables are its own: `[tf.blocks for tf in items]` reads no module tf.
        # As in Python, they are its names everywhere in it but the first loop's iterable,
        # which is read outside it.
        first, *rest = node.generators
        found += _uses(first.iter, aliases, local)
        inner = local | {name.id for loop in node.generators for name in ast.walk(loop.target)
                         if isinstance(name, ast.Name)}
        inside = [*first.ifs, *(part for loop in rest for part in [loop.iter, *loop.ifs]),
                  *([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt])]
        for child in inside:
            found += _uses(child, aliases, inner)
        return found
    if isinstance(node, (ast.Attribute, ast.Name)):
        chain, name = [], node
        while isinstance(name, ast.Attribute):
            chain.append(name.attr)
            name = name.value
        if isinstance(name, ast.Name) and name.id in aliases and name.id not in local:
            found.append((node.lineno, ".".join([aliases[name.id], *reversed(chain)])))
    for child in ast.iter_child_nodes(node):
        found += _uses(child, aliases, local)
    return found


def _bound_in(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """The names a function binds for itself: its parameters and what its body assigns,
    less those it declares global or nonlocal (functions nested in it are theirs)."""
    bound = {p.arg for p in _parameters(function)}
    declared = set()
    todo = list(function.body) if isinstance(function.body, list) else [function.body]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.comprehension):     # [tf for tf in ...]: tf is the loop's own
            todo.extend([node.iter, *node.ifs])
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            continue
        if not isinstance(node, ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return bound - declared


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[ast.arg]:
    arguments = function.args
    return [a for a in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                        arguments.vararg, arguments.kwarg] if a is not None]


def run_check(exercise: Exercise, path: StrPath) -> str | None:
    """Load the learner's file and run the exercise's checker on it. Returns None when it
    passes, or the failure message."""
    sys.modules.pop("learner", None)
    try:
        learner = load_learner_file(path, number=exercise.number)
        if not learner.path.read_bytes().strip():      # saved empty: no name is missing, all is
            reset = command_line("exercises", "reset", str(exercise.number))
            raise CheckFailure(f"{learner.path.name} is empty: `{reset}` brings back the "
                               f"exercise as it came.")
        refuse_outside_answers(learner, exercise)
        refuse_forbidden(learner, exercise.forbid)
        refuse_forbidden_methods(learner, exercise.forbid_methods)
        exercise.check(learner)
    except CheckFailure as failure:
        return str(failure)
    except MemoryError as error:        # the checker's own, after the learner's code took it all
        return str(out_of_memory("the check", error, path))
    except Exception as error:
        # What the learner's code returned tripped the checker itself (a list where an array
        # was due, say). Say so, and what broke, rather than show the checker's traceback.
        return (f"the checker could not use what your code returned ({CHECKER_ERROR}):\n"
                f"    {error_line(error)}")
    return None


CHECKER_ERROR = "checker error"
