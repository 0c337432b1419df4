"""Neural-network building blocks: Parameter, Module, the common layers, and initialisers.

A Module is a Python object whose attributes hold its Parameters and its sub-Modules. There is no
registration step: `parameters()` walks the attributes (`vars(self)`, in the order they were
set), looking also into plain lists, tuples and dicts, nested to any depth: `self.blocks =
[Block(), Block()]` is found as `blocks.0`, `blocks.1`, and `self.transformer =
dict(h=[Block()])` as `transformer.h.0` (the names torch's ModuleDict and ModuleList give). The
names follow PyTorch's, so do most behaviours, with one deliberate difference: `Linear.weight`
has shape (in_features, out_features).
"""

from __future__ import annotations

import functools
import inspect
import math
import operator
import threading
import types
from collections import namedtuple
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import engine, functional, random
from .engine import ShapeError, Tensor, _check, _check_flag

# --------------------------------------------------------------------------------------------
# Which module made each op


_recorder = None     # the active record_module_paths, if any (read by Module.__call__)

# What a method that returns its own module (or list) is annotated to return: the type of that
# module, so that `model = GPT(...).eval()` is still a GPT to a type checker (typing.Self, from
# Python 3.11 on, says the same).
ModuleT = TypeVar("ModuleT", bound="Module")
ModuleListT = TypeVar("ModuleListT", bound="ModuleList")


class record_module_paths:
    """Context manager: while it is active, each op records the dotted path of the module
    whose forward made it, as `ctx.module_path` on its graph node (`"decoder.layers.0.attn"`;
    `""` for the root module's own forward; None for ops made outside any module, such as a
    loss).

        model = MLP()                                   # Module's example, below
        with nn.record_module_paths(model):
            loss = F.cross_entropy(model(x), y)
        loss.grad_fn.inputs[0].grad_fn.module_path     # "out": the logits' op

    Paths are the names `model.named_modules()` gives, so they match the parameter names; a
    module shared by two paths takes the first. Only a forward, run by calling its module,
    sets a path: the ops of another method go to the module whose forward called it (logits
    tied to a token embedding, `self.embed.unembed(x)` in a model's forward, are the
    model's, not the embedding's). A module outside `model`'s tree (made on the fly inside a
    forward) adds nothing: its ops go to the module that called it. Without a `model`, each
    outermost module called is taken as the root, so code that builds and runs its own
    model can be recorded from outside.
    """

    def __init__(self, model: Module | None = None) -> None:
        self.model = model
        self.names = None if model is None else _module_names(model)
        self.path = None       # the module whose forward runs now; None outside every module

    def __enter__(self) -> record_module_paths:
        global _recorder
        self.outer, _recorder = _recorder, self
        return self

    def __exit__(self, *exc: object) -> None:
        global _recorder
        _recorder = self.outer

    def call(self, module: Module, args: tuple, kwargs: dict) -> Any:
        """Run `module.forward(*args, **kwargs)` with its path as the current one, then restore
        the caller's."""
        if self.model is None and self.path is None:
            self.names = _module_names(module)     # an outermost call: this module is the root
        outer_path = self.path
        self.path = self.names.get(id(module), outer_path)
        try:
            with engine.annotate(module_path=self.path):
                return module.forward(*args, **kwargs)
        finally:
            self.path = outer_path


def _module_names(root):
    return {id(module): name for name, module in root.named_modules()}


# --------------------------------------------------------------------------------------------
# Parameter


class Parameter(Tensor):
    """A Tensor that a Module learns. It is an ordinary Tensor in every op (their results are
    plain Tensors); the subclass only tells `Module.parameters()` what to collect. `data`,
    `requires_grad` (True by default: a parameter is there to learn) and `dtype` are Tensor's;
    floats become float32, as for Tensor."""

    def __init__(self, data: ArrayLike | Tensor, requires_grad: bool = True,
                 dtype: DTypeLike | None = None) -> None:
        if isinstance(data, Tensor):    # a new leaf of its numbers, as torch's nn.Parameter(t),
            data = data.detach()        # where Tensor(t) refuses one with a graph
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    # `p.data = values` is how weights are loaded or cast by hand: a list or a number there
    # failed only later, in an op (no .shape), and a Tensor (torch's p.data takes one) in
    # state_dict. Checked on Parameter alone, where it is assigned: the ops' tensors pay
    # nothing, and every op still reads `.data` as a plain attribute.
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "data" and value.__class__ is not np.ndarray:
            value = _parameter_data(value)
        object.__setattr__(self, name, value)


def _parameter_data(value: Any) -> np.ndarray:
    """`value`, assigned to a parameter's `.data`, as the numpy array it must be: numpy's own
    numbers (a 0-d result) become 0-d arrays, as for `.grad`; anything else is refused."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    instead = ("its array, p.data = t.data" if isinstance(value, Tensor)
               else "np.asarray(values, dtype=p.dtype)")
    raise TypeError(f"a parameter's .data must be a numpy array, got {type(value).__name__}: "
                    f"assign {instead}")


# --------------------------------------------------------------------------------------------
# Module


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

# PyTorch's Module methods that are missing here, and what to write instead, for
# Module.__getattr__'s error. A model's dtype is its parameters' arrays' (float64 for gradcheck).
_CAST = "for p in model.parameters(): p.data = p.data.astype(np.{})"
_TORCH_MODULE_NAMES = {
    "double": _CAST.format("float64"), "float": _CAST.format("float32"),
    "half": _CAST.format("float16"),
    "to": ("nothing for a device (there are none); for a dtype, "
           "p.data = p.data.astype(dtype) for each p in model.parameters()"),
    "cuda": engine._TORCH_TENSOR_NAMES["cuda"], "cpu": engine._TORCH_TENSOR_NAMES["cpu"],
    "register_parameter": "an attribute, self.name = Parameter(...)",
    "add_module": "an attribute, self.name = module",
    "register_module": "an attribute, self.name = module",
    # A module's gradient is its output's: hooked once the forward has made it. (The forward
    # hook must return None: a value returned replaces the output.)
    **dict.fromkeys(("register_full_backward_hook", "register_backward_hook"),
                    "a forward hook that calls out.register_hook(fn) on its output and returns "
                    "None, def hook(module, args, out): out.register_hook(fn); fn(grad) then "
                    "gets dL/d(output)"),
    # A buffer is state that is saved but not learned (a running mean, a fixed table).
    "register_buffer": ("an attribute: self.name = nn.Parameter(array, requires_grad=False), "
                        "which state_dict saves and no optimizer moves (a plain array or "
                        "Tensor attribute is not saved)"),
    "buffers": "the frozen parameters, p for p in model.parameters() if not p.requires_grad",
    "named_buffers": ("the frozen parameters, (name, p) for name, p in "
                      "model.named_parameters() if not p.requires_grad"),
    # By name, as named_modules and named_parameters give the names (a shared one: its first).
    "get_submodule": "dict(model.named_modules())[name], name as in 'blocks.0.attn'",
    "get_parameter": "dict(model.named_parameters())[name], name as in 'blocks.0.attn.weight'",
}


class Module:
    """Base class of layers and models: write `__init__` to set attributes, and `forward`.

        class MLP(Module):
            def __init__(self):
                self.hidden = Linear(2, 16)
                self.act = ReLU()
                self.out = Linear(16, 2)

            def forward(self, x: Tensor) -> Tensor:
                return self.out(self.act(self.hidden(x)))

    Calling `super().__init__()` is allowed but not needed: the only state a Module has of its
    own is `training`, a class attribute until `train()` or `eval()` sets it.
    """

    training = True
    # Lists, on a module given hooks (register_forward_pre_hook, register_forward_hook). Not
    # learned state: _learned passes them by, as torch keeps hooks out of parameters().
    _forward_pre_hooks: list | tuple = ()
    _forward_hooks: list | tuple = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A Parameter or Module set in the class body is the class's, shared by every
        # instance; parameters(), state_dict() and train()/eval() read an instance's own
        # attributes, so it would be neither trained nor saved (a Dropout never switched off),
        # without a word.
        super().__init_subclass__(**kwargs)
        for name, value in _learned(vars(cls).items()):
            raise TypeError(f"{cls.__name__}.{name}: a {type(value).__name__} set in the class "
                            f"body belongs to the class, where parameters(), state_dict() and "
                            f"train() do not look; set it in __init__, "
                            f"self.{name.split('.')[0]} = ...")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_pre_hooks:                 # (a model without hooks pays two checks)
            args = self._run_pre_hooks(args)
        # One global check, so that a forward costs nothing extra unless paths are recorded.
        if _recorder is None:
            output = self.forward(*args, **kwargs)
        else:
            output = _recorder.call(self, args, kwargs)
        if self._forward_hooks:
            output = self._run_hooks(args, output)
        return output

    def _run_pre_hooks(self, args: tuple) -> tuple:
        for hook in tuple(self._forward_pre_hooks):       # a copy: a hook may remove itself
            replaced = hook(self, args)
            if replaced is not None:                      # torch's rule: a tuple, or one value
                args = replaced if isinstance(replaced, tuple) else (replaced,)
        return args

    def _run_hooks(self, args: tuple, output: Any) -> Any:
        for hook in tuple(self._forward_hooks):
            replaced = hook(self, args, output)
            if replaced is not None:
                output = replaced
        return output

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """What the module computes, written by each subclass. Call the module itself,
        `module(x)`, rather than `module.forward(x)`: that runs its hooks too."""
        raise NotImplementedError(f"{type(self).__name__} has no forward method")

    # -- what it contains -------------------------------------------------------------------
    def _members(self):
        """(name, value) for every Parameter and Module this module holds directly: its
        attributes in the order they were set, and the items of lists, tuples and dicts among
        them (and of those inside them), named `attribute.index` or `attribute.key`
        (`attribute.key.index`). Anything else is not learned state."""
        return _learned(vars(self).items())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each Module held directly, as in `blocks.0`; a module held under
        two names comes under each (as print(model) shows it), where `children()` gives it once."""
        for name, value in self._members():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> Iterator[Module]:
        """Each Module held directly, once, as torch's: `apply` walks these, so a module
        shared by two layers (`[block] * 3`) is initialised or rescaled once, not per name."""
        seen = set()
        for _, module in self.named_children():
            if id(module) not in seen:
                seen.add(id(module))
                yield module

    def named_modules(self) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (named '') and every module inside it, depth
        first, parents before children. A module reachable by two paths comes once."""
        # An explicit stack, not a recursive closure: a function that refers to itself makes a
        # reference cycle, left to the garbage collector at every parameters() call. Children
        # go on in reverse, so they come off in order, as the recursion would visit them.
        seen, stack = set(), [("", self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{child_name}" if name else child_name, child)
                        for child_name, child in module.named_children()]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every module inside it, once each: `named_modules()` without the
        names."""
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) for every parameter, as in `blocks.0.attn.q.weight`. Each
        module's own parameters come before those of its children (PyTorch's order). A shared
        (tied) parameter comes once, under the first name that reaches it. With
        `recurse=False`, as torch's, this module's own parameters alone."""
        _check_flag(recurse, "recurse")
        seen = set()
        for module_name, module in self.named_modules() if recurse else [("", self)]:
            for name, value in module._members():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{module_name}.{name}" if module_name else name), value

    def _every_parameter_name(self, prefix="", ancestors=()):
        """(dotted name, parameter) for every path to every parameter: a tied one, or one of a
        module held under two names, comes under each of its names, as torch's state_dict
        names it. A module that holds one of its ancestors is not walked into again."""
        ancestors = (*ancestors, id(self))
        for name, value in self._members():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif id(value) not in ancestors:
                yield from value._every_parameter_name(f"{prefix}{name}.", ancestors)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter, once (a tied one too), in `named_parameters()` order: what an
        optimizer takes, `optim.AdamW(model.parameters(), lr=...)`. With `recurse=False`,
        this module's own parameters alone (those of its children left out), as torch's."""
        for _, parameter in self.named_parameters(recurse):
            yield parameter

    def num_parameters(self) -> int:
        """How many numbers the model learns (a tied parameter counts once)."""
        return sum(p.size for p in self.parameters())

    # -- saving and loading -----------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """{name: a copy of the parameter's array}, in `named_parameters()` order. A tied
        parameter is saved once, under its first name (torch's saves it under each of its
        names: load_state_dict takes either)."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, ArrayLike | Tensor],
                        strict: bool = True) -> IncompatibleKeys:
        """Copy the arrays of `state` (a mapping name -> array or Tensor: `state_dict()`'s, or
        `np.load(path)` of a saved one) into the parameters' own arrays, in place: each
        parameter keeps its dtype, and whoever holds its array sees the new values.

        Everything is checked before anything is copied, so a failed load changes nothing.
        A shape mismatch, numbers that do not convert to the parameter's dtype (text,
        complex), or a parameter whose array is read-only, is always an error; keys present
        on one side only are an error when `strict`, and are otherwise returned as
        `(missing_keys, unexpected_keys)`.

        A tied parameter loads under any of its names: `state_dict()` saves it once, under
        its first, and torch's under each name (a module held twice, each of its parameters
        under both paths). Given under several names, it must hold the same numbers under
        each (torch's would keep the last copied).
        """
        if not isinstance(state, Mapping):      # a model, None, a list: errors about iteration
            raise TypeError(f"load_state_dict: expected a state dict (a mapping of names to "
                            f"arrays), got {type(state).__name__}; pass model.state_dict() or "
                            f"np.load(path)")
        own = dict(self.named_parameters())
        # A tied parameter, or one of a module held under two names, has a name for each path
        # to it, and torch's state_dict saves it under each: any of them loads it.
        every = dict(self._every_parameter_name())
        given = [name for name in every if name in state]
        loaded = {id(every[name]) for name in given}
        missing = [name for name, p in own.items() if id(p) not in loaded]
        unexpected = [name for name in state if name not in every]
        # A Tensor's numbers are read through .data: loading is no op of a graph, so another
        # model's parameters, which require a gradient, load as their arrays do.
        arrays = {name: np.asarray(_numbers_of(state[name])) for name in given}
        wrong_shapes = [f"{name}: {array.shape} in the state, {every[name].shape} in the model"
                        for name, array in arrays.items() if array.shape != every[name].shape]
        # Numbers of another kind (text, complex) would fail, or lose their imaginary part,
        # only when copied: after the parameters before them had been loaded.
        wrong_dtypes = [f"{name}: {array.dtype} in the state, {every[name].dtype} in the model"
                        for name, array in arrays.items()
                        if not np.can_cast(array.dtype, every[name].dtype, casting="same_kind")]
        # A matrix in the model's shape reversed is most likely a PyTorch Linear's weight.
        transposed = any(array.shape != every[name].shape and array.ndim == 2
                         and array.shape[::-1] == every[name].shape
                         for name, array in arrays.items())
        # One parameter given under two names is loaded from the first; the others must hold
        # the same numbers (torch's would keep whichever it copied last).
        first_given, tied_apart = {}, []
        for name in given:
            first = first_given.setdefault(id(every[name]), name)
            if first != name and not wrong_shapes and not np.array_equal(arrays[first],
                                                                          arrays[name]):
                tied_apart.append(f"{first} and {name}")
        arrays = {name: arrays[name] for name in first_given.values()}
        # A parameter may hold a read-only array (a Tensor keeps the one it is made from:
        # np.frombuffer's, np.load's with mmap_mode="r"): numpy would refuse it only when its
        # turn came, after the parameters before it had been loaded.
        read_only = [name for name in arrays if not every[name].data.flags.writeable]
        problems = []
        if wrong_shapes:
            hint = (" (a PyTorch Linear weight is (out, in): transpose it, .T)" if transposed
                    else "")
            problems.append(f"  wrong shapes: {'; '.join(wrong_shapes)}{hint}")
        if wrong_dtypes:
            problems.append(f"  wrong dtypes: {'; '.join(wrong_dtypes)}")
        if tied_apart:
            problems.append(f"  one parameter (tied) given different numbers under its names: "
                            f"{'; '.join(tied_apart)}")
        if read_only:
            problems.append(f"  read-only in the model (its array cannot be written; give the "
                            f"parameter a copy, p.data = p.data.copy()): {', '.join(read_only)}")
        if strict and missing:
            problems.append(f"  missing keys (in the model, not in the state): "
                            f"{', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"  unexpected keys (in the state, not in the model): "
                            f"{', '.join(map(str, unexpected))}")
        if problems:
            raise RuntimeError(f"load_state_dict: the state does not fit this "
                               f"{type(self).__name__}, nothing was loaded:\n"
                               + "\n".join(problems))
        # The model's own parameters given under other names (two layers' weights swapped,
        # from named_parameters()) would be read after being written over: copied first.
        held = {id(p.data): p for p in own.values()}
        for name, array in arrays.items():
            owner = held.get(id(array), held.get(id(array.base)))       # (a view of one)
            if owner is not None and owner is not every[name]:
                arrays[name] = array.copy()
        for name, array in arrays.items():
            every[name].data[...] = array
            every[name]._changed_in_place()
        return IncompatibleKeys(missing, unexpected)

    # -- hooks ------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable[[Module, tuple], Any]) -> engine._HookHandle:
        """Call `hook(module, args)` before each forward of this module, as torch's: `args` is
        the tuple of positional arguments it was called with (keywords are not given), and a
        value returned other than None replaces them (a tuple, or one value for one argument).
        Returns a handle: `handle.remove()` takes the hook off. A pre-hook on an attention's
        `out` projection reads the heads side by side, head i in columns i*d_head..(i+1)*d_head,
        so zeroing those columns ablates head i."""
        if not self._forward_pre_hooks:
            self._forward_pre_hooks = []
        self._forward_pre_hooks.append(hook)
        return engine._HookHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]
                              ) -> engine._HookHandle:
        """Call `hook(module, args, output)` after each forward of this module, as torch's:
        `args` as for register_forward_pre_hook, and a value returned other than None replaces
        the output. The way to read or change what a module computes (the residual stream
        after a block, a head's output) without rewriting its forward: keep `output` to record
        it, return another tensor to patch it. Returns a handle: `handle.remove()` takes the
        hook off."""
        if not self._forward_hooks:
            self._forward_hooks = []
        self._forward_hooks.append(hook)
        return engine._HookHandle(self._forward_hooks, hook)

    # -- modes and gradients ----------------------------------------------------------------
    def train(self: ModuleT, mode: bool = True) -> ModuleT:
        """Set training mode on this module and every module inside it (Dropout reads it)."""
        # As torch: any other value would be kept as it is, and read by its truth, so that
        # train("eval") or train(None) would leave dropout on or off without a word.
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"train: mode must be True or False, got {mode!r}; model.eval() "
                             f"sets evaluation mode")
        mode = bool(mode)
        for module in self.modules():
            module.training = mode
        return self

    def eval(self: ModuleT) -> ModuleT:
        """Evaluation mode, `train(False)`, on this module and every module inside it (Dropout
        then passes its input on unchanged); returns this module."""
        return self.train(False)

    def apply(self: ModuleT, fn: Callable[[Module], Any]) -> ModuleT:
        """Call `fn(module)` on every module inside this one, then on this one (children
        before their parent, as torch's), and return this module: the usual way to initialise
        a model's weights by layer type, `model.apply(init_weights)`. A module that holds one
        above it (a layer keeping its owner) does not lead back up to it."""
        _walking.applying.add(id(self))
        try:
            for child in self.children():
                if id(child) not in _walking.applying:   # one above it (its owner)
                    child.apply(fn)
        finally:
            _walking.applying.discard(id(self))
        fn(self)
        return self

    def requires_grad_(self: ModuleT, requires_grad: bool = True) -> ModuleT:
        """Freeze (`requires_grad` False) or unfreeze every parameter, as torch's; returns this
        module. A buffer here is a frozen parameter (there are no buffers apart), so unfreezing
        a module unfreezes its floating-point buffers too, where torch's leaves them: unfreeze
        the layers that hold none, or freeze the buffers again after. An integer or bool one
        (token ids, a position table) cannot require a gradient, and stays frozen, as torch's
        buffers do."""
        _check_flag(requires_grad)          # (a module without parameters would take any value)
        for parameter in self.parameters():
            # An integer or bool one stays frozen: its Tensor would refuse requires_grad=True,
            # part way through the loop, the parameters before it already unfrozen.
            if requires_grad and parameter.dtype.kind != "f":
                continue
            parameter.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: backward accumulates into `.grad`, so clear it between steps
        (to None; with set_to_none=False, to zeros, as torch's)."""
        engine._zero_grads(self.parameters(), set_to_none)

    def __setattr__(self, name: str, value: Any) -> None:
        old = vars(self).get(name)
        # A Parameter replaced by a plain Tensor or array would silently leave parameters() and
        # state_dict(): no optimizer would train it, no checkpoint keep it. torch refuses it
        # too. Another Parameter (tying weights) or None (no bias) is fine.
        if (isinstance(old, Parameter)
                and not (value is None or isinstance(value, Parameter))):
            # A Tensor with a graph (weights minus a step, in meta-learning) would lose it as a
            # Parameter, and the outer gradient with it: for that, the way is torch's old one.
            computed = (f"; to run the module with a Tensor computed from its weights (an inner "
                        f"step of meta-learning), which nn.Parameter(value) would cut from its "
                        f"graph, delete the parameter first, del module.{name}, then assign it"
                        if isinstance(value, Tensor) and value.grad_fn is not None else "")
            raise TypeError(f"cannot assign a {type(value).__name__} as parameter '{name}' of "
                            f"{type(self).__name__}: it would no longer be learned or saved; "
                            f"assign nn.Parameter(value), or set the values with "
                            f".{name}.data = array{computed}")
        # A layer or Parameter made in forward() (`self.fc = Linear(...)` there, as PyTorch
        # allows too) is a new one at every call: the one an optimizer was given is thrown
        # away each step, and the model never learns, without a word. Refused where it
        # replaces another while the module's own forward runs (the stack is looked at only
        # then: a forward pays nothing; made once, on the first call, is a lazy layer's way).
        if _made_in_forward(self, old, value):
            raise RuntimeError(f"{type(self).__name__}.{name}: a new {type(value).__name__} "
                               f"made in forward() replaces the one before it at every call, "
                               f"so the parameters an optimizer holds are never those used, "
                               f"and nothing is learned; make it once, in __init__, and only "
                               f"call it in forward()")
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Runs only when normal lookup fails, as Tensor's: a PyTorch name gets ours in its error.
        raise engine._not_found(f"'{type(self).__name__}' object", name,
                                _TORCH_MODULE_NAMES.get(name), self)

    # -- printing -----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """What goes between the parentheses of this module's line: its settings."""
        return ""

    def __repr__(self) -> str:
        """A tree, one module a line, each with its number of parameters (the MLP of the
        class's docstring):

            MLP(  # 82 params
              (hidden): Linear(in_features=2, out_features=16, bias=True)  # 48 params
              (act): ReLU()
              (out): Linear(in_features=16, out_features=2, bias=True)  # 34 params
            )
        """
        if id(self) in _walking.printing:   # held by a module inside it (as its owner)
            return f"<the {type(self).__name__} above>"
        _walking.printing.add(id(self))
        try:
            head = f"{type(self).__name__}({self.extra_repr()}"
            count = _params_comment(self.num_parameters())
            children = list(self.named_children())
            if not children:
                return f"{head}){count}"
            lines = [head + count]
            for name, child in children:
                lines.append(f"  ({name}): " + repr(child).replace("\n", "\n  "))
            lines.append(")")
            return "\n".join(lines)
        finally:
            _walking.printing.discard(id(self))


def _made_in_forward(module: Module, old: Any, value: Any) -> bool:
    """Whether `value`, set on `module` in place of `old` (a Parameter or a layer), is a
    Parameter or a layer with parameters made anew in the module's forward(). One the module
    holds already is not new (tying two of its weights, or switching between two of its
    layers, there is fine), and a new layer without parameters (an nn.ReLU()) leaves an
    optimizer nothing to lose."""
    if not isinstance(old, (Parameter, Module)) or value is old:
        return False
    if isinstance(value, Module):
        if next(value.parameters(), None) is None:
            return False
    elif not isinstance(value, Parameter):
        return False
    return _forward_running(module) and not _holds(module, value)


def _holds(module: Module, member: Parameter | Module) -> bool:
    """Whether `member` is one of `module`'s parameters or modules (itself, or any inside it)."""
    members = module.parameters() if isinstance(member, Parameter) else module.modules()
    return any(member is held for held in members)


def _forward_running(module: Module) -> bool:
    """Whether a forward() of `module` (its class's, or one it inherits) is running, on this
    thread's call stack, with `module` as its self."""
    forwards = {vars(cls)["forward"].__code__ for cls in type(module).__mro__
                if isinstance(vars(cls).get("forward"), types.FunctionType)}
    frame = inspect.currentframe()
    while frame is not None:
        code = frame.f_code
        if code in forwards and frame.f_locals.get(code.co_varnames[0]) is module:
            return True
        frame = frame.f_back
    return False


class _Walking(threading.local):
    """The ids of the modules whose __repr__ (or apply) is running, in this thread: one held
    by a module inside it (a layer keeping its owner) is named on one line (or not walked into
    again), where printing (or walking) it again would lead back up without end. Each thread
    has its own, as the engine's modes: another thread printing the same model is not inside
    it."""

    def __init__(self) -> None:
        self.printing: set[int] = set()
        self.applying: set[int] = set()


_walking = _Walking()


def _numbers_of(value):
    """A state dict's value as numpy reads it: a Tensor's array, anything else as it is."""
    return value.data if isinstance(value, Tensor) else value


_HOOK_LISTS = ("_forward_pre_hooks", "_forward_hooks")


def _learned(attributes, seen=None):
    """The (name, value) pairs among `attributes` that hold learned state (Module._members):
    Parameters and Modules, also inside plain lists, tuples and dicts to any depth, so that
    none is silently left out of training and saving.

    Each container is looked into once, under the first name that reaches it (`seen` holds
    the ids of those already walked), as named_modules visits each module once: a list that
    holds itself, `self.layers.append(self.layers)`, would otherwise be walked without end."""
    seen = set() if seen is None else seen
    for name, value in attributes:
        if name in _HOOK_LISTS:              # a module's hooks, even a Module hooked: not state
            continue
        if isinstance(value, (Parameter, Module)):
            yield name, value
        elif isinstance(value, (list, tuple, dict)) and id(value) not in seen:
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            yield from _learned(((f"{name}.{key}", item) for key, item in items), seen)


def _params_comment(count):
    """'  # 1,234 params'; nothing for a module without parameters, where it would be noise."""
    if count == 0:
        return ""
    return f"  # {count:,} param{'' if count == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# Containers


class ModuleList(Module):
    """A list of modules, named by position ('0', '1', ...). Indexing, assigning a module to
    an index (replacing a layer), `len`, iteration, `append`, `extend`, `+`, `+=`, `insert`, `pop`
    and `del` work as for a list (those after a removed or inserted module are renumbered,
    as in torch); a slice is a ModuleList."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        self._modules = []
        self.extend(modules)

    def __getattr__(self, name: str) -> Any:
        # A subclass whose __init__ does not call super().__init__() (not needed, as Module's
        # docstring says) starts empty, where it had no `_modules` to append to.
        if name == "_modules":
            self._modules = []
            return self._modules
        return super().__getattr__(name)

    def _members(self):
        # The items, named by position; then whatever else a subclass holds (a scale, a head).
        for i, module in enumerate(self._modules):
            yield str(i), module
        yield from _learned((name, value) for name, value in vars(self).items()
                            if name != "_modules")

    def append(self: ModuleListT, module: Module) -> ModuleListT:
        """Add `module` at the end, as list.append; returns this list, as torch's."""
        self._modules.append(self._checked(module))
        return self

    def _checked(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__} holds Modules, not {type(module).__name__}")
        return module

    def extend(self: ModuleListT, modules: Iterable[Module]) -> ModuleListT:
        """Add each of `modules` at the end, as list.extend; returns this list, as torch's.
        All are checked first: one that is not a Module adds none (torch's adds those before
        it)."""
        checked = [self._checked(module) for module in modules]
        self._modules.extend(checked)
        return self

    def __iadd__(self: ModuleListT, modules: Iterable[Module]) -> ModuleListT:
        return self.extend(modules)

    def __add__(self, modules: Iterable[Module]) -> ModuleList:
        # A new list of the same modules (not copies), as torch's; a Sequential's is one.
        return self[:].extend(modules)

    def insert(self, index: int, module: Module) -> None:
        """Put `module` before position `index`, as list.insert and torch's."""
        self._modules.insert(operator.index(index), self._checked(module))

    def pop(self, index: int = -1) -> Module:
        """Remove the module at `index` (the last by default) and return it."""
        return self._modules.pop(operator.index(index))

    def __delitem__(self, index: int | slice) -> None:
        # `del model.layers[-1]`, dropping a layer, as torch's.
        del self._modules[index if isinstance(index, slice) else operator.index(index)]

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> ModuleList: ...

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return ModuleList(self._modules[index])
        return self._modules[index]

    def __setitem__(self, index: int, module: Module) -> None:
        # `model.layers[i] = Block(...)`, as torch's: the new module is named as the old one.
        self._modules[operator.index(index)] = self._checked(module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules)


class Sequential(ModuleList):
    """Modules applied one after another, each to the output of the one before:
    `Sequential(Linear(2, 16), ReLU(), Linear(16, 2))`. A slice is a Sequential."""

    def __init__(self, *modules: Module) -> None:
        for module in modules:
            if isinstance(module, (list, tuple)):   # Sequential([a, b]): the list not unpacked
                raise TypeError(f"Sequential holds Modules, not {type(module).__name__}; "
                                f"unpack it: Sequential(*layers)")
            if isinstance(module, Mapping):         # torch's Sequential(OrderedDict(...))
                raise TypeError(f"Sequential holds Modules, not {type(module).__name__}: its "
                                f"modules are named by position here, not by key; pass "
                                f"Sequential(*layers.values()), or keep the names with a plain "
                                f"dict attribute of your Module and a forward of your own")
        super().__init__(modules)

    @overload
    def __getitem__(self, index: int) -> Module: ...
    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*self._modules[index])
        return super().__getitem__(index)

    def forward(self, x: Tensor) -> Tensor:
        for module in self:
            x = module(x)
        return x


# torch.nn's names that are not here, with what to write instead, for the AttributeError.
_TORCH_NN_NAMES = {
    "ModuleDict": "a plain dict: the modules in it are found, named as ModuleDict's",
    "ParameterList": "a plain list of Parameters", "ParameterDict": "a plain dict",
    "utils": "optim.clip_grad_norm for clip_grad_norm_",
    # torch's loss modules: the functions, called with the outputs and the targets
    "CrossEntropyLoss": "functional.cross_entropy(logits, targets), a function",
    "NLLLoss": "functional.cross_entropy(logits, targets), from the logits",
    "MSELoss": "functional.mse_loss(input, target), a function",
    "BCEWithLogitsLoss": ("functional.binary_cross_entropy_with_logits(logits, target), a "
                          "function"),
    "L1Loss": "(input - target).abs().mean()",
    "Identity": "Sequential(), which returns its input", "Flatten": "x.reshape(len(x), -1)",
    "Softmax": "functional.softmax(x, axis), a function",
    "LeakyReLU": ("a Module of your own whose forward is ta.where(x > 0, x, 0.01 * x), "
                  "torch's slope"),
    # Layers of other kinds of network: none here, said plainly, with the nearest we have.
    **dict.fromkeys(("Conv1d", "Conv2d"), "none: there are no convolutions (the layers are a "
                    "Transformer's); across a sequence's positions, attention mixes them "
                    "(tinyformer.attention.MultiHeadAttention)"),
    **dict.fromkeys(("RNN", "LSTM", "GRU"), "none: there are no recurrent layers; a sequence "
                    "model here is a Transformer, attention in place of recurrence "
                    "(tinyformer.blocks.Encoder, tinyformer.gpt.GPT)"),
    # Training's normalisation, without the running averages that torch's eval() uses. For
    # (N, C) alone: torch's of an (N, C, L) x normalises over axes 0 and 2.
    "BatchNorm1d": ("none; LayerNorm(C) normalises each example over its features, as a "
                    "Transformer does; over the batch of an (N, C) x, (x - x.mean(0, "
                    "keepdims=True)) / (x.var(0, keepdims=True) + eps).sqrt(), torch's in "
                    "training (it keeps no running averages for eval)"),
    # torch's Transformer parts: tinyformer's, whose masks are True where a query may
    # attend (the ~ of torch's boolean masks)
    "MultiheadAttention": "tinyformer.attention.MultiHeadAttention(d_model, n_head), whose "
                          "mask is True where a query may attend (~ torch's attn_mask)",
    "TransformerEncoderLayer": "tinyformer.blocks.EncoderLayer(d_model, n_head, d_ff)",
    "TransformerDecoderLayer": "tinyformer.blocks.DecoderLayer(d_model, n_head, d_ff)",
    "TransformerEncoder": "tinyformer.blocks.Encoder(n_layer, d_model, n_head, d_ff)",
    "TransformerDecoder": "tinyformer.blocks.Decoder(n_layer, d_model, n_head, d_ff)",
    "Transformer": ("tinyformer.transformer.Transformer(src_vocab_size, tgt_vocab_size, "
                    "context), embeddings and head included")}

if not TYPE_CHECKING:     # a type checker would take any name for one of ours (`nn.Linar`)
    __getattr__ = engine._pointing_to_ours("module 'tinyautograd.nn'", _TORCH_NN_NAMES)


# --------------------------------------------------------------------------------------------
# Initialisers, used as `nn.init.normal_(tensor, ...)`.
#
# Each fills `tensor.data` in place (the trailing underscore says so, as in PyTorch), keeps the
# tensor's dtype, returns the tensor, and draws from `generator` (a numpy Generator) or else the
# engine's default generator, which `tinyautograd.manual_seed` makes repeatable. Those that draw
# refuse a tensor that is not floating-point, as torch's do.
#
# Fan in and fan out, for the scaled initialisers: the last two axes of a weight are read as
# (inputs, outputs), as in `x @ weight`. So for a Linear weight (in_features, out_features),
# fan_in = shape[0] and fan_out = shape[1]: the opposite of PyTorch, whose weight is (out, in).
# An Embedding table (num, dim) is, by the same reading, the matrix of one_hot(index) @ table:
# fan_in = num, fan_out = dim. Leading axes, as in per-head weights (heads, in, out), are
# independent copies and do not change the fans.


def _fill(tensor, values):
    tensor.data[...] = values
    tensor._changed_in_place()
    return tensor


def _check_floating(name, tensor):
    """Refuse to draw random values into a tensor that is not floating-point, as torch's
    initialisers refuse: written into an integer or bool array they would be truncated
    (mostly to 0, or True), and an integer buffer's values (token ids) lost without a word."""
    if tensor.dtype.kind != "f":
        raise TypeError(f"{name}: random values need a floating-point tensor, this one is "
                        f"{tensor.dtype}; leave it out (an integer or bool buffer keeps its "
                        f"values): initialise the parameters that learn, if p.requires_grad")


def _fans(tensor):
    if tensor.ndim < 2:
        raise ValueError(f"fan in and fan out need a weight with at least 2 axes (inputs, "
                         f"outputs), got shape {tensor.shape}")
    return tensor.shape[-2], tensor.shape[-1]


# torch's table of gains: the layers without a nonlinearity, and the nonlinearities with a
# fixed gain (leaky_relu's depends on its slope: calculate_gain).
_IDENTITIES = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d")
_GAINS = {**dict.fromkeys(_IDENTITIES, 1.0), "sigmoid": 1.0, "tanh": 5 / 3,
          "relu": math.sqrt(2.0), "selu": 3 / 4}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor on the std that makes up for what the nonlinearity takes, as torch's: ReLU
    zeroes half of its inputs, which halves the mean square, so sqrt(2); leaky_relu with
    negative slope `param` (0.01 if None) keeps a^2 of that half, so sqrt(2 / (1 + a^2))."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: leaky_relu's negative slope must be a number, "
                             f"got {slope!r}")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; choose one of "
                         f"{', '.join(map(repr, [*_GAINS, 'leaky_relu']))}")
    return _GAINS[nonlinearity]


def _kaiming_std(tensor, a, mode, nonlinearity):
    """std = gain / sqrt(fan). With fan_in, the outputs of `x @ weight` keep the variance of
    the inputs; with fan_out, the gradients going back keep theirs. `a` is leaky_relu's
    negative slope (0 by default: ReLU's gain), as in torch."""
    fan_in, fan_out = _fans(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    gain = calculate_gain(nonlinearity, a)
    fan = fan_in if mode == "fan_in" else fan_out
    # A fan of 0 is an empty weight (Linear(0, n)'s): nothing to draw, as torch's leaves it.
    return gain / math.sqrt(fan) if fan else 0.0


def _xavier_std(tensor, gain):
    """std = gain * sqrt(2 / (fan_in + fan_out)): a compromise that keeps the variance of both
    the activations (forward) and the gradients (backward)."""
    fan_in, fan_out = _fans(tensor)
    if fan_in + fan_out == 0:          # an empty weight, (0, 0): nothing to draw
        return 0.0
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: np.random.Generator | None = None) -> Tensor:
    """Fill `tensor` in place with normal samples of `mean` and `std`, and return it. Every
    initialiser here draws from `generator` (a numpy Generator), or else from the engine's,
    which `tinyautograd.manual_seed` makes repeatable. `mean` and `std` are finite numbers,
    std >= 0, as torch's: a NaN std (from a config) would fill the tensor with NaN without a
    word."""
    _check_floating("normal_", tensor)
    _check("normal_", "a finite number", mean=mean, std=std)
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std!r}")
    rng = random.generator_or_default(generator, "normal_")
    if _skipping_init:
        return tensor
    return _fill(tensor, rng.normal(mean, std, tensor.shape))


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
             generator: np.random.Generator | None = None) -> Tensor:
    """Fill `tensor` in place with uniform samples in [a, b), and return it (`generator` as
    for normal_); `a` <= `b`, finite numbers, as torch's."""
    _check_floating("uniform_", tensor)
    _check("uniform_", "a finite number", a=a, b=b)
    if a > b:       # numpy's own error said only "high - low < 0"
        raise ValueError(f"uniform_: a must be <= b (the range is [a, b)), got a={a!r}, b={b!r}")
    rng = random.generator_or_default(generator, "uniform_")
    if _skipping_init:
        return tensor
    return _fill(tensor, rng.uniform(a, b, tensor.shape))


_skipping_init = False


def skip_init(module_cls: type[Module], *args: Any, **kwargs: Any) -> Module:
    """`module_cls(*args, **kwargs)` built without drawing its random initial weights (as
    torch.nn.utils.skip_init): they stay zero, for a model whose weights are loaded next.
    GPT-2 small would otherwise draw 124 million random numbers, seconds of work, only to
    overwrite them; and since nothing is drawn, the random stream is left where it was.
    One module at a time: the switch is a module-level flag, not meant for threads."""
    global _skipping_init
    _skipping_init = True
    try:
        return module_cls(*args, **kwargs)
    finally:
        _skipping_init = False


def zeros_(tensor: Tensor) -> Tensor:
    """Fill `tensor` with zeros in place, and return it."""
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill `tensor` with ones in place, and return it."""
    return _fill(tensor, 1)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill `tensor` with `val` in place, and return it (`constant_(layer.bias, 0.0)`)."""
    return _fill(tensor, val)


def xavier_normal_(tensor: Tensor, gain: float = 1.0,
                   generator: np.random.Generator | None = None) -> Tensor:
    """`tensor` filled in place from a normal, std = gain * sqrt(2 / (fan_in + fan_out))
    (Glorot's), as torch's; returns it. The fans are the last two axes, read as (inputs, outputs) as
    in `x @ weight`: a Linear's weight (in_features, out_features) gets torch's numbers, though its
    layout is the transpose of torch's (an Embedding's (num, dim) has fan_in = num, where torch's is
    dim). `generator` as for normal_."""
    _check_floating("xavier_normal_", tensor)
    return normal_(tensor, 0.0, _xavier_std(tensor, gain), generator)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0,
                    generator: np.random.Generator | None = None) -> Tensor:
    """`tensor` filled in place, uniform in [-a, a] with a = sqrt(3) std, xavier_normal_'s std
    (`gain`, the fans and `generator` as there): a uniform of that width has that std."""
    _check_floating("xavier_uniform_", tensor)
    bound = math.sqrt(3.0) * _xavier_std(tensor, gain)
    return uniform_(tensor, -bound, bound, generator)


# torch's signatures, so that torch's calls carry over: kaiming_uniform_(w, a=math.sqrt(5)).
def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: np.random.Generator | None = None) -> Tensor:
    """`tensor` filled in place from a normal, std = gain / sqrt(fan) (He's), with torch's
    arguments: `mode` 'fan_in' (the default) or 'fan_out' picks the fan, read as
    xavier_normal_ reads it: torch's on a Linear's weight, but swapped on an Embedding's table
    (num, dim), laid out as torch's, whose fan_in torch takes to be dim: mode='fan_out' here is
    torch's 'fan_in' there, and the reverse;
    gain = calculate_gain(`nonlinearity`, `a`), `a` being leaky_relu's negative slope (0:
    ReLU's gain). `generator` as for normal_."""
    _check_floating("kaiming_normal_", tensor)
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: np.random.Generator | None = None) -> Tensor:
    """`tensor` filled in place, uniform in [-bound, bound], bound = sqrt(3) gain / sqrt(fan)
    (He's), with torch's arguments (`a`, `mode`, `nonlinearity` and `generator` as for
    kaiming_normal_)."""
    _check_floating("kaiming_uniform_", tensor)
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


# torch's initialisers that are not here, and what to write instead, for nn.init's error.
_TORCH_INIT_NAMES = {
    "trunc_normal_": ("normal_(tensor, mean, std), then tensor.data[...] = np.clip(tensor.data, "
                      "a, b): clipped where torch draws again, close when [a, b] is a few std "
                      "wide"),
    "orthogonal_": ("q, _ = np.linalg.qr(rng.standard_normal(tensor.shape)) for a matrix of "
                    "more rows than columns, then tensor.data[...] = q"),
    "eye_": "tensor.data[...] = np.eye(*tensor.shape)",
    "dirac_": "there are no convolutions here; fill tensor.data[...] with numpy's values",
    "sparse_": "fill tensor.data[...] with numpy's values, zeroing those you choose",
}


class _Initialisers(types.SimpleNamespace):
    """nn.init. A name of torch's not here says what to write instead, where the namespace
    said only that it had no such attribute."""

    def __getattr__(self, name: str) -> Any:
        raise engine._not_found("'nn.init'", name, _TORCH_INIT_NAMES.get(name), self)


init = _Initialisers(
    normal_=normal_, uniform_=uniform_, zeros_=zeros_, ones_=ones_, constant_=constant_,
    xavier_normal_=xavier_normal_, xavier_uniform_=xavier_uniform_,
    kaiming_normal_=kaiming_normal_, kaiming_uniform_=kaiming_uniform_,
    calculate_gain=calculate_gain,
)


# --------------------------------------------------------------------------------------------
# Layers


# What a layer's arguments may be is checked when the layer is built (engine._check), so that
# LayerNorm(4, eps="1e-5") is told so there, in one line, not by ctypes at its first forward.

# Keywords of torch's layers that ours spell otherwise or lack, and what to write here, for the
# TypeError of a layer given one (`{name}` is the layer's name). A layer that takes one of them
# (RMSNorm's elementwise_affine) is given it as usual.
_TORCH_KEYWORDS = {
    "device": "drop it: there are no devices, every array is a numpy array, on the CPU",
    "dtype": ("drop it, and cast the parameters after: for p in layer.parameters(): "
              "p.data = p.data.astype(dtype)"),
    "normalized_shape": ("the norm is over the last axis and takes its size, dim, as its first "
                         "argument: {name}(4) for normalized_shape=4 or (4,)"),
    "elementwise_affine": ("drop it: the weight and the bias are always made (bias=False makes "
                           "no bias); for elementwise_affine=False, {name}(dim)"
                           ".requires_grad_(False) keeps them at ones and zeros, which "
                           "computes the same"),
    "padding_idx": ("drop it: no row is kept at zeros, the padding row is learned as any other; "
                    "leave the padded positions out of the loss with "
                    "cross_entropy(logits, targets, ignore_index=pad_id)"),
    "max_norm": "drop it: rows are not renormalised when they are looked up",
    "norm_type": ("drop it (it goes with max_norm): rows are not renormalised when they are "
                  "looked up"),
    "scale_grad_by_freq": ("drop it: the table's gradient is not scaled by how often each id "
                           "occurs"),
    "sparse": "drop it: the table's gradient is one dense array",
}


def _torch_keywords(layer: type[ModuleT]) -> type[ModuleT]:
    """Make the layer class `layer` say, for a keyword of torch's namesake that its `__init__`
    does not take, what to write here (from _TORCH_KEYWORDS), where Python would only say that
    the keyword is unexpected."""
    init = layer.__init__
    takes = inspect.signature(init).parameters

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for keyword in kwargs:
            if keyword in _TORCH_KEYWORDS and keyword not in takes:
                hint = _TORCH_KEYWORDS[keyword].format(name=layer.__name__)
                raise TypeError(f"{layer.__name__}() got an unexpected keyword argument "
                                f"{keyword!r}: that is PyTorch's; here, {hint}")
        init(self, *args, **kwargs)

    layer.__init__ = __init__
    return layer


def _check_weight(layer: Module, shape: tuple[int, int], names: str) -> None:
    """Refuse a weight assigned in another shape than the layer's own. The usual cause is
    PyTorch's weight tying, `wte.weight = lm_head.weight`: a Linear's weight here is the
    transpose of an Embedding's, so the two cannot be one Parameter. An Embedding given the
    head's (d_model, vocab) would otherwise fail far away, in the sum with the positions."""
    if layer.weight.shape == shape:
        return
    advice = "make a new layer of the size you need"
    if layer.weight.shape == shape[::-1]:
        advice = ("a Linear's weight here is (in_features, out_features), the transpose of an "
                  "Embedding's, so a head and an embedding cannot share one Parameter: keep "
                  "the embedding and compute the logits as x @ embedding.weight.T")
    raise ShapeError(f"{type(layer).__name__}: its weight has shape {layer.weight.shape}, not "
                     f"({names}) = {shape}; {advice}")


@_torch_keywords
class Linear(Module):
    """y = x @ weight + bias, with weight (in_features, out_features) and bias (out_features,).

    The weight is stored transposed relative to PyTorch's (out_features, in_features), so that
    the code reads as the math does; transpose it when loading torch weights. Initialised as
    PyTorch does: weight and bias uniform in [-1/sqrt(in_features), 1/sqrt(in_features)]
    (with no input features, an empty weight and a zero bias, as PyTorch's).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        _check("Linear", "a whole number >= 0", in_features=in_features,
               out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        self.weight = uniform_(Parameter(np.zeros((in_features, out_features))), -bound, bound)
        self.bias = uniform_(Parameter(np.zeros(out_features)), -bound, bound) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        _check_weight(self, (self.in_features, self.out_features), "in_features, out_features")
        return functional.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


@_torch_keywords
class Embedding(Module):
    """A table of `num_embeddings` learned vectors of size `embedding_dim`; integer indices of
    any shape (...) pick rows: (..., embedding_dim). Initialised N(0, 1), as PyTorch does."""

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        _check("Embedding", "a whole number >= 0", num_embeddings=num_embeddings,
               embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = normal_(Parameter(np.zeros((num_embeddings, embedding_dim))))

    def forward(self, indices: ArrayLike | Tensor) -> Tensor:
        _check_weight(self, (self.num_embeddings, self.embedding_dim),
                      "num_embeddings, embedding_dim")
        return functional.embedding(indices, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


def _check_norm_size(name: str, dim: Any) -> None:
    """A norm's `dim`, checked. torch's norms take normalized_shape, often a tuple, as
    LayerNorm((4,)); ours is always over the last axis and takes its size: say so."""
    if (isinstance(dim, (tuple, list)) and dim
            and all(isinstance(n, int) and not isinstance(n, bool) for n in dim)):
        fix = (f"{name}({dim[0]})" if len(dim) == 1 else
               f"reshape the last {len(dim)} axes into one and take {name}({math.prod(dim)})")
        raise ValueError(f"{name}: dim must be a whole number >= 0, got {dim!r}; the norm is "
                         f"over the last axis and takes its size (torch's normalized_shape is "
                         f"a tuple): {fix}")
    _check(name, "a whole number >= 0", dim=dim)


@_torch_keywords
class LayerNorm(Module):
    """Normalise the last axis (of size `dim`) to zero mean and unit variance, then scale by
    `weight` (starts at ones) and shift by `bias` (starts at zeros):
    y = (x - mean) / sqrt(var + eps) * weight + bias. With bias=False there is no shift."""

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True) -> None:
        _check_norm_size("LayerNorm", dim)
        _check("LayerNorm", "a finite number", eps=eps)
        self.dim, self.eps = dim, eps
        self.weight = Parameter(np.ones(dim))
        self.bias = Parameter(np.zeros(dim)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return functional.layer_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}" + ("" if self.bias is not None else ", bias=False")


@_torch_keywords
class RMSNorm(Module):
    """Divide the last axis (of size `dim`) by its root mean square, then scale by `weight`
    (starts at ones): y = x / sqrt(mean(x^2) + eps) * weight. LayerNorm without the centring
    and the shift: cheaper, and as good in practice (Llama's). With elementwise_affine=False
    there is no weight at all, and nothing is learned (nanochat's). eps is Llama's 1e-6;
    None is the input dtype's machine epsilon (torch.nn.RMSNorm's default)."""

    def __init__(self, dim: int, eps: float | None = 1e-6,
                 elementwise_affine: bool = True) -> None:
        _check_norm_size("RMSNorm", dim)
        if eps is not None:
            _check("RMSNorm", "a finite number", eps=eps)
        self.dim, self.eps = dim, eps
        self.weight = Parameter(np.ones(dim)) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return functional.rms_norm(x, self.weight, self.eps)     # None: x's machine epsilon

    def extra_repr(self) -> str:
        affine = "" if self.weight is not None else ", elementwise_affine=False"
        return f"{self.dim}, eps={self.eps}{affine}"


@_torch_keywords
class Dropout(Module):
    """While training, zero each element with probability p and scale the rest by 1/(1-p)
    (p = 1: all zeros, as torch); in eval mode, the identity. Any shape, kept. `inplace` is
    torch's, accepted as False only: every op here makes a new array."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        _check("Dropout", "a finite number in [0, 1]", p=p)   # here: the error points at the model
        _refuse_inplace("Dropout", inplace)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return functional.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _refuse_inplace(name: str, inplace: bool) -> None:
    """torch's `inplace=True` overwrites the input to save memory; here every op makes a new
    array (a backward may need the input), so it is accepted as False only."""
    if inplace:
        raise ValueError(f"{name}: no op works in place here; drop inplace")


@_torch_keywords
class ReLU(Module):
    """max(x, 0), elementwise. `inplace` is torch's, accepted as False only."""

    def __init__(self, inplace: bool = False) -> None:
        _refuse_inplace("ReLU", inplace)

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


@_torch_keywords
class GELU(Module):
    """The tanh approximation of GELU (GPT-2's), PyTorch's GELU(approximate='tanh'). torch's
    default, approximate='none', is the exact erf form, which is not computed here."""

    def __init__(self, approximate: str = "tanh") -> None:
        if approximate != "tanh":      # here, not at the first forward: as Dropout's p
            engine._refuse_exact_gelu("GELU", approximate)

    def forward(self, x: Tensor) -> Tensor:
        return x.gelu()

    def extra_repr(self) -> str:
        # torch prints its tanh form so; a bare GELU() there is the exact erf form, not this.
        return "approximate='tanh'"


@_torch_keywords
class SiLU(Module):
    """x * sigmoid(x) (swish), elementwise. `inplace` is torch's, accepted as False only."""

    def __init__(self, inplace: bool = False) -> None:
        _refuse_inplace("SiLU", inplace)

    def forward(self, x: Tensor) -> Tensor:
        return functional.silu(x)


class Tanh(Module):
    """tanh x"""

    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    """1 / (1 + e^-x)"""

    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()
