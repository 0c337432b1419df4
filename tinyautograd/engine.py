"""The engine: Tensor, the graph it records, and reverse-mode differentiation.

Reading order: this file (Tensor, Function, and `backward`, the chain rule over the graph), then
`ops.py` (every primitive op, its formula, its forward and its backward), `functional.py` (the
fused kernels, written the same way: cross-entropy, layer norm, RMS norm, SwiGLU, squared ReLU
and soft-capping; and dropout, embedding, row_sum), `nn.py`, `optim.py`, and `gradcheck.py`
(how every gradient is checked against finite differences). `modes.py` holds the switches this
file reads: no_grad and its kin, detect_anomaly, annotate.

Every operation is a `Function`: a `forward` that computes the result with numpy, and a
`backward` that turns the gradient of the result into the gradients of the inputs. When an
input requires a gradient, the result keeps a node (`grad_fn`) that names the Function and its
inputs; following those links from a result back to the leaves gives the computation graph.
`Tensor.backward()` walks that graph in reverse topological order and applies the chain rule at
every node.

Each backward is written once, with the operations that numpy arrays and Tensors share (`+ - *
/ @`, `.sum`, `.reshape`, `.swapaxes`, indexing). Normally the engine hands it numpy arrays, so
it costs what numpy costs; under `backward(create_graph=True)` it hands it Tensors, and the same
formula is recorded like any other computation: the gradient has a graph of its own, which
gives second derivatives and a backward graph that can be drawn.

Contents, the core first, each part built on the one before:
    Function       `Context` (a node of the graph) and `Function` (forward, backward, and
                   `apply`, which runs forward and records the node)
    Tensor         the array that records its graph; its operators and methods, most of them
                   one `apply` each
    Reverse mode   `_run_backward` (the chain rule in `_topological_order`'s reverse),
                   `_input_grads` and `_sum_to` (one node's step), `_accumulate` (into
                   `.grad`), and `grad()`
    Functions of several tensors: `concat`, `stack`, `where`
Then what a first reading can skip: apply's checks and errors, the checks on Functions
written outside tinyautograd, how numbers and arrays become operands (dtypes, float16),
Tensor's small helpers, PyTorch's names answered with ours, and the argument checks that nn,
optim and random share.
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import math
import numbers
import operator
import weakref
from typing import (TYPE_CHECKING, Any, Callable, Iterator, Literal, NoReturn, Sequence, TypeVar,
                    Union)

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

# (Some only re-exported: the package takes no_grad and its kin from here.)
from .modes import (AnomalyError, _has_nan_or_inf, _made_nan_or_inf, _mode,  # noqa: F401
                    _user_line, annotate, detect_anomaly, enable_grad, is_grad_enabled, no_grad,
                    set_grad_enabled)

# One axis, several (a tuple, or a list as torch's dim=[0, 1]), or all (None)
Axis = Union[int, tuple[int, ...], list[int], None]
Operand = Union["Tensor", ArrayLike]       # what an operator takes: a Tensor, array or number
TensorT = TypeVar("TensorT", bound="Tensor")    # a method's own tensor: a Parameter stays one

DEFAULT_DTYPE = np.float32


# A clock that ticks at every recorded op and every change of a tensor's array in place (by
# `x += y` outside a graph, an optimizer's step, an initialiser, load_state_dict): each notes
# its own tick (Context._recorded_at, Tensor._changed_at), so a change came after an op was
# recorded exactly when its tick is the later one. (next() on a count is atomic: threads that
# record and change at once still get ticks of their own.)
_clock = itertools.count(1)


# --------------------------------------------------------------------------------------------
# Function: one differentiable operation, its forward and its backward side by side.


class ShapeError(ValueError):
    """Operands whose shapes do not fit the operation."""


class Context:
    """A node of the graph: the Function that was applied, its inputs, and whatever its forward
    stored for its backward (as attributes, `ctx.anything = ...`).

    Public, for backward formulas, viz and custom ops:
      `fn` (the Function class), `name`, `inputs` (the input Tensors), `needs_input_grad` (a
      bool per input: which gradients its backward is asked for; under grad(), only those on
      a path to a wanted input), `output` (the Tensor it produced), `freed` (and
      `freed_by_error`: the error's type, where a backward that raised freed it);
      `operands` and `result`: the inputs and the output as a backward computes with them:
      their numpy arrays, or, under `create_graph`, the Tensors themselves, so that the formula
      is recorded and connects to the forward graph; `create_graph`: which of the two it is.
      `array(i)`: input i's numpy array in both modes, for masks and signs (constants).
      All three refuse a tensor changed in place after the op was recorded (`x += 1`, an
      optimizer's step), whose gradient would be silently wrong, as torch refuses it. Read
      what a backward uses through them, never through `inputs[i].data`. `operands` checks
      an op's inputs together, so it refuses a little more than torch, which keeps only the
      inputs that its gradients need (of `w * c`, with only w requiring a gradient, c alone).
    Set by `annotate`, for pictures and anomaly errors only (None when not recorded):
      `backward_of`: for a node recorded while `backward(create_graph=True)` ran the backward
      of another node (its formula, and summing the result back to the input's shape), that
      other node. The `+` that sums the gradients reaching a tensor by several paths has none.
      `module_path`: the dotted path of the module whose forward made this node
      (`"decoder.layers.0.attn"`, `""` for the root module itself), inside `nn.record_module_paths`.
    These names, and `created_at` (where the op was called, under detect_anomaly), are the
    engine's: a custom Function's ctx refuses a value of its own under one of them (the
    engine's names: `_ENGINE_NAMES`).
    """

    # The engine writes its own names on a node (`freed`, `needs_input_grad`, `created_at`, an
    # annotation) straight into `__dict__`, never as `ctx.freed = ...`: the context of a
    # Function written outside tinyautograd (_CheckedContext) refuses that spelling for those
    # names, to catch its author's slip, and must not refuse the engine.
    freed = False
    freed_by_error: str | None = None
    backward_of: Context | None = None
    module_path: str | None = None
    _recorded_at = 0      # the engine's clock when the op was recorded (see Tensor._changed_at)

    def __init__(self, fn: type[Function], inputs: tuple[Tensor, ...],
                 needs_input_grad: tuple[bool, ...]) -> None:
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = needs_input_grad

    @property
    def name(self) -> str:
        """The op's name, its Function's (`Function.name()`): "mul", "tanh", ..."""
        return self.fn.name()

    @property
    def output(self) -> Tensor:
        """The Tensor this op produced (held weakly, so that a node does not keep it alive)."""
        # A weak reference: the output holds its node, so a strong one would make a cycle that
        # keeps big arrays alive until the garbage collector runs. Whenever backward reaches
        # this node, the output is alive (backward got here through it).
        return self._output()

    @property
    def create_graph(self) -> bool:
        """Whether this backward is being recorded (`backward(create_graph=True)` or
        `grad(..., create_graph=True)`): then `grad`, `operands` and `result` are Tensors."""
        # The engine runs every backward with recording on exactly when create_graph is True.
        return _mode.grad_enabled

    @property
    def operands(self) -> tuple[Tensor, ...] | tuple[np.ndarray, ...]:
        """The op's inputs, for its backward: their numpy arrays, or under `create_graph` the
        Tensors themselves. Refused for an input changed in place since the op was recorded."""
        self._check_unchanged(self.inputs, 0)
        return self.inputs if _mode.grad_enabled else tuple(t.data for t in self.inputs)

    @property
    def result(self) -> Tensor | np.ndarray:
        """The op's output, as `operands` gives the inputs: its array, or under `create_graph`
        the Tensor. Refused where it was changed in place since the op was recorded."""
        self._check_unchanged((self.output,), len(self.inputs))
        return self.output if _mode.grad_enabled else self.output.data

    if TYPE_CHECKING:
        # For type checkers alone: a forward keeps values of its own as ctx's attributes, of
        # any name (`ctx.scale = value`), which mypy and pyright refused on a `ctx: Context`
        # without it. (Not at run time: every op's node would pay a call per attribute.)
        def __setattr__(self, name: str, value: Any) -> None: ...

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails, so reading a stored attribute costs no more.
        # torch's save_for_backward is not offered: saved numpy arrays would be constants to a
        # backward under create_graph, and its second derivative would miss them.
        if name in ("save_for_backward", "saved_tensors"):
            raise AttributeError(f"ctx.{name} is not needed: the engine keeps a Function's "
                                 f"inputs itself: read them in backward with ctx.operands (or "
                                 f"ctx.array(i) for one), and keep anything else as "
                                 f"ctx.scale = value", name=name, obj=self)
        if name == "mark_dirty":     # torch's way to declare a forward's change of an input
            raise AttributeError("ctx.mark_dirty is not offered: a forward may not change its "
                                 "inputs in place (a Function written outside tinyautograd "
                                 "gets read-only views of them); compute and return a new "
                                 "array", name=name, obj=self)
        raise AttributeError(f"'Context' object has no attribute {name!r}",   # (checked or not)
                             name=name, obj=self)

    def array(self, i: int) -> np.ndarray:
        """Input i's numpy array in both modes: for masks and signs, constants to the graph."""
        self._check_unchanged(self.inputs[i:i + 1], i)
        return self.inputs[i].data

    def _check_unchanged(self, tensors: Sequence[Tensor], first: int) -> None:
        """Refuse a saved tensor that was changed in place since this op was recorded: the
        backward would compute with the new values, and no error would ever show it. Tensor
        `first + i` of the inputs, then the output, is `tensors[i]`."""
        for i, t in enumerate(tensors, first):
            if t._changed_at is None or t._changed_at[0] <= self._recorded_at:
                continue
            what = f"input {i}" if i < len(self.inputs) else "output"
            where = self.__dict__.get("created_at")
            where = (f"the op was called at {where}" if where else
                     "run the forward under detect_anomaly() to see where the op was called")
            raise RuntimeError(
                f"backward of {self.name}: its {what} (shape {t.shape}) was changed in place "
                f"after {self.name} used it, so its gradient would be wrong; change it after "
                f"backward, or make a new tensor (x = x + y, not x += y); {where}")

    def free(self) -> None:
        """Drop the saved arrays and the links to the inputs, so their memory can go."""
        fn, state = self.fn, self.__dict__
        state.clear()
        state["fn"], state["inputs"], state["freed"] = fn, (), True   # (into __dict__: above)

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Function:
    """Base class of every differentiable operation; also the public way to write your own.

    Subclass it and write two static methods:

        class Cube(Function):                       # y = x^3;  dy/dx = 3 x^2

            @staticmethod
            def forward(ctx, x):                    # numpy arrays in, a numpy array out
                return x ** 3

            @staticmethod
            def backward(ctx, grad):                # dL/dy in, one dL/d(input) per input out
                (x,) = ctx.operands
                return grad * 3 * x ** 2

        y = Cube.apply(x)

    Positional arguments of `apply` are the differentiable inputs (Python numbers and numpy
    arrays become constant Tensors); keyword arguments are settings handed to `forward` as they
    are (a Tensor that requires a gradient is refused there: it would get none). `backward`
    returns one gradient per positional input (None where there is none). A gradient may have
    the shape the input was broadcast to: the engine sums it back.

    The backward is written once, with what numpy arrays and Tensors have in common. `grad`,
    `ctx.operands` and `ctx.result` are numpy arrays in an ordinary backward pass, and Tensors
    under `create_graph=True`, when the same lines are recorded as a graph: that makes every
    op twice differentiable. Arrays that forward keeps on ctx (`ctx.mask = ...`) are constants
    to the graph: fine for masks and indices, but a value that depends on the inputs (a
    softmax inside the op, say) must be computed again from `ctx.operands` when
    `ctx.create_graph` is True, or its second derivative would be missing. An input's or the
    output's own array kept on ctx (`ctx.x = x`) is refused by a backward under create_graph,
    for that reason: read it through `ctx.operands` or `ctx.result`.

    A forward that hands back its first input's array, or a view of it, sets the class
    attribute `views_input = True`, as Reshape does: a change in place to either is then
    caught in a backward that reads the other (in a Function written outside tinyautograd,
    undeclared too), and one to a view of a leaf that requires a gradient is refused.

    The arrays a Function written outside tinyautograd gets (its inputs' in forward; grad,
    `ctx.operands`, `ctx.result` and `ctx.array(i)` in backward) are read-only views: a change
    in place (`a *= 2`) raises, where it would silently change the caller's tensor, or another
    tensor's gradient. Compute a new array instead.
    """

    # What a ValueError from numpy in the op's forward means, to report it as a ShapeError:
    # "broadcast", the operands' shapes do not broadcast together (the elementwise ops);
    # "shapes", the shapes do not fit, the only way its numpy call fails (reshape, concat);
    # None, nothing about shapes: the op's own message, or numpy's about values, passes as it is.
    shape_errors: Literal["broadcast", "shapes"] | None = None

    # True for a Function whose forward may hand back its first input's array, or a view of
    # it (reshape, transpose, indexing): the result then shares that input's stamp of changes
    # in place (Tensor._changed_at), where it does, so that a change through either counts
    # for both. (Declared by the op, not detected: checking every result would cost every op.)
    views_input = False

    # Whether the slips a Function's author can make are checked as it runs: its nodes guard
    # the engine's names (_CheckedContext), and a keyword Tensor that requires a gradient is
    # refused. None means by where it is written: on outside the package tinyautograd, off for
    # the package's own ops, which run for every op of every model. An op of another library,
    # tested and on a hot path, may say False (tinyformer's Attention does: the checks cost
    # generation about 1%).
    guarded: bool | None = None
    _context = Context

    # Not read by type checkers: mypy takes a class whose __new__ returns NoReturn for a
    # function, and refused `Cube.apply` as "has no attribute apply". To them Cube(x) is then
    # object's constructor given an argument, refused too.
    if not TYPE_CHECKING:
        def __new__(cls, *args: Any, **kwargs: Any) -> NoReturn:
            # A Function is its two static methods, never an object. Cube(x) and Cube()(x), as
            # torch's old style wrote an op, said "Cube() takes no arguments" and "'Cube'
            # object is not callable", which do not say what to call instead.
            raise TypeError(f"{cls.__name__} is a Function, not to be instantiated or called: "
                            f"run it with {cls.__name__}.apply(...)")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("guarded") is None:
            cls.guarded = not cls.__module__.startswith("tinyautograd.")
        cls._context = _CheckedContext if cls.guarded else Context

    @classmethod
    def name(cls) -> str:
        """The op's name in reprs, errors and pictures: the class name in lower case."""
        return cls.__name__.lower()

    # forward(ctx, *arrays, **settings), written with *args: Any alone because that is the one
    # signature that mypy and pyright let every op's own forward(ctx, x, ...) override.
    @staticmethod
    def forward(*args: Any, **settings: Any) -> np.ndarray:
        """The result array from ctx and the inputs' arrays (and the settings given to apply)."""
        # Reached only by a subclass that wrote none: say so, and what to write, rather than
        # a bare NotImplementedError (as nn.Module's forward does). apply passes ctx first.
        raise _missing(args[0] if args else None, "forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        """dL/d(input) per input (a tuple, or one value for one input) from grad = dL/dy:
        numpy arrays in an ordinary backward, Tensors under create_graph. `ctx` is the Context
        that forward saved what it needs on."""
        raise _missing(ctx, "backward(ctx, grad)")

    @classmethod
    def apply(cls, *inputs: Tensor | ArrayLike, **settings: Any) -> Tensor:
        """Run the op: `forward` on the inputs' arrays, and where some input requires a
        gradient, a graph node that `backward` will go through. Positional `inputs` are the
        differentiable ones (numbers and arrays become constant Tensors); keyword `settings`
        go to `forward` as they are. Returns the result as a Tensor."""
        # This runs for every op of every model (a 4-layer GPT runs ~55 per generated token, on
        # arrays of one row, where this bookkeeping costs more than numpy's work), so it is
        # written for speed: plain loops, the mode read once, the graph recorded only when some
        # input requires a gradient.
        for x in inputs:
            if not isinstance(x, Tensor):
                inputs = _as_inputs(cls, inputs)
                break
        mode = _mode
        if mode.grad_enabled:
            if settings and cls.guarded:
                for key, value in settings.items():
                    if isinstance(value, Tensor) and value._requires_grad:
                        raise _keyword_tensor(cls, key)
            needs_input_grad = tuple([t._requires_grad for t in inputs])
        else:
            needs_input_grad = (False,) * len(inputs)
        ctx = cls._context(cls, inputs, needs_input_grad)
        if mode.annotations:                    # only inside `annotate`
            ctx.__dict__.update(mode.annotations)   # (the engine's names: see Context)
        arrays = [t.data for t in inputs]
        if cls.guarded:                  # a user's forward may not write into the caller's
            arrays = _read_only(arrays)  # arrays: it gets read-only views of them
        try:
            data = cls.forward(ctx, *arrays, **settings)
        except ShapeError:
            raise
        except ValueError as error:
            _raise_shape_error(cls, inputs, error)
            raise                              # an op's own error, or numpy's about values
        except TypeError:
            if cls.guarded:
                _raise_if_forward_does_not_take(cls, ctx, arrays, settings)
            raise
        if data.__class__ is not np.ndarray:
            data = _forward_result(cls, data)
        viewed = None
        if cls.guarded and not data.flags.writeable:
            viewed = _writeable_again(data, inputs)
        out = Tensor._make(data)
        if cls.views_input:
            _stamped_with_what_it_views(out, inputs[0])
        elif viewed is not None:
            # A user's forward that hands back a view of an input without saying views_input:
            # it shares that input's stamp all the same, or a change in place through either
            # would go unseen by a backward that reads the other, its gradient silently wrong.
            out._sharing_stamp_with(viewed)
        if True in needs_input_grad:
            kind = data.dtype.kind
            if kind == "f":
                out._requires_grad = True
                out.grad_fn = ctx
                ctx._output = weakref.ref(out)
                ctx._recorded_at = next(_clock)
            elif kind == "c":
                raise _complex_in_graph(cls, data.dtype)
            # An integer or boolean result (indices, a mask) has no gradient: it stays outside
            # the graph, as torch leaves a custom Function's integer outputs and as astype does
            # here. Recorded, it would require a gradient that no integer tensor may have, and
            # backward would send its integer "gradient" on to the inputs.
        if mode.anomaly:
            ctx.__dict__["created_at"] = _user_line()
            if _made_nan_or_inf(out.data, [t.data for t in inputs]):
                raise AnomalyError(f"{cls.name()}: the output of shape {out.shape} contains NaN "
                                   f"or Inf; created at {ctx.created_at}")
        return out


# --------------------------------------------------------------------------------------------
# Tensor
# (`_numpy_keywords`, first, decorates its methods; Tensor's other helpers, and how
# numbers and arrays become its operands, come after the reverse mode.)


# PyTorch's keyword arguments that numpy, and so this engine, spells otherwise (t.sum(dim=1)),
# and what to write instead, for the error of a method or function marked `_numpy_keywords`.
_TORCH_KEYWORDS = {
    "dim": "axis", "keepdim": "keepdims", "correction": "ddof",
    "unbiased": "ddof (ddof=1 for unbiased=True, ddof=0 for False)",
    "dim0": "swapaxes(a, b), the two axes positionally",      # torch's transpose(dim0, dim1)
    "dim1": "swapaxes(a, b), the two axes positionally",
    "gradient": "grad: backward(grad=g), or backward(g)",     # torch's t.backward(gradient=g)
}

# numpy's keywords that its functions pass on to a Tensor's method (np.sum(x) calls x.sum with
# out=None), which the engine has no use for, and what to write instead of a value for them.
_NUMPY_ONLY_KEYWORDS = {
    "out": "the result is a new Tensor, returned (y = x.sum())",
    "dtype": "cast the tensor first, x.astype(dtype)",
}


# A decorated function, of the same type as given: a type checker reads its own hints through
# the decorator (an unhinted decorator made x.sum(), x.mean(), ta.concat, F.softmax Any).
FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])


def _numpy_keywords(function: FunctionT) -> FunctionT:
    """`function`, whose keywords are numpy's (axis, keepdims, ddof), answering one of
    PyTorch's that it lacks with Python's TypeError and what to write here, as __getattr__
    answers PyTorch's method names. One table for every method that takes an axis; the usual
    call costs one more call and one test."""
    own = frozenset(inspect.signature(function).parameters)

    @functools.wraps(function)
    def with_hint(*args, **kwargs):
        if kwargs and not own.issuperset(kwargs):
            for name in kwargs:                       # the first, in the call's order
                if name in _TORCH_KEYWORDS:           # (none of them is a numpy keyword)
                    raise TypeError(f"{function.__qualname__}() got an unexpected keyword "
                                    f"argument {name!r}: that is PyTorch's; here, "
                                    f"{_TORCH_KEYWORDS[name]}")
            # numpy's functions call the method of their name on what is not an array:
            # np.sum(x) is x.sum(axis=None, out=None), np.mean(x) adds dtype=None. Their
            # defaults are taken, so np.sum(x) is x.sum(), a Tensor with its graph (as
            # np.transpose(x) is x.transpose()): no numbers are read past the graph, which is
            # what __array__ refuses. A value for them is refused, saying what to write.
            for name, instead in _NUMPY_ONLY_KEYWORDS.items():
                if name in kwargs and name not in own:
                    if kwargs[name] is not None:
                        raise TypeError(f"{function.__qualname__}() takes no {name}=: "
                                        f"{instead}")
                    del kwargs[name]
        return function(*args, **kwargs)
    return with_hint                # type: ignore[return-value]  # function's own signature


class Tensor:
    """An n-dimensional array that remembers how it was computed.

        x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)   # (2, 2), float32
        y = (x ** 2).sum()              # each op records a node: y = sum(x^2)
        y.backward()                    # the chain rule, back through the nodes
        x.grad                          # dy/dx = 2x: array([[2., 4.], [6., 8.]])

    `Tensor(data, requires_grad=False, dtype=None)`: `data` is anything np.asarray takes (a number,
    a list, an array); with `requires_grad` the ops on it record a graph and backward fills its
    `.grad`. Floats become float32 unless `dtype` says otherwise (gradcheck uses float64); integers
    and booleans keep their dtype. A numpy array of the final dtype is used as it is, without a
    copy; a Tensor keeps its dtype (as np.asarray and torch.as_tensor keep theirs). Dtypes combine
    as in torch: a Python number takes the tensor's dtype where it can (an int32 tensor + 1 is
    int32); an integer tensor with a float (number or tensor) computes in the float's dtype, float32
    for a number, and `/`, `exp`, `mean` and the other ops with fractional results give float32 from
    integers.
    """

    # Numpy must hand `array + tensor` to Tensor.__radd__ instead of looping over the tensor.
    __array_ufunc__ = None

    # Defaults live on the class, so creating a tensor only sets what differs.
    _grad = None          # .grad: a numpy array of the same shape, filled by backward
    _grad_tensor = None   # .grad_tensor: .grad as a Tensor with its graph, while they agree
    grad_fn: Context | None = None    # the node that produced this tensor; None for a leaf
    _requires_grad = False
    name: str | None = None           # optional label, shown by viz
    _hooks = ()
    _retains_grad = False
    # When this tensor's array was last changed in place, on the engine's clock (`_clock`): a
    # backward must not use a tensor changed after its op was recorded, since the gradient
    # would be silently wrong (torch counts changes per tensor, `_version`, for the same
    # check). Tensors that share one array (a view, `detach`) share one stamp, a one-item list
    # made when first needed ([0] until a change); None: never changed.
    _changed_at = None

    def __init__(self, data: ArrayLike | Tensor, requires_grad: bool = False,
                 dtype: DTypeLike | None = None) -> None:
        source = data
        if isinstance(data, Tensor):
            # A constant sharing the array of a Tensor that requires a gradient would drop its
            # graph, silently: refused as a list of such Tensors is (torch.tensor(y) warns).
            if data._requires_grad and _mode.grad_enabled:
                raise TypeError("Tensor: the Tensor given requires a gradient, whose graph a new "
                                "Tensor would drop: use it as it is, or y.detach() for a "
                                "constant (y.detach().astype(y.dtype) for a copy)")
            dtype = data.dtype if dtype is None else dtype
            data = data.data
        elif isinstance(data, (list, tuple)) and _mode.grad_enabled and _holds_graph(data):
            raise _drops_graph(data, "Tensor")
        array = np.asarray(data, dtype=dtype)
        if array.dtype.kind not in "biufc":      # numpy would hold None or text as objects
            raise TypeError(f"Tensor: the data must be numbers or booleans, got "
                            f"{type(data).__name__} (numpy's dtype {array.dtype})")
        if dtype is None and array.dtype.kind == "f" and array.dtype != DEFAULT_DTYPE:
            array = array.astype(DEFAULT_DTYPE)
        self.data = array
        if isinstance(source, Tensor) and array is source.data:     # one array, one count
            self._sharing_stamp_with(source)
        if requires_grad is not False:          # (checked by the setter: True, or refused)
            self.requires_grad = requires_grad

    @classmethod
    def _make(cls, data):
        """Wrap an array the engine computed: no conversion, no copy."""
        t = object.__new__(cls)
        # numpy returns scalars (np.float32) from full reductions: keep everything an ndarray
        t.data = data if data.__class__ is np.ndarray else np.asarray(data)
        return t

    @property
    def requires_grad(self) -> bool:
        """Whether ops record a graph through this tensor, so that backward reaches it (only
        real floating-point tensors can)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        _check_flag(value)
        if value and self.data.dtype.kind != "f":
            # Complex ones too: no op here takes the conjugates that their gradients need.
            raise TypeError(f"only real floating-point tensors can require gradients; this one "
                            f"is {self.data.dtype}")
        if not value and self.grad_fn is not None:   # the graph through it would stay, unused
            raise RuntimeError(f"requires_grad can be turned off on a leaf only; this tensor "
                               f"was computed by {self.grad_fn.name}: use .detach() for it "
                               f"outside the graph")
        self._requires_grad = bool(value)

    # The engine fills `_grad` itself (`_accumulate`); an assignment by hand is checked, as
    # torch checks it, rather than failing later inside backward's `+=` or an optimizer step.
    @property
    def grad(self) -> np.ndarray | None:
        """d(loss)/d(this tensor), a numpy array of its shape, accumulated by backward (on
        leaves, and on tensors that `retain_grad`); None until then."""
        return self._grad

    @grad.setter
    def grad(self, value: np.ndarray | None) -> None:
        if value is not None:
            if isinstance(value, np.generic):       # numpy's number: a 0-d tensor's gradient
                value = np.asarray(value)
            if not isinstance(value, np.ndarray):
                advice = ": assign its .data" if isinstance(value, Tensor) else ""
                raise TypeError(f"assigned grad must be a numpy array or None, got "
                                f"{type(value).__name__}{advice}")
            if value.shape != self.shape:
                raise ShapeError(f"assigned grad has shape {value.shape}, but the tensor has "
                                 f"shape {self.shape}: a gradient has its tensor's shape")
            if value.dtype.kind != "f":
                raise TypeError(f"assigned grad has dtype {value.dtype}: a gradient is real "
                                f"floating point, as its tensor ({self.dtype})")
        self._grad = value
        # .grad_tensor is .grad with its graph: an assigned .grad has none. Kept, it would hold
        # that graph's memory after `p.grad = None`, and the next backward(create_graph=True)
        # would add onto it; instead it starts from the assigned array, as a constant.
        self.grad_tensor = None

    @property
    def grad_tensor(self) -> Tensor | None:
        """After backward(create_graph=True): `.grad` as a Tensor with its graph, to
        differentiate again (torch's `.grad` after create_graph); None before. Later backwards
        add to it as they add to `.grad`. Once `.grad` is assigned or changed in place
        (`x.grad[...] = 0`, `x.grad *= 0.5`, `clip_grad_norm`), the graph no longer computes
        its values: grad_tensor is None, and the next backward adds to `.grad` as a constant.
        A change in place is seen by its values only, so one that leaves them as they were
        (zeroing a gradient that is already zero) keeps the old graph, and the next
        backward(create_graph=True) adds onto it. To start afresh, `x.grad = None`, assign a
        new array, or call the optimizer's or the module's `zero_grad()` (either
        `set_to_none`): these always drop the graph."""
        kept = self._grad_tensor
        # The engine adds the same arrays to both (`_accumulate`), so they agree to the bit
        # unless the array was changed by hand; the stale graph would give wrong derivatives,
        # and grow with every backward that added to it.
        if kept is not None and not np.array_equal(kept.data, self._grad, equal_nan=True):
            self._grad_tensor = kept = None
        return kept

    @grad_tensor.setter
    def grad_tensor(self, value: Tensor | None) -> None:
        self._grad_tensor = value

    def requires_grad_(self: TensorT, requires_grad: bool = True) -> TensorT:
        """Set `requires_grad` in place and return this tensor, as torch's
        (`x = x.detach().requires_grad_()`)."""
        self.requires_grad = requires_grad
        return self

    # -- what it is ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each axis, numpy's shape."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the data."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """The number of elements (numpy's size; torch's numel()), an int that, called as
        torch's x.size() or x.size(dim), says what to write here."""
        return ElementCount(self.data.size)

    @property
    def is_leaf(self) -> bool:
        """True for a tensor that no recorded op computed (grad_fn is None)."""
        return self.grad_fn is None

    def numel(self) -> int:
        """The number of elements: torch's name for `.size`."""
        return self.data.size

    def dim(self) -> int:
        """The number of axes: torch's name for `.ndim`."""
        return self.data.ndim

    def numpy(self) -> np.ndarray:
        """The data: the tensor's own numpy array, not a copy (`.data`), also of a tensor that
        requires a gradient, where torch's asks for `.detach().numpy()`: asked for by name, it
        is read as numbers, where numpy's functions (`np.asarray(t)`) are refused. A change
        in place to it is one to `.data`, which the graph does not see."""
        return self.data

    def item(self) -> float | int | bool:
        """The one element, as a Python number (a tensor of one element, of any shape)."""
        return self._number("item")

    def tolist(self) -> Any:
        """The data as (nested) Python lists of Python numbers."""
        return self.data.tolist()

    def detach(self) -> Tensor:
        """The same data (shared, no copy), cut from the graph."""
        return Tensor._make(self.data)._sharing_stamp_with(self)

    def __deepcopy__(self, memo: dict) -> Tensor:
        # A computed tensor's copy took a copy of its graph, whose backward filled copies of the
        # leaves, never the originals: refused, as torch refuses it. A leaf (a parameter) copies
        # all but .grad_tensor, whose graph is the original's (the copy's .grad is a constant).
        if self.grad_fn is not None:
            raise RuntimeError(f"deepcopy: this tensor was computed by {self.grad_fn.name}, and "
                               f"backward through its copy would reach copies of the leaves; "
                               f"copy t.detach() for its numbers, or the leaves alone")
        new = object.__new__(type(self))
        memo[id(self)] = new
        for name, value in vars(self).items():
            if name != "_grad_tensor":
                object.__setattr__(new, name, copy.deepcopy(value, memo))
        return new

    def __getstate__(self) -> dict:
        # pickle keeps the numbers and flags, as torch's: not the graph (whose nodes hold weak
        # references, which pickle refused, unclearly) nor the hooks (a lambda failed it). A
        # computed tensor comes back a leaf that requires a gradient, as torch's does.
        state = dict(vars(self))
        for name in ("grad_fn", "_grad_tensor", "_hooks"):
            state.pop(name, None)
        return state

    def __copy__(self) -> Tensor:      # (not through __getstate__): one graph, shared
        new = object.__new__(type(self))
        vars(new).update(vars(self))
        return new

    def _changed_in_place(self) -> None:
        """Stamp a change of this tensor's array in place (every writer in the engine calls
        this; a write into `.data` by hand is not seen, as torch's `.data` is not)."""
        if self._changed_at is None:
            self._changed_at = [0]
        self._changed_at[0] = next(_clock)

    def _sharing_stamp_with(self, other: Tensor) -> Tensor:
        """This tensor, whose array is a view of other's, sharing other's stamp of changes."""
        if other._changed_at is None:
            other._changed_at = [0]
        self._changed_at = other._changed_at
        return self

    # Not read by type checkers either: numpy's hints take anything with an __array__ for an
    # array, so `a * x` of an array `a` was an ndarray to mypy and pyright, without backward,
    # where it is a Tensor (numpy hands the operator to Tensor's __rmul__, __array_ufunc__
    # being None). np.asarray(x) still type-checks, as an object numpy converts; a numpy
    # function given a Tensor (np.allclose(x, y)) is flagged, as it is refused here where a
    # graph is recorded: give it x.data.
    if not TYPE_CHECKING:
        def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
            # numpy's functions read a Tensor's numbers alone: `np.where(m, x, 0)` would give
            # an array that x's gradient never reaches, silently. Refused, as torch refuses it,
            # where the graph is being recorded (under no_grad nothing is, as for lists of
            # operands).
            if self.requires_grad and _mode.grad_enabled:
                raise TypeError("numpy read a Tensor that requires a gradient, and would drop "
                                "its graph: use the Tensor's own ops (ta.where, ta.concat, "
                                "x.exp(), ...), or x.detach() for its numbers alone")
            # numpy 2's protocol: copy=True asks for a copy (np.array(t)), None for one only
            # where the dtype changes (np.asarray(t)), False for none at all (an error if one
            # is needed).
            return np.array(self.data, dtype=dtype, copy=copy)

    # Not read by type checkers, for which a __getattr__ makes every name an attribute: `x.shap`
    # would pass unflagged. It only words the error of one that is not there.
    if not TYPE_CHECKING:
        def __getattr__(self, name: str) -> Any:
            # Runs only when normal lookup fails, so the attributes that exist cost nothing more.
            # A PyTorch name gets ours in its error; always an AttributeError, so that hasattr,
            # copy and numpy's probes go on as before. Those probes (np.asarray(t) looks for
            # __array_struct__ and __array_interface__ first) take the short way out.
            if name[0] == "_":
                raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")
            hint = _TORCH_TENSOR_NAMES.get(name)
            if hint is None and name.endswith("_"):                         # add_, zero_, copy_
                # `p = p * 0.5` alone would make a new tensor and leave a parameter as it was: say
                # what changes the tensor itself, as an update of parameters under no_grad needs.
                # Where the method without its _ is ours (masked_fill_), the new tensor is its.
                ours = callable(getattr(type(self), name[:-1], None))
                new = f"x = x.{name[:-1]}(...)" if ours else "x = x + y"
                hint = (f"in-place methods are not offered: {new} makes a new tensor; to change "
                        "x itself (a parameter, under no_grad()), x += y (or -=, *=, /=), or "
                        "x.data[...] = values")
            raise _not_found(f"'{type(self).__name__}' object", name, hint, self)

    # Python numbers, as torch gives them: from a tensor of one element, whatever its shape,
    # so `float(loss)` and `f"{loss:.3f}"` work; a larger tensor is an error.
    def _number(self, conversion):
        if self.size != 1:
            raise ValueError(f"{conversion}: only a tensor of one element converts to a Python "
                             f"number; this one has shape {self.shape}")
        return self.data.item()

    def __float__(self) -> float:
        return float(self._number("float"))

    def __int__(self) -> int:
        return int(self._number("int"))

    def __index__(self) -> int:    # range(t), a_list[t]: integers only, as for numpy's arrays
        if self.dtype.kind not in "biu" or self.size != 1:
            raise TypeError(f"only an integer tensor of one element can be an index; this one "
                            f"is {self.dtype} of shape {self.shape}")
        return int(self.data.item())

    def __format__(self, spec: str) -> str:
        return format(self._number("format"), spec) if spec else str(self)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:   # row by row, each a differentiable index, as torch
        if self.ndim == 0:         # numpy's and torch's error (Python's fallback gave no rows)
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __contains__(self, value: Any) -> bool:   # numpy's and torch's: any element equal
        return bool((self.data == _lift(value, self, "in: the value").data).any())

    def __bool__(self) -> bool:    # numpy's: one element, else "ambiguous"
        return bool(self.data)

    __hash__ = object.__hash__   # == is elementwise, so hash by identity

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extra = "" if self.dtype == DEFAULT_DTYPE else f", dtype={self.dtype}"
        if self.size == 0 and self.shape != (0,):   # `[]` alone hides it, as numpy says
            extra = f", shape={self.shape}" + extra
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"Tensor({body}{extra})"

    # -- arithmetic ---------------------------------------------------------------------------
    # (NotImplemented for an operand that is not numbers: see `_binary`.)
    def __add__(self, other: Operand) -> Tensor: return _binary(ops.Add, self, other)
    def __radd__(self, other: Operand) -> Tensor: return _binary(ops.Add, other, self)
    def __sub__(self, other: Operand) -> Tensor: return _binary(ops.Sub, self, other)
    def __rsub__(self, other: Operand) -> Tensor: return _binary(ops.Sub, other, self)
    def __mul__(self, other: Operand) -> Tensor: return _scaled(ops.Mul, self, other)
    def __rmul__(self, other: Operand) -> Tensor: return _scaled(ops.Mul, other, self)
    def __truediv__(self, other: Operand) -> Tensor: return _scaled(ops.Div, self, other)
    def __rtruediv__(self, other: Operand) -> Tensor: return _scaled(ops.Div, other, self)
    def __pow__(self, other: Operand) -> Tensor: return _binary(ops.Pow, self, other)
    def __rpow__(self, other: Operand) -> Tensor: return _binary(ops.Pow, other, self)
    def __mod__(self, other: Operand) -> Tensor: return _binary(ops.Remainder, self, other)
    def __rmod__(self, other: Operand) -> Tensor: return _binary(ops.Remainder, other, self)
    # a // b is a step function: outside the graph, as comparisons are (`_floor_divide`)
    def __floordiv__(self, other: Operand) -> Tensor: return _floor_divide(self, other)
    def __rfloordiv__(self, other: Operand) -> Tensor: return _floor_divide(other, self)

    def __divmod__(self, other: Operand) -> tuple[Tensor, Tensor]:   # numpy's: (a // b, a % b)
        quotient = _floor_divide(self, other)
        return quotient if quotient is NotImplemented else (quotient, self % other)

    def __rdivmod__(self, other: Operand) -> tuple[Tensor, Tensor]:
        quotient = _floor_divide(other, self)
        return quotient if quotient is NotImplemented else (quotient, other % self)

    def __matmul__(self, other: Operand) -> Tensor: return _binary(ops.MatMul, self, other)
    def __rmatmul__(self, other: Operand) -> Tensor: return _binary(ops.MatMul, other, self)
    def __neg__(self) -> Tensor: return ops.Neg.apply(self)
    # +x is x itself, as torch's (numpy's copies): nothing to compute, nothing to record
    def __pos__(self) -> Tensor: return self

    # -- x += y, x -= y, x *= y, x /= y, x **= y, x //= y, x %= y ------------------------------
    # In place, in x's own array, as numpy and torch do, when no graph is recorded for it: under
    # no_grad, or when neither x nor y requires a gradient. x keeps its dtype and stays the same
    # object, so `with no_grad(): p -= lr * p.grad` updates the model's parameter. While a graph
    # is recorded, a leaf that requires a gradient refuses, as in torch (the step must not be
    # differentiated), and so does a view of one (`v = w[0]`); any other tensor gets a new,
    # recorded x = x + y (torch would record the change in place), on which every backward
    # written for arrays and Tensors alike relies (`d *= mask` under create_graph). A change in
    # place is stamped (`_changed_in_place`), so that a backward that would read the changed
    # tensor refuses instead. Recorded or not, x keeps its shape and dtype (`_kept_like`): the
    # same line must not give a bigger or wider x only because a gradient is wanted.
    def __iadd__(self, other: Operand) -> Tensor: return self._update("+", other)
    def __isub__(self, other: Operand) -> Tensor: return self._update("-", other)
    def __imul__(self, other: Operand) -> Tensor: return self._update("*", other)
    def __itruediv__(self, other: Operand) -> Tensor: return self._update("/", other)
    # (Without it, Python would make x **= y a new x = x ** y everywhere: a parameter changed
    # so under no_grad would keep its old values, silently, and a leaf would not refuse it.)
    def __ipow__(self, other: Operand) -> Tensor: return self._update("**", other)
    def __ifloordiv__(self, other: Operand) -> Tensor: return self._update("//", other)
    def __imod__(self, other: Operand) -> Tensor: return self._update("%", other)
    # m &= k, m |= k, m ^= k: masks (or integers, bit by bit), in place as numpy's and torch's
    def __iand__(self, other: Operand) -> Tensor: return self._update("&", other)
    def __ior__(self, other: Operand) -> Tensor: return self._update("|", other)
    def __ixor__(self, other: Operand) -> Tensor: return self._update("^", other)

    def _update(self, symbol, other):
        in_place, recorded = _UPDATES[symbol]
        if not isinstance(other, Tensor):
            try:
                _numbers(other)
            except _NotNumbers:     # Python raises its TypeError for x += None, as for torch
                return NotImplemented
        if symbol in _BIT_UPDATES:                      # a float has no bits to combine
            _refuse_floats(symbol, self, _lift(other, self))
        elif symbol in _DIVISIONS:                      # before a 0 is written, as torch's
            ops.check_integer_division(f"{symbol}=", self.data, _lift(other, self).data)
        if _mode.grad_enabled and (self._requires_grad or isinstance(other, Tensor)
                                   and other._requires_grad):
            if self.grad_fn is None and self._requires_grad:
                raise RuntimeError(f"in-place {symbol}= on a tensor that requires grad: do it "
                                   f"under no_grad(), or write x = x {symbol} y")
            if _views_a_leaf(self):
                # As torch refuses it: the leaf would have to change too, and a new x (below)
                # would leave it as it was, silently.
                raise RuntimeError(f"in-place {symbol}= on a view ({self.grad_fn.name}) of a "
                                   f"leaf that requires grad: do it under no_grad(), or write "
                                   f"x = x {symbol} y")
            return _kept_like(self, other, recorded(self, other), symbol)
        if not self.data.flags.writeable:
            raise ValueError(f"in-place {symbol}=: this tensor's array is read-only (a "
                             f"broadcast view, a read-only memory map, np.frombuffer's bytes); "
                             f"write x = x {symbol} y, or make the tensor from a copy, "
                             f"Tensor(a.copy())")
        operand = other.data if isinstance(other, Tensor) else other
        # A float16 tensor times or over a number float16 cannot hold: in float32, as `_scaled`.
        wide = np.float32 if symbol in "*/" and _half_with_a_number(self, other) else None
        try:
            if symbol == "**":
                # numpy's integer power refuses a negative exponent part way through its loop,
                # the elements before it already written: computed aside, x changes whole or
                # not at all (torch refuses before writing)
                np.copyto(self.data, in_place(self.data, operand), casting="same_kind")
            else:
                in_place(self.data, operand, out=self.data, dtype=wide)
        except TypeError as error:              # numpy's: the result's dtype would differ
            raise TypeError(f"in-place {symbol}= cannot keep this tensor's dtype {self.dtype} "
                            f"({error}); write x = x {symbol} y") from None
        except ValueError:
            # numpy's: the result's shape would differ, or (where the shapes fit) a value it
            # refuses, integers ** -1, whose own message is said as it is
            shapes = [self.shape, np.shape(operand)]
            if _broadcastable(shapes) and np.broadcast_shapes(*shapes) == self.shape:
                raise
            raise ShapeError(f"in-place {symbol}=: shapes {self.shape} and {np.shape(operand)} "
                             f"do not give this tensor's shape; write x = x {symbol} y") from None
        self._changed_in_place()
        return self

    # Comparisons give boolean tensors outside the graph: a step function has no useful gradient.
    # Against what is not numbers, NotImplemented, as the operators: `x > None` raises Python's
    # TypeError and `x == None` is False, as for torch.
    def _compared(self, other: Operand, compare: Callable) -> Tensor:
        return _outside_graph(self, other, compare, compare.__name__)

    # & | ^ ~ combine masks (booleans) elementwise, and integers bit by bit, outside the graph as
    # comparisons, as numpy's and torch's: `(x > 0) & (x < 1)`. A float has no bits to combine.
    def _logical(self, other: Operand, combine: Callable, symbol: str) -> Tensor:
        try:
            other = _lift(other, self)
        except _NotNumbers:
            return NotImplemented
        _refuse_floats(symbol, self, other)
        return self._compared(other, combine)

    def __and__(self, other: Operand) -> Tensor: return self._logical(other, np.bitwise_and, "&")
    def __or__(self, other: Operand) -> Tensor: return self._logical(other, np.bitwise_or, "|")
    def __xor__(self, other: Operand) -> Tensor: return self._logical(other, np.bitwise_xor, "^")
    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__      # each gives the same either way

    def __invert__(self) -> Tensor:
        _refuse_floats("~", self)
        return Tensor._make(np.invert(self.data))

    def __lt__(self, other: Operand) -> Tensor: return self._compared(other, np.less)
    def __le__(self, other: Operand) -> Tensor: return self._compared(other, np.less_equal)
    def __gt__(self, other: Operand) -> Tensor: return self._compared(other, np.greater)
    def __ge__(self, other: Operand) -> Tensor: return self._compared(other, np.greater_equal)
    def __eq__(self, other: Operand) -> Tensor: return self._compared(other, np.equal)
    def __ne__(self, other: Operand) -> Tensor: return self._compared(other, np.not_equal)

    # -- elementwise functions ----------------------------------------------------------------
    def exp(self) -> Tensor:
        """e^x, elementwise."""
        return ops.Exp.apply(self)

    def log(self) -> Tensor:
        """The natural logarithm, elementwise."""
        return ops.Log.apply(self)

    def sqrt(self) -> Tensor:
        """The square root, elementwise."""
        return ops.Sqrt.apply(self)

    def tanh(self) -> Tensor:
        """The hyperbolic tangent, elementwise."""
        return ops.Tanh.apply(self)

    def relu(self) -> Tensor:
        """max(x, 0), elementwise."""
        return ops.Relu.apply(self)

    def gelu(self, approximate: str = "tanh") -> Tensor:
        """GELU, elementwise, in its tanh approximation (GPT-2's, torch's
        approximate='tanh'), not the exact erf form that is torch's default ('none', refused
        here)."""
        if approximate != "tanh":
            _refuse_exact_gelu("gelu", approximate)
        return ops.Gelu.apply(self)

    def sigmoid(self) -> Tensor:
        """1 / (1 + e^-x), elementwise."""
        return ops.Sigmoid.apply(self)

    def abs(self) -> Tensor:
        """|x|, elementwise (its gradient at 0 is 0, as torch's)."""
        return ops.Abs.apply(self)

    __abs__ = abs                           # Python's abs(x), as numpy's and torch's

    # -- reductions (numpy naming: axis, keepdims) --------------------------------------------
    @_numpy_keywords
    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The sum along `axis` (one axis, several, or all for None), as numpy's. With
        `keepdims` each reduced axis stays, of size 1, so that the result broadcasts back
        against the tensor (x - x.mean(-1, keepdims=True)); as here, every reduction."""
        return ops.Sum.apply(self, axis=_axes(axis), keepdims=keepdims)

    @_numpy_keywords
    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The mean along `axis` (`keepdims` as sum's). A float16 tensor's is computed in float32
        and rounded back, as torch's (`ops.compute_dtype`): its sum, or the count itself, could pass
        65504."""
        axis = _axes(axis)
        _check_axis("mean", self, axis)
        wide = ops.compute_dtype(self.dtype)
        if wide != self.dtype:
            return self.astype(wide).mean(axis, keepdims).astype(self.dtype)
        # The mean of nothing is nan, as torch's: a sum of 0 over a count of 0, without
        # numpy's divide-by-zero warning (x / nan is nan, quietly).
        total = ops.Sum.apply(self, axis=axis, keepdims=keepdims)    # self.sum's op, unwrapped
        return total / (ops._count(self.shape, axis) or np.nan)

    @_numpy_keywords
    def var(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        """Variance along `axis` (`keepdims` as sum's) as numpy computes it: ddof=0 by default
        (torch's default is ddof=1). With ddof at or above the count, the divisor is 0, as numpy's
        and torch's: inf, not a negative variance (NaN where every element is the mean); its
        gradient is then 2 (x - mean) / 0, +-inf, NaN where x is the mean, as torch's along an axis
        (torch's over the whole tensor drops the sign of x - mean). A float16 tensor's is computed
        in float32, as its mean."""
        axis = _axes(axis)
        _check_axis("var", self, axis)
        wide = ops.compute_dtype(self.dtype)
        if wide != self.dtype:
            return self.astype(wide).var(axis, keepdims, ddof).astype(self.dtype)
        # The variance of nothing is nan quietly, as the mean of nothing (torch warns here, but
        # not in layer_norm over no features, which is the same variance).
        count = ops._count(self.shape, axis)
        divisor = max(count - ddof, 0) if count else np.nan
        return ops.Var.apply(self, divisor=divisor, axis=axis, keepdims=keepdims)

    @_numpy_keywords
    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The largest value along `axis`, `keepdims` as sum's (numpy's max; torch's amax, not
        torch.max(dim), which also gives indices). Ties share the gradient equally, as with
        torch.amax; torch.max(dim) gives it all to the one index it returns."""
        return ops.Max.apply(self, axis=_axes(axis), keepdims=keepdims)

    @_numpy_keywords
    def min(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """The smallest value along `axis`, `keepdims` as sum's (numpy's min; torch's amin). Ties
        share the gradient equally, as with torch.amin."""
        return ops.Min.apply(self, axis=_axes(axis), keepdims=keepdims)

    @_numpy_keywords
    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """The index of the largest value (the first of ties), along `axis` or of the flattened
        tensor, as numpy's (`keepdims` as sum's): an integer tensor outside the graph."""
        _check_axis("argmax", self, axis)
        ops._refuse_empty_reduction("argmax", self.data, axis)
        return Tensor._make(self.data.argmax(axis=axis, keepdims=keepdims))

    @_numpy_keywords
    def any(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Whether any element along `axis` is true (nonzero), `keepdims` as sum's, as numpy's
        and torch's: a boolean tensor outside the graph. What numpy's "truth value ... is
        ambiguous" asks for, as in `if (x > 0).any():`."""
        return Tensor._make(np.any(self.data, axis=_axes(axis), keepdims=keepdims))

    @_numpy_keywords
    def all(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        """Whether every element along `axis` is true (nonzero), `keepdims` as sum's, as
        numpy's and torch's: a boolean tensor outside the graph (`assert (probs >= 0).all()`)."""
        return Tensor._make(np.all(self.data, axis=_axes(axis), keepdims=keepdims))

    @_numpy_keywords
    def softmax(self, axis: int = -1) -> Tensor:
        """e^x / sum(e^x) along `axis` (the last by default): each slice sums to 1."""
        return ops.Softmax.apply(self, axis=axis)

    @_numpy_keywords
    def log_softmax(self, axis: int = -1) -> Tensor:
        """log(softmax(x)) along `axis`, computed as x - log(sum(e^x)): finite where the
        softmax itself would round to 0."""
        return ops.LogSoftmax.apply(self, axis=axis)

    # -- shape --------------------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """The same elements in another shape, as numpy's (`reshape(2, -1)` or
        `reshape((2, -1))`; -1 stands for the size that fits)."""
        shape = _one_sequence(shape)
        if not (self._requires_grad and _mode.grad_enabled) and not _mode.anomaly:
            # No graph to record: the reshaped array is all there is. Generation reshapes each
            # head's queries, keys and values at every token, where the op's bookkeeping
            # would cost four times the reshape itself.
            try:
                return _stamped_with_what_it_views(Tensor._make(self.data.reshape(shape)), self)
            except ValueError as error:
                _raise_shape_error(ops.Reshape, (self,), error)    # (a reshape's always is)
                raise
        return ops.Reshape.apply(self, shape=shape)

    @_numpy_keywords
    def transpose(self, *axes: int | Sequence[int]) -> Tensor:
        """Permute the axes, as numpy does: all of them, reversed when none are given.
        To exchange two axes, use `swapaxes`. On a 2-D tensor, `transpose(0, 1)` and
        `transpose(-2, -1)`, numpy's identity but torch's swap, are refused."""
        as_sequence = len(axes) == 1 and _is_sequence(axes[0])
        axes = _one_sequence(axes)
        if not axes or len(axes) == 1 and axes[0] is None:   # numpy's transpose(None) too
            return ops.Transpose.apply(self, axes=None)
        # Negative axes count from the end; normalised, so that backward can invert the order.
        normalised = tuple(a % self.ndim if -self.ndim <= a < self.ndim else a for a in axes)
        if sorted(normalised) != list(range(self.ndim)):
            raise ShapeError(f"transpose: axes {axes} are not a permutation of the {self.ndim} "
                             f"axes of shape {self.shape}; to exchange two axes use "
                             f"swapaxes{axes if len(axes) == 2 else '(a, b)'}")
        if self.ndim == 2 and normalised == (0, 1) and not as_sequence:
            # Two axes given one by one are torch's spelling, which swaps them: as numpy's
            # identity, `q @ k.transpose(-2, -1)` would silently compute q @ k. (A sequence,
            # transpose((0, 1)), is numpy's alone: torch's transpose takes none.)
            raise ShapeError(f"transpose{axes}: on a 2-D tensor this is numpy's identity "
                             f"permutation, not torch's swap of the two axes: use .T or "
                             f"swapaxes(0, 1) (or numpy's transpose(1, 0))")
        return ops.Transpose.apply(self, axes=normalised)

    @property
    def T(self) -> Tensor:
        """All the axes reversed, as numpy's `.T`; to transpose each matrix of a batch
        (B, n, m), use `swapaxes(-2, -1)`."""
        return self.transpose()

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        """Exchange axes `axis1` and `axis2` (torch's two-argument transpose): (B, T, H, D)
        .swapaxes(1, 2) is (B, H, T, D). ShapeError for an axis out of range."""
        axes = list(range(self.ndim))
        try:
            axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        except IndexError:
            bad = axis1 if not -self.ndim <= axis1 < self.ndim else axis2
            raise ShapeError(f"swapaxes: axis {bad} is out of range for the {self.ndim} axes "
                             f"of shape {self.shape}") from None
        return ops.Transpose.apply(self, axes=tuple(axes))

    def astype(self, dtype: DTypeLike) -> Tensor:
        """This tensor in another dtype (a copy, as numpy's astype). A floating-point result is
        in the graph, its gradient cast back; an integer or boolean one is outside it, as in
        torch, since it has no gradient."""
        dtype = np.dtype(dtype)
        if dtype.kind not in "fc":
            return Tensor._make(self.data.astype(dtype))
        return ops.AsType.apply(self, dtype=dtype)

    def broadcast_to(self, *shape: int | Sequence[int]) -> Tensor:
        """This tensor repeated to `shape` by numpy's broadcasting rules; the gradient is
        summed back."""
        return ops.BroadcastTo.apply(self, shape=_one_sequence(shape))

    def __getitem__(self, index: Any) -> Tensor:
        """x[index] as numpy indexes: slices, None, ..., integer arrays (or integer Tensors)
        and boolean masks. The result is in the graph: its gradient is scattered back into
        zeros of x's shape, adding up where an index repeats. (x[index] = value is refused.)"""
        return ops.GetItem.apply(self, index=_plain_index(index))

    def __setitem__(self, index: Any, value: Any) -> None:
        # Not supported: an assignment in place would have to be recorded as an op of its own
        # (torch's copy_ into a view). Say what does the same, rather than Python's bare error.
        raise TypeError("Tensor does not support assignment in place (t[...] = value): make a "
                        "new tensor with ta.where(mask, value, t) or t.masked_fill(mask, value), "
                        "or, for an edit the graph does not see, write into t.data (before an "
                        "op uses t, or after backward)")

    def masked_fill(self, mask: Tensor | ArrayLike, value: float) -> Tensor:
        """Where `mask` is true, `value`; elsewhere this tensor (the mask broadcasts). The
        dtype is `where`'s, the tensor's and the value's combined as `+` combines them: a
        number takes the tensor's dtype where it can (ids.masked_fill(pad, -100) stays
        integer), but 0.5 fills an integer tensor as float32, where torch's masked_fill keeps
        the tensor's dtype and rounds the value to 0. A float mask is refused, as torch
        refuses it: an additive one, 0 where a key is kept and -inf where it is blocked, is
        true exactly where it should not fill."""
        mask_dtype = mask.dtype if isinstance(mask, Tensor) else np.asarray(mask).dtype
        if mask_dtype.kind in "fc":
            raise TypeError(f"masked_fill: the mask must be boolean (True where to fill), as "
                            f"torch's, got {mask_dtype}; compare first (mask != 0), or add a "
                            f"mask of 0 and -inf to the scores as a bias")
        shape = mask.shape if isinstance(mask, Tensor) else np.shape(mask)
        try:
            np.broadcast_shapes(shape, self.shape)
        except ValueError:
            # where's own message would name where, and the value's shape (), which the
            # caller of masked_fill never wrote.
            raise ShapeError(f"masked_fill: the mask of shape {shape} does not broadcast "
                             f"against the tensor of shape {self.shape} (each trailing size "
                             f"must match or be 1)") from None
        return _where(mask, value, self, "masked_fill", ("mask", "value", "self"))

    # -- autograd -----------------------------------------------------------------------------
    @_numpy_keywords
    def backward(self, grad: Tensor | ArrayLike | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False,
                 inputs: Tensor | Sequence[Tensor] | None = None) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires a gradient.

        `grad` is d(loss)/d(self), needed unless self holds one number. The graph is freed
        afterwards, unless `retain_graph=True` (the default when `create_graph=True`).
        With `create_graph=True` the gradient is also recorded: `.grad` stays an array, and
        `.grad_tensor` is the same gradient as a Tensor with its graph, to differentiate again
        (`grad(outputs, inputs, create_graph=True)` returns such Tensors directly).

        An error part way (a Function's backward raising, detect_anomaly's check) leaves every
        `.grad` as it was: they are written once every node has run (torch's keeps those
        written before the error). Hooks that ran stay run. The nodes run before the error are
        freed all the same, as torch frees them, so a second backward() refuses, saying so;
        with `retain_graph=True` nothing is freed, and backward() can be called again.

        `inputs` (a Tensor or a sequence of them), as torch's: accumulate into `.grad` of
        those alone, leaves or not, and leave every other leaf's as it is. As grad() does, the
        pass goes only through the part of the graph that leads to them: hooks elsewhere do
        not fire, and the rest is not freed. A tensor on the way that called retain_grad()
        gets its `.grad` too, as in torch.
        """
        if not self.requires_grad:
            raise RuntimeError(f"backward: this tensor does not require a gradient: "
                               f"{_NO_GRAPH_CAUSES}")
        wanted = ()
        if inputs is not None:
            wanted = _tensor_arguments(inputs, "input", "backward")
            if not wanted:        # as torch: an empty list is a mistake, not "every leaf"
                raise RuntimeError("backward: `inputs` is empty; give the Tensors whose .grad "
                                   "to fill, or leave it out for every leaf")
            _check_inputs_require_grad(wanted, "backward", "this tensor")
        grad = _seed(self, grad, "backward", "grad")
        _run_backward([self], [grad], retain_graph=create_graph if retain_graph is None
                      else retain_graph, create_graph=create_graph, wanted=wanted,
                      accumulate=True)

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor too after backward (useful for inspection).
        backward() alone fills it: grad() touches no `.grad`, where torch's fills this one too."""
        if not self.requires_grad:              # no gradient will ever reach it
            raise RuntimeError("retain_grad: this tensor does not require a gradient")
        self._retains_grad = True

    def register_hook(self, hook: Callable[[Tensor], Tensor | ArrayLike | None]) -> _HookHandle:
        """Call `hook(grad)` when this tensor's gradient is computed; a returned value (Tensor
        or array, of this tensor's shape) replaces the gradient. Returns a handle whose
        `.remove()` undoes it. grad() with this tensor among its inputs returns the gradient
        the hooks made, as torch's, except where another of its inputs lies below this tensor:
        then, also as torch's, the one that arrived here, before the hooks."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: this tensor does not require a gradient")
        if not self._hooks:
            self._hooks = []
        self._hooks.append(hook)
        return _HookHandle(self._hooks, hook)


# --------------------------------------------------------------------------------------------
# Reverse mode


def _run_backward(roots, root_grads, retain_graph, create_graph, wanted=(), accumulate=False):
    """The chain rule, from `roots` back to the leaves.

    Each node turns the gradient of its output into the gradients of its inputs (its Function's
    backward), and a tensor reached along several paths gets the sum of what each path brings.
    Gradients are numpy arrays, or Tensors under create_graph (so that they have a graph of
    their own). Without `wanted`, leaves add theirs into `.grad`. With `wanted` (tensors), the
    pass goes only where those are reached, and their gradients are returned, no `.grad`
    touched (grad()); or, with `accumulate` (backward(inputs=...)), added into their `.grad`.
    Tensors that called retain_grad() get theirs in `.grad` wherever backward() passes.
    """
    wanted_ids = {id(t) for t in wanted}
    # grad(): a node hands gradients only to the inputs from which a wanted tensor can be
    # reached (`leads_to_wanted`); a node with none of them is not run (which happens only at a
    # wanted tensor with no wanted one below it). Where every tensor on the way leads to a
    # wanted one, as in grad(loss, model.parameters()), there is nothing to pick: None.
    order, leads_to_wanted = _topological_order(roots, wanted_ids)
    grads = {}                       # id(tensor) -> dL/d(tensor), summed over the paths so far
    for root, g in zip(roots, root_grads):
        _add_path(grads, root, g if create_graph else g.data)
    found = {}
    # The leaves' gradients are written into .grad only once every node has run: a backward
    # that raises part way (a custom Function's backward, detect_anomaly's check) leaves every
    # .grad as it was, so a caught error cannot leave some of them holding half a step. The
    # nodes run so far are freed all the same (retain_graph=False), as torch frees them: their
    # saved arrays are what backward's memory comes from.
    to_accumulate, freed_now = [], []
    # Anomaly mode checks each node's gradients as a whole, blaming the forward op, rather than
    # every small op inside its backward formula.
    check_anomaly, _mode.anomaly = _mode.anomaly, False
    try:
        with set_grad_enabled(create_graph):
            for t in reversed(order):                      # every result before its inputs
                grad = grads.pop(id(t), None)
                if grad is None:                           # nothing flowed here
                    continue
                node = t.grad_fn
                needed = None                              # backward(): every input
                if node is not None and leads_to_wanted is not None:
                    needed = tuple(id(inp) in leads_to_wanted for inp in node.inputs)
                goes_on = node is not None and (needed is None or True in needed)
                is_wanted = id(t) in wanted_ids
                # grad() answers for a wanted tensor as torch's engine does: with its gradient
                # after its hooks where the pass ends at it (a leaf, or nothing wanted below),
                # but as it arrived, before them, where the pass goes on to another wanted
                # tensor below it, which gets what the hooks made of it.
                if is_wanted and goes_on and not accumulate:
                    found[id(t)] = grad
                if t._hooks:                               # (most tensors have none)
                    grad = _run_hooks(t, grad, create_graph)
                if accumulate:          # backward(): .grad after the hooks, as torch's
                    if (is_wanted if wanted_ids else node is None) or t._retains_grad:
                        to_accumulate.append((t, grad))
                elif is_wanted and not goes_on:            # grad(), where the pass ends
                    found[id(t)] = grad
                if not goes_on:                            # a leaf, or nothing wanted below
                    continue
                input_grads = _apply_backward(node, grad, create_graph, needed)
                for i, (inp, g) in enumerate(zip(node.inputs, input_grads)):
                    if g is not None:
                        if check_anomaly:
                            _check_finite(node, i, inp, g)
                        _add_path(grads, inp, g)
                if not retain_graph:
                    node.free()
                    freed_now.append(node)
            while to_accumulate:         # each gradient dropped once added: no second copy
                _accumulate(*to_accumulate.pop(), create_graph)
    except BaseException as error:
        # A later backward through these nodes says why they are gone (see _freed)
        for node in freed_now:
            node.__dict__["freed_by_error"] = type(error).__name__
        raise
    finally:
        _mode.anomaly = check_anomaly
    if not create_graph:                 # an ordinary pass's gradients are arrays
        found = {key: Tensor._make(g) for key, g in found.items()}
    return [found.get(id(t)) for t in wanted]


def _topological_order(roots, wanted_ids):
    """The tensors that a backward pass from `roots` goes through, inputs before results.

    backward() (nothing `wanted`) goes through every tensor that requires a gradient and leads
    to a root. grad() goes only where its answer comes from, as torch.autograd.grad does:
    through the tensors from which a wanted tensor can be reached, the wanted ones included.
    Hooks fire, and nodes run and are freed, only there; the rest of the graph is left as it
    was, for a later backward.

    A depth-first walk, iterative so that a chain of any length fits (no recursion limit). A
    tensor is placed once all its inputs are: that is also when we know whether a wanted tensor
    lies below it. A graph already freed by an earlier backward is refused, except below a
    wanted tensor: its gradient is the answer, and the walk ends there, as torch's does. Only
    another wanted tensor below it would need the freed part; since a freed node no longer
    names its inputs, grad() refuses when a wanted tensor is not reached.

    Also returned: the ids of the tensors that lead to a wanted one, where grad() must pick,
    node by node, the inputs to go on to; None where it need not. It must where some tensor
    reached leads to no wanted one, or where the walk stopped at a wanted tensor with a graph
    below it, which is not to run. Elsewhere (every tensor on the way leads to a wanted one,
    as in grad(loss, model.parameters()), the trainer's call) each node hands its gradients to
    every input that requires one, as in backward(), and the picking would cost a twentieth of
    a small model's step.
    """
    # A speed-up only: with a single wanted tensor the walk never goes below it, freed or not,
    # since nothing below can be wanted (a tensor cannot lie below itself).
    dead_ends = wanted_ids if len(wanted_ids) == 1 else ()
    order, visited, leads_to_wanted = [], set(), set()
    freed_below_wanted = None
    stopped_above_graph = False
    stack = [(root, False) for root in roots]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            if not wanted_ids:                           # backward(): every tensor
                order.append(t)
            elif id(t) in wanted_ids or t.grad_fn is not None and any(
                    id(inp) in leads_to_wanted for inp in t.grad_fn.inputs):
                leads_to_wanted.add(id(t))
                order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        if t.grad_fn is None:
            continue
        if id(t) in dead_ends:
            stopped_above_graph = True
        elif not t.grad_fn.freed:
            for inp in t.grad_fn.inputs:
                if inp._requires_grad and id(inp) not in visited:
                    stack.append((inp, False))
        elif id(t) in wanted_ids:                   # the walk ends at a wanted tensor
            freed_below_wanted = t.grad_fn
            stopped_above_graph = True
        else:
            raise _freed(t.grad_fn)
    if freed_below_wanted is not None and not wanted_ids <= leads_to_wanted:
        raise _freed(freed_below_wanted)            # the missing one may lie below it
    pick_inputs = bool(wanted_ids) and (stopped_above_graph or len(order) < len(visited))
    return order, leads_to_wanted if pick_inputs else None


def _freed(node):
    failed = node.freed_by_error
    if failed:
        # That backward wrote no .grad (see _run_backward), but its nodes' saved arrays are gone
        return RuntimeError(f"backward: the graph through {node.name} was freed by an earlier "
                            f"backward() or grad() that raised {failed} part way; run the "
                            f"forward again, or pass retain_graph=True to backward() to keep the "
                            f"graph for another try after an error")
    return RuntimeError(f"backward: the graph through {node.name} was already freed by an "
                        f"earlier backward() or grad(); pass retain_graph=True to that earlier "
                        f"call to go through the graph again")


def _apply_backward(node, grad, create_graph, needed):
    """One node's step of the chain rule: dL/d(input) for each input, in the input's shape.
    Under create_graph, the ops it records are annotated with the node they differentiate.

    `needed` (from grad()): which inputs lead to a wanted tensor. The backward reads it as
    `ctx.needs_input_grad`, so that it skips the others (a weight's gradient, when only the
    input's is asked), and whatever it computes for them anyway is dropped before it is summed
    to the input's shape."""
    if not create_graph:
        return _input_grads(node, grad, create_graph, needed)
    with annotate(backward_of=node):
        try:
            return _input_grads(node, grad, create_graph, needed)
        except TypeError as error:
            # Most often numpy's refusal of a Tensor (np.cos(x)), in a backward written for
            # arrays that meets Tensors here: numpy's words name neither the op nor a way out.
            # Ours follow theirs, in the same error's message (not a note: Python 3.10 has none).
            error.args = (f"{error}\nIn {node.name}.backward under create_graph=True, its "
                          f"gradients and saved inputs are Tensors: a numpy function refuses "
                          f"them. Write it with what arrays and Tensors share (+ - * / ** @, "
                          f".sum, .reshape), and, where ctx.create_graph is True, with Tensor "
                          f"methods (.exp(), .tanh()) or another Function (Cos.apply(x) for "
                          f"np.cos(x)).",)
            raise


def _input_grads(node, grad, create_graph, needed):
    """Run node's backward and check what it returned: one gradient per input (None where
    none is wanted), each in its input's shape and dtype."""
    if node.fn.guarded and not create_graph:
        # A user's backward may not write into grad: the same array may be another tensor's
        # gradient too (Add hands one array to both its inputs). (ctx's arrays: _CheckedContext.)
        (grad,) = _read_only([grad])
    elif node.fn.guarded:
        _refuse_kept_arrays(node)
    if needed is None:                                     # backward(): every input
        grads = node.fn.backward(node, grad)
    else:
        state = node.__dict__                 # the engine's name: into __dict__ (see Context)
        recorded = node.needs_input_grad
        state["needs_input_grad"] = tuple(a and b for a, b in zip(recorded, needed))
        try:
            grads = node.fn.backward(node, grad)
        finally:
            state["needs_input_grad"] = recorded
    if not isinstance(grads, tuple):
        if isinstance(grads, list):
            # Taken as one gradient, a list of one per input would be counted as one ("returned
            # 1 gradients for 2 inputs"), and [g] for one input made an array of one more axis.
            raise RuntimeError(f"{node.name}.backward returned a list; return a tuple, one "
                               f"gradient per input (None where there is none), or the "
                               f"gradient alone for one input")
        grads = (grads,)
    if len(grads) != len(node.inputs):
        raise RuntimeError(f"{node.name}.backward returned {len(grads)} gradients for "
                           f"{len(node.inputs)} inputs")
    shaped = []
    for i, (inp, g) in enumerate(zip(node.inputs, grads)):
        if g is None or not inp._requires_grad or needed is not None and not needed[i]:
            shaped.append(None)
            continue
        if create_graph:
            if not isinstance(g, Tensor):
                raise RuntimeError(
                    f"{node.name}.backward returned a numpy array under create_graph=True, "
                    f"which cannot be recorded: write it with ctx.operands and ctx.result "
                    f"rather than .data, so that it works on Tensors too")
        elif g.__class__ is not np.ndarray:               # (it nearly always is one)
            g = g.data if isinstance(g, Tensor) else np.asarray(g)
        array = inp.data
        if g.shape != array.shape:
            g = _sum_to(g, array.shape, node.name)
        if g.dtype != array.dtype:
            # A gradient has its input's dtype, as torch's engine makes it: a float32 x times a
            # float64 c gives float64 products, but x's hooks, .grad and grad() want float32.
            # (A Tensor's astype is an op: under create_graph the cast is recorded.)
            g = g.astype(array.dtype)
        shaped.append(g)
    return shaped


def _refuse_kept_arrays(node):
    """Before a user's backward runs under create_graph: refuse an input's or the output's
    array kept on its ctx in the forward (`ctx.x = x`, torch's save_for_backward written as an
    attribute). The recorded backward would read it as a constant, so every second derivative
    through it would be silently lost; ctx.operands and ctx.result give the Tensors here. It
    cannot see what the backward does with the array: one used only to make a mask (ReLU's
    x > 0, whose second derivative is 0 all the same) is refused too, and the message says to
    keep the mask instead."""
    tensors = [(f"input {i}", t) for i, t in enumerate(node.inputs) if t._requires_grad]
    tensors.append(("the output", node.output))           # alive: backward came through it
    for name, kept in vars(node).items():
        values = kept if isinstance(kept, (tuple, list)) else (kept,)      # ctx.saved = (x, w)
        for value in values:
            if not (isinstance(value, np.ndarray) and value.dtype.kind == "f"):
                continue
            for what, t in tensors:
                if np.may_share_memory(value, t.data):
                    read = "ctx.result" if t is node.output else "ctx.operands"
                    raise RuntimeError(
                        f"{node.name}.backward under create_graph=True: ctx.{name} holds "
                        f"{what}'s array, which a recorded backward reads as a constant, so the "
                        f"second derivative through it would be lost; read it in backward with "
                        f"{read} (Tensors here) instead of keeping it on ctx (a mask made from "
                        f"it in forward, ctx.mask = x > 0, may be kept: a constant)")


def _sum_to(grad, shape, op):
    """Undo broadcasting: sum the gradient over the axes along which the input was repeated.
    `grad` is a Tensor (summed with engine ops, so recorded under create_graph) or an array.
    A gradient in a shape the input does not broadcast to is a mistake of `op`'s backward (a
    transposed or flattened gradient, say): refused, where a reshape would scramble it."""
    lead = grad.ndim - len(shape)
    if lead < 0 or any(size != 1 and size != grad.shape[lead + i] for i, size in enumerate(shape)):
        raise RuntimeError(f"{op}.backward returned an invalid gradient of shape {grad.shape} "
                           f"for an input of shape {shape}: it must have the input's shape, or "
                           f"one the input broadcasts to")
    axes = tuple(range(lead)) + tuple(lead + i for i, size in enumerate(shape)
                                      if size == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape) if grad.shape != shape else grad


def _add_path(grads, t, g):
    """Add the gradient that one path brings to t. This `+` is the chain rule's own, outside
    every node's backward (so no `backward_of` marks it in the backward graph)."""
    previous = grads.get(id(t))
    grads[id(t)] = g if previous is None else previous + g


def _run_hooks(t, grad, create_graph):
    """Hooks see the gradient as a Tensor; one that returns a value replaces the gradient."""
    for hook in tuple(t._hooks):          # a copy: a hook may remove itself
        replaced = hook(grad if create_graph else Tensor._make(grad))
        if replaced is not None:
            replaced = _lift(replaced, t, f"hook {getattr(hook, '__name__', hook)!r}: "
                                          f"its result")
            if replaced.shape != t.shape:   # it would become .grad, or reach the wrong op
                raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} returned a "
                                   f"gradient of shape {replaced.shape} for a tensor of shape "
                                   f"{t.shape}; it must keep the shape")
            grad = replaced if create_graph else replaced.data
    return grad


def _accumulate(t, grad, create_graph):
    data = grad.data if create_graph else grad
    # .grad_tensor is .grad with its graph, as torch's .grad after create_graph: it adds to what
    # .grad holds now (nothing after `t.grad = None`), constants included, and keeps its graph
    # through later backwards without one, until .grad is cleared, assigned or changed in place.
    # The engine writes `_grad`, not `.grad`: the setter checks an assignment by hand (its
    # shape and dtype), which the engine's gradients have by construction.
    if t._grad is None:
        t._grad = np.array(data, dtype=t.dtype)   # a copy we own, so += below is safe
        t.grad_tensor = grad if create_graph else None
        return
    earlier = t.grad_tensor             # None too where .grad was changed in place since
    if create_graph or earlier is not None:
        if earlier is None:
            earlier = Tensor._make(t._grad.copy())
        with enable_grad():
            t.grad_tensor = earlier + (grad if create_graph else Tensor._make(np.array(data)))
    t._grad += data


def _check_finite(node, i, inp, g):
    data = g.data if isinstance(g, Tensor) else g
    if _has_nan_or_inf(data):
        raise AnomalyError(
            f"{node.name} backward: the gradient of input {i} (shape {inp.shape}) contains NaN "
            f"or Inf; the op was created at {_created_at(node)}")


def _created_at(node):
    """Where the user's code called node's op, for anomaly errors. An op that a backward
    recorded under create_graph was called by the engine, with anomaly checks off: the line
    is that of the op whose backward it was (a second derivative's NaN, found by the second
    grad())."""
    origin = node.backward_of
    if origin is not None:
        return (f"{origin.name}'s backward under create_graph=True, for the {origin.name} "
                f"created at {_created_at(origin)}")
    return node.__dict__.get("created_at", "<before detect_anomaly>")


# Why a tensor has no graph to go back through. The last cause is the one met when
# differentiating twice: a gradient has a graph only if it was computed with create_graph=True,
# and then only where it depends on the inputs (a function linear in them has a constant one).
_NO_GRAPH_CAUSES = ("nothing it was computed from had requires_grad=True, it was computed "
                    "under no_grad(), or it was computed through integers or booleans "
                    "(argmax, a comparison, astype(int), a Function's integer result), which "
                    "carry no gradient; a gradient to differentiate again must come from "
                    "grad(..., create_graph=True) or backward(create_graph=True), and one that "
                    "still has no graph does not depend on the inputs: its own gradient is zero")


def _seed(output, grad, caller, argument):
    """d(loss)/d(output), where the chain rule starts: `grad` (the caller's `argument`) in the
    output's dtype, checked against its shape; or 1 for an output of one number."""
    if grad is None:
        if output.size != 1:
            raise RuntimeError(f"{caller}: the output has shape {output.shape}, so its gradient "
                               f"is ambiguous; reduce it to one number first (for example "
                               f".sum()), or pass {argument} of shape {output.shape}")
        return Tensor._make(np.ones_like(output.data))
    grad = _lift(grad, output, f"{caller}: {argument}")
    if grad.shape != output.shape:
        raise ShapeError(f"{caller}: {argument} has shape {grad.shape} but the output has shape "
                         f"{output.shape}")
    if grad.dtype != output.dtype:
        # Cast, as an array is and as torch does, or the gradients would come out in grad's
        # dtype; one with a graph of its own cannot be cast without cutting it: it must match.
        if grad.requires_grad:
            raise TypeError(f"{caller}: {argument} has dtype {grad.dtype} but the output has "
                            f"dtype {output.dtype}")
        grad = Tensor._make(grad.data.astype(output.dtype))
    return grad


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Operand | Sequence[Operand | None] | None = None,
         retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = True) -> tuple[Tensor, ...]:
    """The gradients of `outputs` with respect to `inputs`, returned instead of accumulated:
    a tuple with one per input, even for one input Tensor (`(g,) = grad(loss, w)`).

    Like `torch.autograd.grad`, it goes only through the part of the graph between the outputs
    and the inputs: hooks elsewhere do not fire, and the rest is not freed (a later backward
    can still go through it). The part it went through is freed, as by backward, unless
    `retain_graph=True` (the default when `create_graph=True`): a second grad() or backward()
    through it needs that. With `create_graph=True` the returned gradients carry their own
    graph, so they can be differentiated again (Hessian-vector products, gradient penalties).
    An input that the outputs do not depend on gets None (torch's default, allow_unused=False,
    raises instead; pass allow_unused=False for the same check). `grad_outputs` holds
    d(loss)/d(output) for each output, in its shape (None for an output of one number); for a
    single output it may be the one Tensor, array or number itself. An input with hooks
    (`register_hook`) gets its gradient after them, unless another input lies below it, where
    the pass goes on: then before them, as torch's.
    """
    # Hinted as torch's, tuple[Tensor, ...]: the None of an input not used is the exception,
    # and `(g,) = grad(loss, [w])`, then `g * v`, the rule, which `Tensor | None` made an error
    # in a type checker at every use of g.
    outputs = _tensor_arguments(outputs, "output")
    inputs = _tensor_arguments(inputs, "input")
    if not inputs:                  # as torch: an answer of () would go unnoticed in a zip
        raise RuntimeError("grad: no inputs; give the Tensors to differentiate with respect to")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):     # one Tensor, array or number
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} "
                           f"grad_outputs; give one (or None) per output")
    seeds = []
    for i, (out, g) in enumerate(zip(outputs, grad_outputs)):
        if not out.requires_grad:
            raise RuntimeError(f"grad: output {i} does not require a gradient: "
                               f"{_NO_GRAPH_CAUSES}")
        seeds.append(_seed(out, g, "grad", f"grad_outputs[{i}]"))
    _check_inputs_require_grad(inputs, "grad", "the outputs")
    found = _run_backward(outputs, seeds, create_graph if retain_graph is None else retain_graph,
                          create_graph, wanted=inputs)
    unused = [i for i, g in enumerate(found) if g is None]
    if unused and not allow_unused:
        raise RuntimeError(f"grad: input {unused[0]} was not used to compute the outputs, so "
                           f"it has no gradient; pass allow_unused=True to get None for it")
    return tuple(found)


def _check_inputs_require_grad(inputs, caller, computed):
    """RuntimeError, in one line, for the first of grad's or backward's `inputs` that does not
    require a gradient: none can flow to it, whatever was `computed` from it."""
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"{caller}: input {i} does not require a gradient, so nothing can "
                               f"be differentiated with respect to it: create it with "
                               f"requires_grad=True (or call .requires_grad_()) before computing "
                               f"{computed} from it")


def _tensor_arguments(items, what, caller="grad"):
    """grad's `outputs` or `inputs` (`what`: "output", "input"), or backward's `inputs`, a
    Tensor or an iterable of them, as a list. Anything else is refused in one line naming it,
    as torch refuses it: an array or a string met `.requires_grad` ("'numpy.ndarray' object
    has no attribute"), and a dict gave its keys."""
    if isinstance(items, Tensor):
        return [items]
    if isinstance(items, dict):
        raise TypeError(f"{caller}: the {what}s are a dict; give its Tensors, a list of them "
                        f"(its .values())")
    try:
        items = list(items)
    except TypeError:
        module = callable(getattr(items, "parameters", None))    # a module: its parameters
        raise TypeError(f"{caller}: the {what}s must be a Tensor or a sequence of Tensors, got "
                        f"{type(items).__name__}"
                        + (" (a module's are model.parameters())" if module else "")) from None
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{caller}: {what} {i} is a {type(t).__name__}, not a Tensor: give the "
                            f"Tensors themselves (p, not p.data), which hold the graph")
    return items


def _zero_grads(params, set_to_none=True):
    """Module's and the optimizers' zero_grad: forget each gradient (None), or, with
    set_to_none=False, set it to zeros in place, as torch's."""
    for p in params:
        if set_to_none or p._grad is None:
            p._grad = None
        else:
            p._grad[...] = 0
        p.grad_tensor = None


# --------------------------------------------------------------------------------------------
# Functions of several tensors


@_numpy_keywords
def concat(tensors: Sequence[Operand], axis: int | None = 0) -> Tensor:
    """Join tensors along an existing axis (numpy's concatenate); an array or number among them
    joins as a constant Tensor. With axis=None, as numpy, the tensors are flattened first:
    each is reshaped to one axis, so the gradient reshapes back."""
    tensors = _tensor_list(tensors, "concat", axis)
    if axis is None:
        return ops.Concat.apply(*[t.reshape(-1) for t in tensors], axis=0)
    return ops.Concat.apply(*tensors, axis=axis)


@_numpy_keywords
def stack(tensors: Sequence[Operand], axis: int = 0) -> Tensor:
    """Join tensors along a new axis (numpy's stack); an array or number among them joins as
    a constant Tensor."""
    return ops.Stack.apply(*_tensor_list(tensors, "stack", axis), axis=axis)


def _tensor_list(tensors, op, axis):
    """The tensors to join, as a list of Tensors whose dtypes join as torch's; refused when
    there are none (numpy's words for it, "shapes : need at least one array", would blame
    shapes), or when the second tensor came as the axis (the list forgotten: concat(a, b))."""
    if isinstance(axis, Tensor):
        raise TypeError(f"{op} takes a list of tensors: {op}([a, b], axis=0)")
    # Numbers and arrays become Tensors here, as numpy makes arrays of them: concat's axis=None
    # reshapes each, and Function.apply would refuse a tuple of numbers, which it takes for a
    # setting given positionally. Each is lifted as an operand of `+` is (`_lift`), against
    # the dtype the Tensors among them join in: a float64 array joined to float16 tensors is
    # float16, as float16 + the array is. With no Tensor among them, the first becomes one, as
    # the first of two arrays does in `_operands`.
    tensors = list(tensors)                 # (a generator is read once)
    if not all(isinstance(t, Tensor) for t in tensors):
        given = [t for t in tensors if isinstance(t, Tensor)]
        if not given:
            given = [Tensor(_numbers(tensors[0], f"{op}: tensors[0]"))]
            tensors = [given[0], *tensors[1:]]
        dtypes = [t.dtype for t in given]
        floats = [dtype for dtype in dtypes if dtype.kind in "fc"]
        like = Tensor._make(np.empty(0, np.result_type(*(floats or dtypes))))   # its dtype alone
        tensors = [_lift(t, like, f"{op}: tensors[{i}]") for i, t in enumerate(tensors)]
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor, got an empty list")
    floats = [t.dtype for t in tensors if t.dtype.kind in "fc"]
    if floats and len(floats) < len(tensors):
        # Integers and booleans joined to floating-point tensors take their dtype, as for `+`
        # (`_operands`) and in torch: numpy would make int64 and float32 float64.
        dtype = np.result_type(*floats)
        tensors = [t if t.dtype.kind in "fc" else Tensor._make(t.data.astype(dtype))
                   for t in tensors]
    return tensors


def where(cond: Tensor | ArrayLike, a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Elementwise `a if cond else b`, broadcasting all three; the gradient flows to whichever
    side was chosen."""
    return _where(cond, a, b, "where", ("cond", "a", "b"))


def _where(cond, a, b, op, names):
    """where(cond, a, b) for `op` (where, masked_fill), whose errors name the arguments."""
    if not isinstance(cond, Tensor):
        cond = Tensor(_numbers(cond, f"{op}: {names[0]}"))
    if not isinstance(a, Tensor):
        a = _lift(a, b, f"{op}: {names[1]}") if isinstance(b, Tensor) else Tensor(
            _numbers(a, f"{op}: {names[1]}"))
    if not isinstance(b, Tensor):
        b = _lift(b, a, f"{op}: {names[2]}")
    if cond.dtype != bool:                  # (a boolean one goes as it is: a change to it counts)
        cond = Tensor._make(cond.data.astype(bool))
    return ops.Where.apply(cond, *_operands(a, b))


# --------------------------------------------------------------------------------------------
# Function.apply's checks and the errors it raises. From here on, what a first reading
# can skip: how the core above refuses mistakes, and what it takes besides Tensors.


def _missing(ctx, method):
    """The error for a Function subclass without its own `method` (its signature)."""
    who = ctx.fn.__name__ if isinstance(ctx, Context) else "this Function"
    return NotImplementedError(f"{who} has no {method.split('(')[0]} method: a Function needs "
                               f"its own {method}, a @staticmethod")


def _forward_result(fn, data):
    """What op `fn`'s forward returned, when it is not a numpy array, as one: numpy's scalar (a
    full reduction gives one) or a Python number becomes a 0-d array. Several outputs are
    refused, as is what is not numbers: None, most often, from a forward that forgot its
    `return` (numpy would make an array of objects of it, failing later with words that name
    neither the op nor the slip)."""
    if isinstance(data, (tuple, list)):
        # numpy would stack several outputs into one array: a silently different op
        raise TypeError(f"{fn.name()}.forward returned a {type(data).__name__}; a Function "
                        f"has one output, a numpy array (write one Function per output)")
    array = np.asarray(data)
    if array.dtype.kind not in "biufc":
        what = "None (is its return missing?)" if data is None else f"a {type(data).__name__}"
        raise TypeError(f"{fn.name()}.forward returned {what}; a Function has one output, a "
                        f"numpy array")
    return array


def _raise_if_forward_does_not_take(fn, ctx, arrays, settings):
    """Raise, naming `apply`'s arguments and forward's parameters, where forward's TypeError
    came from calling it with arguments it does not take: Python's own words count ctx among
    the arguments ("takes 2 positional arguments but 3 were given" for one input too many).
    Return where forward was called rightly, and raised inside."""
    signature = inspect.signature(fn.forward)
    try:
        signature.bind(ctx, *arrays, **settings)
    except TypeError as error:
        given = f"{len(arrays)} input{'s' if len(arrays) != 1 else ''}"
        if settings:
            given += f" and the settings {', '.join(f'{key}=' for key in settings)}"
        raise TypeError(f"{fn.__name__}.apply got {given}, which its forward{signature} does "
                        f"not take ({error}): apply takes forward's arguments after ctx, the "
                        f"inputs positionally and the settings as keywords") from None


def _complex_in_graph(fn, dtype):
    """The error for op `fn` giving a complex result from a tensor that requires a gradient:
    its backward would need the conjugate of every operand, as torch takes it, which no op
    here does, so the gradient would be silently wrong."""
    return TypeError(f"{fn.name()}: its result is {dtype}, and complex numbers are not "
                     f"differentiated here: keep what meets a tensor that requires a gradient "
                     f"real, or .detach() the tensor to compute with it outside the graph")


def _views_a_leaf(t):
    """Whether t is a view of a leaf that requires grad, through recorded ops that gave views
    (an index, a reshape, a transpose that numpy made without a copy: each shares its input's
    stamp of changes), one or several."""
    while t.grad_fn is not None:
        node = t.grad_fn
        if not node.fn.views_input or node.freed or t._changed_at is None:
            return False
        if t._changed_at is not node.inputs[0]._changed_at:   # a copy (an integer index)
            return False
        t = node.inputs[0]
    return t._requires_grad


def _stamped_with_what_it_views(out, t):
    """`out`, sharing t's stamp where its array is t's or a view of it (a reshape, a transpose,
    an index: not a copy), so that a change through either is a change of both. numpy's `base`
    of a view is the array that owns the memory."""
    array, base = out.data, out.data.base
    if t.data is array or base is not None and (t.data is base or t.data.base is base):
        out._sharing_stamp_with(t)
    return out


def _raise_shape_error(fn, inputs, error):
    """Raise the ShapeError that numpy's ValueError in op `fn` amounts to, naming the op and
    its operands' shapes; return when the error is not about the shapes. The op's
    `shape_errors` and the error's type tell, not its words: numpy's AxisError is an axis out
    of range.

    Raised here, never bound to a name: a frame that held the ShapeError in a variable would be
    on the error's own traceback, a reference cycle that keeps the op's inputs (and their
    arrays) alive until the garbage collector next runs."""
    shapes = " and ".join(str(t.shape) for t in inputs)
    if fn.shape_errors == "broadcast" and len(inputs) > 1:
        if not _broadcastable(t.shape for t in inputs):
            raise ShapeError(f"{fn.name()}: shapes {shapes} do not broadcast (each trailing "
                             "size must match or be 1)") from None
    if fn.shape_errors == "shapes" or isinstance(error, np.exceptions.AxisError):
        raise ShapeError(f"{fn.name()}: shapes {shapes}: {error}") from None


def _broadcastable(shapes):
    """Whether the shapes broadcast together."""
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Checks for Functions written outside tinyautograd (Function.__init_subclass__ needs
# _CheckedContext only once a subclass is defined: the first ones are in ops.py, imported at
# the end of this file).


# The names the engine reads or writes on a context: a custom Function that stored its own value
# under one of them would break the engine later, far from the cause.
_ENGINE_NAMES = frozenset({
    "fn", "name", "inputs", "needs_input_grad", "output", "operands", "result", "create_graph",
    "array", "free", "freed", "freed_by_error", "created_at", "backward_of", "module_path"})


class _CheckedContext(Context):
    """The context of a Function written outside tinyautograd: it refuses, at once, a value
    stored under a name the engine owns (`ctx.inputs = x`). The engine's own ops get a plain
    Context, since a `__setattr__` written in Python would slow every attribute they set. The
    engine writes its own names into `__dict__`, which this check does not see (see Context),
    as `__init__` does here."""

    def __init__(self, fn: type[Function], inputs: tuple[Tensor, ...],
                 needs_input_grad: tuple[bool, ...]) -> None:
        state = self.__dict__
        state["fn"], state["inputs"], state["needs_input_grad"] = fn, inputs, needs_input_grad

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _ENGINE_NAMES:
            raise AttributeError(f"ctx.{name} is the engine's own: keep your value under "
                                 f"another name (ctx.my_{name} = value, say)",
                                 name=name, obj=self)
        object.__setattr__(self, name, value)

    # The arrays a backward reads are the caller's tensors' own: read-only views of them, so
    # that `a *= 2` or `a[a < 0] = 0` in a backward cannot change an input or the output.
    @property
    def operands(self) -> tuple[Tensor, ...] | tuple[np.ndarray, ...]:
        operands = Context.operands.fget(self)
        return operands if _mode.grad_enabled else tuple(_read_only(operands))

    @property
    def result(self) -> Tensor | np.ndarray:
        result = Context.result.fget(self)
        return result if _mode.grad_enabled else _read_only([result])[0]

    def array(self, i: int) -> np.ndarray:
        return _read_only([Context.array(self, i)])[0]


def _read_only(arrays):
    """Read-only views of `arrays`, for a user's Function to compute with: a change in place
    (`a *= 2`, `a[a < 0] = 0`) would silently change the caller's tensor, or another tensor's
    gradient, and every gradient computed from it later. numpy then raises its ValueError
    ("assignment destination is read-only", "output array is read-only") at that line."""
    views = []
    for a in arrays:
        if a.flags.writeable:
            a = a.view()
            a.flags.writeable = False
        views.append(a)
    return views


def _writeable_again(data, inputs):
    """A forward's result that is one of the read-only views `_read_only` made of the `inputs`'
    arrays, or a view of one (`return a`, `a.reshape(...)`), made writeable, as the array it
    views is: it is a tensor of the caller's from now on. (numpy's `base` of a view is the
    array that owns the memory.) Returns the input it views, None where it views none."""
    if data.base is None:
        return None
    for t in inputs:
        if t.data.flags.writeable and data.base is (t.data if t.data.base is None
                                                    else t.data.base):
            # Not a view that repeats elements (np.broadcast_to's, a sliding window): numpy
            # makes those read-only itself, since a write through one element would change
            # others, and the caller's input with them.
            if not _repeats_elements(data):
                data.flags.writeable = True
            return t
    return None


def _repeats_elements(array: np.ndarray) -> bool:
    """Whether `array` may be a view that holds some element more than once (a stride of 0, as
    np.broadcast_to makes, or windows that overlap). Its axes taken from the smallest step
    (stride) up, each must step past all the bytes the smaller ones reach, as a C or Fortran
    array's do; else elements may meet (a rare interleaving where they do not is counted too,
    the safe way). Comparing the array's bytes with the span from its first element to its
    last would miss a broadcast of a strided view, whose span is large."""
    if array.size == 0:
        return False
    reach = array.itemsize                       # bytes the axes taken so far reach
    for stride, size in sorted((abs(stride), size)
                               for stride, size in zip(array.strides, array.shape) if size > 1):
        if stride < reach:
            return True
        reach += (size - 1) * stride
    return False


def _as_inputs(fn, inputs):
    """The positional inputs of `fn.apply` as Tensors: numbers, arrays and lists of numbers
    become constants. A tuple is refused: it is a setting (an axis, a shape) given positionally,
    which numpy would make an array of. What Tensor() refuses (None, a string, a list of Tensors
    that require a gradient) is refused with Tensor's own words, naming the argument."""
    tensors = []
    for i, x in enumerate(inputs):
        if not isinstance(x, Tensor):
            where = f"{fn.name()}.apply: positional argument {i}"
            if isinstance(x, tuple):
                raise TypeError(f"{where} is a tuple; settings (an axis, a shape) go as keywords "
                                f"(name=value)")
            try:
                x = Tensor(x)
            except TypeError as error:
                # Not numbers, nor a list of them: a setting (None, a string), most likely.
                hint = "" if isinstance(x, list) else "; a setting goes as a keyword (name=value)"
                raise TypeError(f"{where}: {str(error).removeprefix('Tensor: ')}{hint}") from None
        tensors.append(x)
    return tuple(tensors)


def _keyword_tensor(fn, key):
    """The error for keyword argument `key` of `apply`, a Tensor that requires a gradient: the
    engine records only the positional inputs, so it would silently get no gradient (torch's
    apply takes no keyword arguments at all)."""
    return TypeError(f"{fn.name()}.apply: the keyword argument {key}= is a Tensor that requires "
                     f"a gradient, which a keyword never gets: pass it positionally, as a "
                     f"differentiable input")


# --------------------------------------------------------------------------------------------
# Operands: how numbers, arrays and lists meet a Tensor, and the dtype of the result


class _NotNumbers(TypeError):
    """An operand that is neither a Tensor nor numbers: None, a string, a dict. numpy would
    make an array of objects of it (NaN, once cast) or read the string ("2" adding 2).
    The operators answer NotImplemented for it, so that Python raises its own TypeError, as
    for torch ("unsupported operand type(s) for +: 'Tensor' and 'NoneType'"); every other
    caller names itself and the argument (`what`), and the user gets a TypeError saying so."""


def _numbers(value, what=None):
    """`value` (not a Tensor) as a numpy array of numbers or booleans; anything else refused:
    with `what` ("where: b"), by a TypeError naming it; without, by _NotNumbers. A list that
    holds Tensors that require a gradient is refused as Tensor() refuses it (`_drops_graph`):
    numpy would read their numbers through __array__, and `a + [a, a]` would silently get half
    of a's gradient."""
    if isinstance(value, (list, tuple)) and _mode.grad_enabled and _holds_graph(value):
        raise _drops_graph(value, what or "an operand")
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        if what is None:
            raise _NotNumbers(type(value).__name__)
        raise TypeError(f"{what} must be a number, an array of numbers or a Tensor, got "
                        f"{type(value).__name__}")
    return array


# A Python number is "weak", as in torch (and numpy 2): it takes the tensor's dtype, unless it is
# of a higher kind (bool < int < float < complex), then its own kind's default dtype. So an int8
# tensor + 1 stays int8, 0.5 * a float16 tensor stays float16, and an integer tensor * 0.5
# gives float32. Ranks by numpy's dtype kinds, and each Python type's rank and default dtype:
_KIND_RANKS = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}
_PYTHON_NUMBERS = {bool: (0, np.dtype(bool)), int: (1, np.dtype(np.int64)),
                   float: (2, np.dtype(DEFAULT_DTYPE)), complex: (3, np.dtype(np.complex64))}


def _refuse_floats(symbol, *tensors):
    """The error for & | ^ ~ on a tensor that is not booleans or integers."""
    for t in tensors:
        if t.dtype.kind not in "biu":
            raise TypeError(f"{symbol} works on boolean masks (or integers, bit by bit), not "
                            f"{t.dtype}: compare first, as in (x > 0) & (x < 1)")


def _lift(value, like, what=None):
    """A Tensor for an operand. A Python number is weak (above). numpy arrays of real numbers
    that meet a floating-point tensor take its dtype (so a float64 tensor keeps float64
    operands exact); any other, a complex one included (a cast would drop its imaginary part),
    goes through the Tensor constructor. What is not numbers is refused (`_numbers`)."""
    if isinstance(value, Tensor):
        return value
    number = _PYTHON_NUMBERS.get(value.__class__)     # (numpy's scalars are arrays here)
    if number is not None:
        rank, own_dtype = number
        dtype = like.dtype if rank <= _KIND_RANKS[like.dtype.kind] else own_dtype
        try:
            return Tensor._make(np.asarray(value, dtype))
        except OverflowError:
            # Beyond a narrow integer dtype the number wraps, as in torch: uint8 - 1 is 255, and
            # so do comparisons (a uint8 tensor == 300 compares with 44), where numpy 2 would
            # compare the numbers as they are.
            return Tensor._make(np.asarray(value).astype(dtype))
    array = _numbers(value, what)
    if like.dtype.kind == "f" and array.dtype.kind != "c":
        return Tensor._make(array.astype(like.dtype, copy=False))
    return Tensor(array)


def _operands(a, b, names=None):
    """The two operands of a binary op, in its order, as Tensors whose dtypes combine as torch
    combines them. A number or array is lifted (`_lift`); an integer or boolean tensor that
    meets a floating-point one computes in that one's dtype: numpy would make int64 and
    float32 float64, torch keeps float32. (Ops whose results are fractions,
    such as `/` and `exp`, turn integers into float32 themselves: `ops._floating`.) `names`
    name a function's two arguments in the error for one that is not numbers; without them,
    an operator's operands, _NotNumbers is raised (see `_binary`). Where neither is a Tensor
    (a function's two arrays), the first becomes one as `Function.apply` makes it, and the
    second is lifted against it."""
    if not isinstance(b, Tensor):
        if not isinstance(a, Tensor):
            a = Tensor(_numbers(a, names and names[0]))
        b = _lift(b, a, names and names[1])
    elif not isinstance(a, Tensor):
        a = _lift(a, b, names and names[0])
    if a.data.dtype is not b.data.dtype:            # the usual case is one dtype: no more work
        a_floats, b_floats = a.dtype.kind in "fc", b.dtype.kind in "fc"
        if a_floats and not b_floats:               # an integer tensor never requires a grad:
            b = Tensor._make(b.data.astype(a.dtype))  # no graph is lost by the conversion
        elif b_floats and not a_floats:
            a = Tensor._make(a.data.astype(b.dtype))
        elif (a.ndim == 0) != (b.ndim == 0) and (_KIND_RANKS[a.dtype.kind]
                                                 == _KIND_RANKS[b.dtype.kind]):
            # A 0-d tensor of the other's kind takes its dtype, as a Python number does and as
            # in torch: float16 activations times a float32 scale (a loss, a norm) stay float16,
            # where numpy 2 would widen them all. The cast is in the graph, its gradient cast back.
            if a.ndim == 0:
                a = a.astype(b.dtype)
            else:
                b = b.astype(a.dtype)
    return a, b


def _binary(fn, a, b):
    """`a <op> b` for the operators: NotImplemented for an operand that is not numbers, so that
    Python tries the other operand's method and then raises its own TypeError, as for torch."""
    try:
        a, b = _operands(a, b)
    except _NotNumbers:
        return NotImplemented
    return fn.apply(a, b)


def _floor_divide(a, b):
    """`a // b`: numpy's floor_divide, torch's, the quotient rounded down (toward -inf), so
    that a == (a // b) * b + a % b (-7 // 2 is -4). A step function has no useful gradient:
    its result is a constant, outside the graph, as a comparison's, which is a gradient of 0
    through it (torch records it, and its backward refuses: "derivative for
    aten::floor_divide is not implemented"). A float divided by 0 is +-inf (0 / 0 NaN), with
    numpy's warning; an integer divided by 0, or a boolean by a boolean, is refused as torch
    refuses it (`ops.check_integer_division`)."""
    return _outside_graph(a, b, _floor_divided, "//")


def _floor_divided(a, b):
    ops.check_integer_division("//", a, b)
    return np.floor_divide(a, b)


def _outside_graph(a, b, compute, name):
    """`compute` of two operands' arrays, in the dtype `+` computes in, as a constant Tensor
    outside the graph (a comparison, a // b). NotImplemented for an operand that is not
    numbers, as `_binary`'s; shapes that do not broadcast, a ShapeError naming `name`."""
    try:
        a, b = _operands(a, b)
    except _NotNumbers:
        return NotImplemented
    try:
        return Tensor._make(compute(a.data, b.data))
    except ValueError:                          # numpy's only one here: shapes that misfit
        raise ShapeError(f"{name}: shapes {a.shape} and {b.shape} do not broadcast (each "
                         f"trailing size must match or be 1)") from None


def _scaled(fn, a, b):
    """`a * b` and `a / b` (fn is Mul or Div): `_binary`'s, but a float16 tensor times or over a
    number that float16 cannot hold exactly is computed in float32 and rounded to float16 once,
    as torch computes it: the number rounded to float16 first would make 0.01 * 1e5 inf,
    1000 * 1e-8 zero and 0.01 / 1e-5 999. (torch's + - ** round the number first, as
    `_binary` does.) The casts are ops of the graph: the gradient is computed the same way."""
    if _half_with_a_number(a, b):
        a, b = (x.astype(np.float32) if _is_half(x) else x for x in (a, b))
        return _binary(fn, a, b).astype(np.float16)
    return _binary(fn, a, b)


_HALF = np.dtype(np.float16)
_HALF_MAX = 65504.0                            # float16's largest number


def _is_half(x):
    return isinstance(x, Tensor) and x.data.dtype is _HALF


def _half_with_a_number(a, b):
    """Whether `a * b` or `a / b` is a float16 tensor with a number that float16 cannot hold
    exactly: a Python number, or a 0-d tensor or array of another dtype (torch takes those for
    numbers too)."""
    half, number = (a, b) if _is_half(a) else (b, a)
    if not _is_half(half):                     # the usual case: no float16 at all
        return False
    if isinstance(number, Tensor):
        if half.ndim == 0 and number.ndim == 0 and number.dtype.kind == "f":
            # Two 0-d tensors combine as any two tensors do (`_operands`): float16 with a wider
            # float gives the wider dtype, as torch's and as their `+` (a float16 loss times a
            # float32 scale of 65536 is no inf), where float16 would be a number's rule.
            return False
        number = number.data
    if isinstance(number, (np.ndarray, np.generic)):
        if number.ndim or number.dtype.kind not in "iuf" or number.dtype is _HALF:
            return False
        number = number.item()
    elif number.__class__ not in (int, float):  # (True and False are exact)
        return False
    return not abs(number) <= _HALF_MAX or float(np.float16(number)) != number


def _kept_like(x, y, new, symbol):
    """`new`, the recorded x = x <symbol> y of an augmented assignment, in x's shape and dtype,
    as numpy's and torch's x op= y keep them (and as ours does where nothing is recorded): a y
    that broadcasts x to a bigger shape is refused, and so is a result of a higher kind than
    x's (a float into an integer tensor); a wider float is cast back (float32 x += a float64
    y stays float32), the cast recorded, its gradient cast back."""
    if new.shape != x.shape:
        raise ShapeError(f"in-place {symbol}=: shapes {x.shape} and {np.shape(y)} do not give "
                         f"this tensor's shape; write x = x {symbol} y")
    if new.dtype != x.dtype:
        if not np.can_cast(new.dtype, x.dtype, "same_kind"):
            raise TypeError(f"in-place {symbol}= cannot keep this tensor's dtype {x.dtype} (the "
                            f"result is {new.dtype}); write x = x {symbol} y")
        new = new.astype(x.dtype)
    return new


_UPDATES = {   # x op= y: numpy's in-place ufunc, and the recorded x op y
    "+": (np.add, operator.add), "-": (np.subtract, operator.sub),
    "*": (np.multiply, operator.mul), "/": (np.true_divide, operator.truediv),
    # Pow's rule for a negative y; called through a lambda, as `ops` is imported at the end
    "**": (lambda x, y: ops.power(x, y), operator.pow),
    "//": (np.floor_divide, operator.floordiv), "%": (np.remainder, operator.mod),
    "&": (np.bitwise_and, operator.and_), "|": (np.bitwise_or, operator.or_),
    "^": (np.bitwise_xor, operator.xor),
}
_BIT_UPDATES = ("&", "|", "^")
_DIVISIONS = ("//", "%")


def _holds_graph(items):
    """Whether a list or tuple, nested or not, holds a Tensor that requires a gradient."""
    for item in items:
        if isinstance(item, Tensor):
            if item._requires_grad:
                return True
        elif isinstance(item, (list, tuple)) and _holds_graph(item):
            return True
    return False


def _drops_graph(data, who):
    """The error for `data`, a list or tuple holding Tensors that require a gradient, which
    `who` would turn into a constant: numpy reads their numbers, silently dropping the graph
    (torch only warns for single numbers, and its operators take no lists)."""
    return TypeError(f"{who}: the {type(data).__name__} holds Tensors that require a gradient, "
                     f"whose graph a new Tensor would drop: join them with ta.stack([...]) (or "
                     f"ta.concat), or .detach() them for a constant")


# --------------------------------------------------------------------------------------------
# Tensor's helpers: hook handles, axes and shapes given either way, indices


class _HookHandle:
    """What registering a hook returns, as torch's: `remove()` takes this registration off,
    once (again, it does nothing: the same function registered twice keeps its other one),
    and `with handle:` takes it off at the block's end."""

    def __init__(self, hooks, hook):
        self.hooks, self.hook, self.removed = hooks, hook, False

    def remove(self) -> None:
        if not self.removed and self.hook in self.hooks:
            self.hooks.remove(self.hook)
        self.removed = True

    def __enter__(self) -> _HookHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def _axes(axis):
    """A reduction's `axis` as numpy takes it: a list of axes, as torch's dim=[0, 1] takes
    them, becomes a tuple (numpy's reductions refuse a list: "'list' object cannot be
    interpreted as an integer")."""
    return tuple(axis) if isinstance(axis, list) else axis


def _check_axis(op, x, axis):
    """ShapeError naming `op` for an axis out of range of x, as the ops' own errors do: mean and
    var are made of other ops (sum, -, *), whose names the user did not call, and argmax of
    numpy's alone, whose AxisError names no op."""
    try:
        ops._reduced_axes(x.shape, axis)
    except np.exceptions.AxisError as error:
        raise ShapeError(f"{op}: shapes {x.shape}: {error}") from None


def _is_sequence(value):
    """Whether a shape or axes came as one sequence: a tuple, a list, or a 1-D numpy array, as
    numpy takes them (`y.transpose(np.argsort(axes))` undoes a permutation)."""
    return isinstance(value, (tuple, list)) or isinstance(value, np.ndarray) and value.ndim == 1


def _one_sequence(args):
    """A method's `*shape` or `*axes`, as a tuple whether it came as one sequence or as
    separate numbers (`reshape((2, -1))` and `reshape(2, -1)`)."""
    if len(args) == 1 and _is_sequence(args[0]):
        return tuple(args[0].tolist() if isinstance(args[0], np.ndarray) else args[0])
    return args


def _refuse_exact_gelu(who, approximate):
    """GELU's `approximate=` other than 'tanh' (Tensor.gelu's, F.gelu's, nn.GELU's): torch's
    default, 'none', is a form not computed here, and a silent tanh would differ from it."""
    raise ValueError(f"{who}: approximate={approximate!r} is not computed here: ours is the "
                     f"tanh form (torch's default 'none' is the exact erf form); pass "
                     f"approximate='tanh' or nothing")


def _plain_index(index):
    """Tensors inside an index become their arrays."""
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index.data if isinstance(index, Tensor) else index


# --------------------------------------------------------------------------------------------
# PyTorch's names, answered with what to write here


# PyTorch's Tensor methods that are missing here, and what to write instead (the README's
# "Coming from PyTorch"), for Tensor.__getattr__'s error.
_TOPK = ("np.sort(x.data, axis=-1)[..., -k:], the k largest, smallest first (torch's come "
         "largest first), and x.data.argsort(axis=-1)[..., -k:] their indices")
_LOGSUMEXP = ("m + (x - m).exp().sum(axis, keepdims=True).log() with m = x.max(axis, "
              "keepdims=True).detach(), stable for large values (x.log_softmax(axis) is x "
              "minus it, fused)")
# clamp(min, max): both bounds (a bound not given: drop its where)
_CLAMP = "ta.where(x < low, low, ta.where(x > high, high, x))"
_TORCH_TENSOR_NAMES = {
    "view": "reshape", "permute": "transpose(*axes), all the axes as numpy's",
    "unsqueeze": "an index, x[:, None], or reshape", "squeeze": "reshape, or an index x[:, 0]",
    "flatten": "reshape(-1)", "expand": "broadcast_to", "contiguous": "nothing: drop it",
    "t": ".T", "mT": "swapaxes(-2, -1)", "matmul": "@", "pow": "**",
    "float": "astype(np.float32)", "double": "astype(np.float64)",
    "half": "astype(np.float16)", "long": "astype(np.int64)", "int": "astype(np.int32)",
    "to": "astype(dtype); there are no devices: every tensor is a numpy array",
    "cpu": "nothing: every tensor is a numpy array", "cuda": "nothing: numpy runs on the CPU",
    "device": "nothing: every tensor is a numpy array, on the CPU",
    "amax": "max(axis)", "amin": "min(axis)",
    "std": "var(axis).sqrt() (var divides by n; ddof=1 for PyTorch's n - 1)",
    "clamp": _CLAMP, "split": "slices: x[..., :k], x[..., k:]",
    "chunk": "slices: x[..., :k], x[..., k:]",
    "norm": "(x * x).sum(axis).sqrt(), the 2-norm; in a gradient penalty, ((x * x).sum(axis) "
            "+ 1e-12).sqrt(), whose gradient where x is all 0 is 0, as torch's, not 0/0 = NaN",
    "gather": "integer-array indexing: x[np.arange(n)[:, None], index] for x.gather(1, index)",
    "clone": "x.astype(x.dtype), a copy in the graph, as numpy's astype copies",
    "topk": _TOPK, "logsumexp": _LOGSUMEXP,
    "clip": _CLAMP, "bool": "astype(bool)",
    "type": "astype(dtype) for a cast, x.dtype for the type",
    "where": "ta.where(condition, x, y) for x.where(condition, y)",
    "argmin": "x.data.argmin(axis), numpy's (indices have no gradient)",
    "argsort": "x.data.argsort(axis), numpy's (indices have no gradient)",
    "sort": "x[np.arange(n)[:, None], x.data.argsort(axis=1)] for x.sort(1).values of an "
            "(n, k) x, indexing by numpy's argsort, which gives the indices",
    "cumsum": "x @ ta.Tensor(np.triu(np.ones((n, n), x.dtype))) for x.cumsum(-1) of an "
              "(..., n) x (swapaxes first for another axis)",
    "repeat": "ta.concat([x] * n, axis), n copies along one axis (x.repeat(n, 1) of a matrix is "
              "ta.concat([x] * n, axis=0))",
    "new_zeros": "ta.zeros(*shape, dtype=x.dtype)", "new_ones": "ta.ones(*shape, dtype=x.dtype)",
    "tril": "ta.where(np.tril(np.ones((n, n), bool)), x, 0) for an (..., n, n) x",
    "triu": "ta.where(np.triu(np.ones((n, n), bool)), x, 0) for an (..., n, n) x",
}


class ElementCount(int):
    """Tensor.size: numpy's, the number of elements, an int in every use (x.size == 6,
    np.zeros(x.size)). torch's size is a method, the shape: called as one, x.size() or
    x.size(1), this says what to write here, where a plain int would say only that an int
    cannot be called."""

    def __call__(self, *dim: int) -> NoReturn:
        """Refuses torch's x.size(dim), saying to write x.shape[dim]."""
        raise TypeError("x.size() is PyTorch's, the shape; here, x.size is numpy's, the "
                        "number of elements, an int: write x.shape (x.shape[dim] for "
                        "x.size(dim))")


def _not_found(owner, name, hint, obj=None):
    """Python's AttributeError for `name` not found on `owner` ("'Tensor' object", "module
    'tinyautograd'"), with `hint` (what to write here for a PyTorch name), if any."""
    hint = f": that is PyTorch's; here, {hint}" if hint else ""
    return AttributeError(f"{owner} has no attribute {name!r}{hint}", name=name, obj=obj)


def _pointing_to_ours(owner, hints):
    """A module's __getattr__, which Python calls only for a name not found there: a PyTorch
    name in `hints` (name -> what to write here) gets ours in the error."""
    def __getattr__(name):
        raise _not_found(owner, name, hints.get(name))
    return __getattr__


# --------------------------------------------------------------------------------------------
# Checks of arguments, shared with nn, optim and random


# What the engine's arguments may be (a layer's sizes, a seed), each rule named as its errors
# say it. Checked where they are given, so that LayerNorm(4, eps="1e-5") or manual_seed(-1) is
# told so there, in one line, not by ctypes or numpy later. (tinyformer's schema has the same
# rules for a run's settings; the engine knows nothing of tinyformer.)
_RULES = {
    "a whole number >= 0": lambda v: isinstance(v, numbers.Integral) and v >= 0,  # 0, as torch
    "a finite number": lambda v: isinstance(v, numbers.Real) and math.isfinite(v),
    "a finite number in [0, 1]": lambda v: isinstance(v, numbers.Real) and 0 <= v <= 1,
}


def _check(where: str, rule: str, **values: Any) -> None:
    """ValueError, in one line naming `where` (a layer, a function), unless each of `values`
    follows `rule`, a key of _RULES (True is not the number 1 here, though Python says so)."""
    for name, value in values.items():
        if isinstance(value, bool) or not _RULES[rule](value):
            raise ValueError(f"{where}: {name} must be {rule}, got {value!r}")


def _brief(value):
    """repr(value) for a one-line error, or, where that is long or of several lines (a big
    array's), only its kind: "an array of shape (3, 4)", "a list"."""
    shown = repr(value)
    if len(shown) > 40 or "\n" in shown:
        shown = (f"an array of shape {value.shape}" if hasattr(value, "shape")
                 else f"a {type(value).__name__}")
    return shown


def _check_flag(value, name="requires_grad"):
    """Refuse a flag that is not True or False, as torch refuses it: 1, "yes", an array or
    numpy's np.True_ were taken for their truth, so a typo (`requires_grad="False"`, which is
    true) or an array meant for another argument went unnoticed."""
    if value is not True and value is not False:
        raise TypeError(f"{name} must be True or False, got {_brief(value)}")


from . import ops  # noqa: E402  (ops.py imports Function and Tensor: they must exist first)
