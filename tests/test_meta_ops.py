"""Every public op of the engine is in the op table, tests/op_cases.py, by the name a user calls.

tests/test_ops_gradcheck.py checks that every Function subclass has a case. That misses an op
written with the ops there are (a `Tensor.softplus` that returns `(1 + self.exp()).log()`): it
adds no Function, yet its formula, its broadcasting and its second derivative are as much
in need of checking. So here, every public callable of the engine that gives a Tensor (the
Tensor's methods, operators and properties, tinyautograd's functions and
tinyautograd.functional's) must be called by a case that takes finite differences (and so gets
gradcheck, gradgradcheck and PyTorch's values, gradients and double backward), unless it is
listed below: outside the graph (NOT_DIFFERENTIABLE), or another spelling of an op that is in
the table (SPELLINGS).

"Called by a case" is seen, not declared: each case runs once under a profiler that notes the
public callables it calls itself (not those they call in turn: `x.var()` calls `x.mean()`, which
only var's own case may count for).
"""

import inspect
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

import tinyautograd as ta
import tinyautograd.functional as F
from op_cases import CASES, Draw
from tinyautograd import Tensor

# Public, gives a Tensor, but has no gradient to check: booleans and integers, new leaves, the
# graph's own machinery.
NOT_DIFFERENTIABLE = {
    **dict.fromkeys(["Tensor.__lt__", "Tensor.__le__", "Tensor.__gt__", "Tensor.__ge__",
                     "Tensor.__eq__", "Tensor.__ne__", "Tensor.__and__", "Tensor.__or__",
                     "Tensor.__xor__", "Tensor.__rand__", "Tensor.__ror__", "Tensor.__rxor__",
                     "Tensor.__invert__", "Tensor.__iand__", "Tensor.__ior__", "Tensor.__ixor__",
                     "Tensor.argmax", "Tensor.any", "Tensor.all",
                     "tinyautograd.functional.one_hot"],
                    "booleans or integers, outside the graph"),
    **dict.fromkeys(["Tensor.detach", "Tensor.requires_grad_", "tinyautograd.zeros",
                     "tinyautograd.ones", "tinyautograd.zeros_like", "tinyautograd.ones_like",
                     "tinyautograd.randn", "tinyautograd.rand", "tinyautograd.arange"],
                    "a new leaf, the start of a graph"),
    **dict.fromkeys(["Tensor.__floordiv__", "Tensor.__rfloordiv__", "Tensor.__ifloordiv__"],
                    "a // b, a step function, outside the graph as comparisons are"),
    "tinyautograd.grad": "the reverse pass itself",
    "Tensor.grad_tensor": "what a backward(create_graph=True) left, not an op",
    "Tensor.__pos__": "+x is x itself: nothing computed, nothing recorded",
    "Tensor.__copy__": "copy.copy(x): another Tensor object on x's own node, nothing recorded",
    "Tensor.__deepcopy__": "copy.deepcopy of a leaf: a new leaf (a computed tensor is refused)",
}

# Another spelling of an op that the table calls by its main name: the spelling -> that name.
SPELLINGS = {
    "Tensor.__abs__": "Tensor.abs",                       # abs(x)
    "Tensor.__iter__": "Tensor.__getitem__",              # for row in x: x[0], x[1], ...
    "Tensor.__iadd__": "Tensor.__add__",                  # x += y records x = x + y
    "Tensor.__isub__": "Tensor.__sub__",
    "Tensor.__imul__": "Tensor.__mul__",
    "Tensor.__itruediv__": "Tensor.__truediv__",
    "Tensor.__ipow__": "Tensor.__pow__",
    "Tensor.__imod__": "Tensor.__mod__",
    "Tensor.__divmod__": "Tensor.__mod__",                # (x // y, x % y): // is outside
    "Tensor.__rdivmod__": "Tensor.__rmod__",              # the graph
    "tinyautograd.functional.softmax": "Tensor.softmax",  # F.softmax(x) is x.softmax()
    "tinyautograd.functional.log_softmax": "Tensor.log_softmax",
    "tinyautograd.functional.relu": "Tensor.relu",
    "tinyautograd.functional.gelu": "Tensor.gelu",
    "tinyautograd.functional.row_sum": "Tensor.sum",      # x.sum(-1, keepdims=True), for speed
}


def gives_a_tensor(fn):
    return "Tensor" in str(inspect.signature(fn).return_annotation)


def public_ops():
    """name -> function, for every public callable of the engine whose result is a Tensor: the
    Tensor's methods, operators (`__add__`) and properties (`T`), and the functions of
    tinyautograd and tinyautograd.functional (a decorated one as written)."""
    found = {}
    for name, member in vars(Tensor).items():
        if name.startswith("_") and not name.startswith("__"):
            continue
        member = member.fget if isinstance(member, property) else member
        if callable(member):
            found[f"Tensor.{name}"] = inspect.unwrap(member)
    for module in (ta, F):            # what they define or import (ta.concat is engine's)
        for name, fn in vars(module).items():
            if (not name.startswith("_") and inspect.isfunction(fn)
                    and fn.__module__.startswith("tinyautograd")):
                found[f"{module.__name__}.{name}"] = inspect.unwrap(fn)
    return {name: fn for name, fn in found.items() if inspect.isfunction(fn) and gives_a_tensor(fn)}


PUBLIC_OPS = public_ops()


def public_ops_called(fn, *args, **kwargs):
    """The names of the public ops that `fn(*args, **kwargs)` calls itself, seen by a
    profiler: a call made while one of them runs is that op's own business, not counted."""
    names_of = {}
    for name, op in PUBLIC_OPS.items():
        names_of.setdefault(op.__code__, set()).add(name)   # __rand__ is __and__: one code
    called, depth = set(), 0

    def profile(frame, event, arg):
        nonlocal depth
        names = names_of.get(frame.f_code)
        if names is None or event not in ("call", "return"):    # c_call: a C function's
            return
        if event == "call":
            if depth == 0:
                called.update(names)
            depth += 1
        else:
            depth -= 1

    sys.setprofile(profile)
    try:
        fn(*args, **kwargs)
    finally:
        sys.setprofile(None)
    return called


def test_the_check_sees_the_public_ops():
    assert {"Tensor.exp", "Tensor.__add__", "Tensor.__rmatmul__", "Tensor.T",
            "Tensor.__getitem__", "Tensor.sum", "tinyautograd.concat",
            "tinyautograd.functional.cross_entropy", "tinyautograd.functional.softmax"} <= \
        set(PUBLIC_OPS)
    assert not {"Tensor.backward", "Tensor.numpy", "Tensor.item", "tinyautograd.gradcheck",
                "tinyautograd.functional.dropout_mask"} & set(PUBLIC_OPS)


def test_the_profiler_counts_the_calls_a_case_makes_itself():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert public_ops_called(lambda: x.var(axis=0) + abs(x).T) == {   # not var's mean, ...
        "Tensor.var", "Tensor.__add__", "Tensor.abs", "Tensor.__abs__", "Tensor.T"}  # one code

    def softplus(t):     # an op written with others: each of them counts, not softplus
        return (1 + t.exp()).log()
    assert public_ops_called(softplus, x) == {"Tensor.exp", "Tensor.__radd__",
                                                       "Tensor.log"}


def test_the_lists_name_public_ops_and_spell_ops_of_the_table():
    listed = set(NOT_DIFFERENTIABLE) | set(SPELLINGS)
    assert listed <= set(PUBLIC_OPS), f"not public ops (renamed? removed?): " \
                                      f"{sorted(listed - set(PUBLIC_OPS))}"
    assert not set(NOT_DIFFERENTIABLE) & set(SPELLINGS)
    assert set(SPELLINGS.values()) <= set(PUBLIC_OPS) - listed


def test_every_public_op_is_called_by_a_case_that_takes_finite_differences():
    called = set()

    @settings(max_examples=1)          # which ops a case calls does not depend on its draw
    @given(data=st.data())
    def run_every_case(data):
        for case in [c for c in CASES if c.finite_differences]:
            arrays, params = case.draw(Draw(data))
            inputs = [Tensor(a, requires_grad=True, dtype=a.dtype) for a in arrays]
            called.update(public_ops_called(case.fn, *inputs, **params))

    run_every_case()
    missing = set(PUBLIC_OPS) - called - set(NOT_DIFFERENTIABLE) - set(SPELLINGS)
    assert not missing, (
        f"public ops that no case of tests/op_cases.py calls: {sorted(missing)}; add an OpCase "
        f"to CASES there that calls each (with the PyTorch function it matches, and inputs "
        f"where it is differentiable), or list it in tests/test_meta_ops.py: in "
        f"NOT_DIFFERENTIABLE if it has no gradient, in SPELLINGS if it is another name for an "
        f"op that a case calls")
    spelt_unchecked = {name for name in SPELLINGS.values() if name not in called}
    assert not spelt_unchecked, f"SPELLINGS name ops that no case calls: {sorted(spelt_unchecked)}"
