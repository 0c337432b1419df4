"""Checkers for chapter 4: autograd by hand. Each exercise's gradients are compared with
tinyautograd's own (in float64) or with finite differences through `tinyautograd.gradcheck`,
and a wrong one is reported by the name of the input whose gradient it is."""

from __future__ import annotations

import ast
import itertools
import math
import re

import numpy as np

from tinyautograd import GradcheckError, Tensor, functional, gradcheck, gradgradcheck, no_grad

from ..catalogue import Question, exercise
from ..checking import (CheckFailure, Learner, as_array, describe, describe_call, expect,
                        expect_array, expect_unchanged, on_copies, python_source,
                        run_learner_code)

# The chapter's "predict, then run" question (`tinyformer exercises predict 4`).
QUESTION = Question(code="""\
from tinyautograd import Tensor

a = Tensor(3.0, requires_grad=True)
(a * a).backward()
print(a.grad)
(a * a).backward()
print(a.grad)
""", output="""\
6.0
12.0
""", why=(
    "Gradients accumulate: every backward adds (+=) into .grad, so the second backward adds "
    "another 2a = 6 to the first. That is why a training step calls zero_grad() before "
    'backward().'))

# ---------------------------------------------------------------------------------------------
# Helpers local to this chapter
# ---------------------------------------------------------------------------------------------


class _Apply:
    """Like checking.Call for a given wrapper (`matmul`, `embed`) around the learner's
    Function: a TODO is reported by the method it is in (`Embedding.forward`), not the wrapper.
    `last_call` reads like `embed(table=..., ids=...)`."""

    def __init__(self, learner, name):
        self.learner, self.name = learner, name
        self.fn = learner.attribute(name)
        self.last_call = name + "(...)"

    def __call__(self, *args):
        self.last_call = describe_call(self.name, self.fn, args, {})
        return run_learner_code(self.learner.path, lambda: self.fn(*args),
                                f"running {self.last_call}")


def _gradcheck(learner, fn, inputs, call, check_with=gradcheck):
    """tinyautograd.gradcheck(fn, *inputs.values()) (or `check_with`, gradgradcheck), its
    'input i' reported by the input's name. `inputs`: {name: float64 array}."""
    tensors = [Tensor(np.array(v, dtype=np.float64), requires_grad=True, dtype=np.float64)
               for v in inputs.values()]
    checker = check_with.__name__

    def check():
        # A wrong gradient comes back as a value: run_learner_code would report a GradcheckError
        # raised inside it as a crash of the learner's code.
        try:
            check_with(fn, *tensors)
        except GradcheckError as error:
            return error

    error = run_learner_code(learner.path, check, f"{checker} ran {call} forward and backward")
    if error is not None:
        text = str(error)
        match = re.search(r"input (\d+) \(shape (.*?)\) is wrong at index (\(.*?\)): analytic "
                          r"(\S+), numeric (\S+)", text)
        if not match:
            raise CheckFailure(f"{checker} of {call}: {text}") from None
        name = list(inputs)[int(match.group(1))]
        raise CheckFailure(
            f"{checker} of {call}: the gradient with respect to `{name}` (shape "
            f"{match.group(2)}) is wrong.\n"
            f"    at {match.group(3)}: your backward gives {match.group(4)}, finite differences "
            f"give {match.group(5)}") from None


def _returned_gradients(learner, function, out, grad, n_inputs, call):
    """Call the learner's `function.backward(ctx, grad)` directly on the node of `out`, as an
    ordinary backward pass does (numpy arrays, nothing recorded), and return its gradients as
    a tuple of arrays (None stays None)."""
    name = f"{function.__name__}.backward"
    given = np.array(grad, dtype=np.float64)          # the learner's copy

    def backward():
        with no_grad():
            return function.backward(out.grad_fn, given)

    got = run_learner_code(learner.path, backward, f"{name} ran after {call}")
    # The engine may hand one gradient array to several nodes (both inputs of a sum get the
    # same one), so a backward that writes into it spoils the others' gradients.
    expect_unchanged(f"{name} after {call}", [("grad", np.asarray(grad, np.float64), given)],
                     advice="The engine may hand that same array to other nodes too (`g -= "
                            "...` and `g *= ...` write into it): make new arrays instead "
                            "(`g = g - ...`).")
    shown = describe(got)
    if not isinstance(got, tuple):          # as the engine reads it: one gradient
        got = (got,)
    if n_inputs == 1:
        expect(len(got) == 1,
               f"{name} after {call} returned {shown}; it should return one gradient, an "
               f"array, for its one input. A setting passed to apply by keyword (the ids, the "
               f"targets) is not an input and gets no gradient, not even None.")
    expect(len(got) == n_inputs,
           f"{name} after {call} returned {shown}; it should return {n_inputs} "
           f"gradients, one per input, as a tuple: `return grad_a, grad_b`.")
    return tuple(None if g is None else as_array(g) for g in got)


# ---------------------------------------------------------------------------------------------
# 1. A scalar engine
#
# The checker looks for a wrong answer's cause by behaviour, in the order a learner builds the
# engine: first each op's `_backward` on its own (a graph of that one op), then the order in
# which `backward()` visits a graph, and last whole expressions. Each op is probed with an
# upstream gradient of 2.5, not 1 (a missing `* out.grad` changes nothing at 1), and with its
# inputs already holding a share from another use (an `=` in place of `+=` loses it); a wrong
# result is then matched against the usual slips, each named.
# ---------------------------------------------------------------------------------------------

_UPSTREAM = 2.5           # out.grad: what reaches the op from above
_EARLIER = 0.5            # what each input received from another use before this op's turn


class _Op:
    """One op of the scalar engine, as the checker probes it: `build(a, b)` makes `out` from
    Values, `inputs` are their numbers, `derivatives` maps each input's name to (its local
    derivative as the docstring writes it, its value), and `slips` are the usual wrong local
    derivatives, each a map from an input's name to (its value, what the learner wrote and the
    rule it breaks, in words). `undefined` says what to do when the _backward raises an
    ArithmeticError or gives nan or inf where the derivative is a number."""

    def __init__(self, text, method, build, inputs, derivatives, slips=(), undefined=""):
        self.text, self.method, self.build = text, method, build
        self.inputs, self.derivatives, self.slips = inputs, derivatives, list(slips)
        self.undefined = undefined


def _scalar_ops():
    a, b, n, t = 2.0, -3.0, 3, 0.5
    tanh, exp = np.tanh(t), np.exp(0.7)
    power = "d(a ** n)/da = n * a ** (n - 1)"
    return [
        _Op("out = a + b", "__add__", lambda v: v["a"] + v["b"], {"a": a, "b": b},
            {"a": ("1", 1.0), "b": ("1", 1.0)}),
        _Op("out = a * b", "__mul__", lambda v: v["a"] * v["b"], {"a": a, "b": b},
            {"a": ("b.data", b), "b": ("a.data", a)},
            [{name: (value, f"Your d(a * b)/d{name} used {name}.data; it is {other}.data: "
                            f"each input's gradient uses the other input's data.")
              for name, other, value in [("a", "b", a), ("b", "a", b)]}]),
        _Op("out = a ** 3", "__pow__", lambda v: v["a"] ** n, {"a": a},
            {"a": ("3 * a.data ** 2", n * a ** (n - 1))},
            [{"a": (n * a ** n, "Your d(a ** 3)/da was 3 * a.data ** 3; it is 3 * a.data ** "
                                f"2: the power is the exponent minus one, {power}.")},
             {"a": (a ** (n - 1), "Your d(a ** 3)/da was a.data ** 2; it is 3 * a.data ** 2: "
                                  f"the exponent itself multiplies too, {power}.")},
             {"a": ((n - 1) * a ** (n - 1), "Your d(a ** 3)/da was 2 * a.data ** 2; it is 3 * "
                                            "a.data ** 2: the factor in front is the exponent, "
                                            f"and the power one less, {power}.")}]),
        # At a = 0 the derivative is a number (0) but out.data / a.data is not.
        _Op("out = a ** 2", "__pow__", lambda v: v["a"] ** 2, {"a": 0.0},
            {"a": ("2 * a.data", 0.0)},
            undefined=("Your d(a ** 2)/da divides by a.data (as out.data / a.data does), and "
                       "a.data is 0 here: 0 / 0 is no number, yet the derivative at 0 is 2 * "
                       "0 = 0. Write it as exponent * a.data ** (exponent - 1), which divides "
                       "by nothing.")),
        _Op("out = a.tanh()", "tanh", lambda v: v["a"].tanh(), {"a": t},
            {"a": ("1 - out.data ** 2", 1 - tanh ** 2)},
            [{"a": (1 - t ** 2, "Your d(a.tanh())/da used 1 - a.data ** 2; it is 1 - out.data "
                                "** 2: the derivative of tanh is 1 - tanh(a) ** 2, so square "
                                "out.data (which is tanh(a)), not a's own data.")},
             {"a": (1 - tanh, "Your d(a.tanh())/da used 1 - out.data; it is 1 - out.data ** "
                              "2: the derivative of tanh is 1 - tanh(a) ** 2, so out.data must "
                              "be squared.")}]),
        _Op("out = a.exp()", "exp", lambda v: v["a"].exp(), {"a": 0.7},
            {"a": ("out.data", exp)},
            [{"a": (0.7, "Your d(a.exp())/da used a.data; it is out.data: the derivative of "
                         "exp is exp itself, out.data, not a's own data.")}]),
    ]


def _diagnose_op(op, name, got):
    """The slip that gives `got` as input `name`'s gradient after `op`'s _backward, in words
    (empty when it matches none). Accumulating with += and multiplying by out.grad are
    judged first, since every op needs both."""
    local = op.derivatives[name][1]

    def near(x):
        return np.isclose(got, x, rtol=1e-6, atol=1e-9)

    if near(_EARLIER):
        return (f"{name}.grad did not change: the _backward gives {name} nothing. Add its share "
                f"to {name}.grad.")
    if near(local * _UPSTREAM) or near(local):
        times = "" if near(local * _UPSTREAM) else \
            f" It also leaves out `* out.grad`: {local:.4g} is the local derivative alone."
        return (f"{name} had already received {_EARLIER} from another use, and that share is "
                f"gone: the _backward sets {name}.grad with `=`. Add to it with `+=`, so that a "
                f"Value used twice (a * a) gets both shares.{times}")
    if near(_EARLIER + local):
        return ("It leaves out `* out.grad`: the chain rule multiplies the local derivative "
                f"by the gradient arriving from above (here {_UPSTREAM}), which is 1 only at "
                "the loss itself.")
    if not np.isfinite(got) and op.undefined:
        return op.undefined
    for slip in op.slips:
        wrong, words = slip[name]
        if near(_EARLIER + wrong * _UPSTREAM):
            return words
    return ""


def _value_in_grad(grad):
    """The next step when a gradient became a Value: a _backward multiplied by a Value."""
    if hasattr(grad, "data") and hasattr(grad, "_children"):
        return (" A Value got into it: a _backward multiplied by a Value (`other`, `out`) "
                "where it needs its number (`other.data`, `out.data`).")
    return ""


def _probe_op(learner, Value, op):
    """Run `op`'s _backward alone, on a graph of that one op, and name what is wrong."""
    values = {k: Value(x) for k, x in op.inputs.items()}
    out = run_learner_code(learner.path, lambda: op.build(values), f"computing {op.text}")
    expect(isinstance(out, Value),
           f"computing {op.text} gave {describe(out)}; `Value.{op.method}` must return the new "
           f"Value, `out`, whose _backward it set.")
    for value in values.values():
        value.grad = _EARLIER
    out.grad = _UPSTREAM
    where = f"the `_backward` of `Value.{op.method}`"
    shown = ", ".join(f"{k} = {x:g}" for k, x in op.inputs.items())
    try:
        run_learner_code(learner.path, out._backward, f"{where} ran on {op.text} with {shown}")
    except CheckFailure as failure:
        if op.undefined and isinstance(failure.raised, ArithmeticError):
            raise CheckFailure(f"{failure}\n    {op.undefined}", raised=failure.raised) from None
        raise
    for name, value in values.items():
        formula, local = op.derivatives[name]
        formula = f"({formula})" if " " in formula else formula
        expected = _EARLIER + local * _UPSTREAM
        got = value.grad
        expect(isinstance(got, (int, float)),
               f"after {where} on {op.text}, {name}.grad is {describe(got)}; it should be a "
               f"number.{_value_in_grad(got)}")
        if not np.isclose(got, expected, rtol=1e-6, atol=1e-9):
            diagnosis = _diagnose_op(op, name, got)
            raise CheckFailure(
                f"{where} is wrong. On {op.text} with {shown}, out.grad = {_UPSTREAM} (the "
                f"gradient arriving from above) and {name}.grad = {_EARLIER} before (a share "
                f"from another use of {name}), it left {name}.grad = {got:.6g}; it should be "
                f"{_EARLIER} + {formula} * out.grad = {expected:.6g}."
                + (f"\n    {diagnosis}" if diagnosis else ""))


def _order_graph(Value):
    """c = a * b, d = c + a, y = d * c with a = 1.5, b = -2: c feeds two ops, one of which
    (d) feeds the other, so c must not pass its gradient on before both have added theirs.
    Returns the graph as it reads, the leaves {name: Value}, the ops [(name, Value, names of
    the ops using it)] from y down, d y / d each leaf, and {op name: what else to say when its
    _backward runs before that of an op that uses it}."""
    a, b = Value(1.5), Value(-2.0)
    c = a * b
    d = c + a
    y = d * c
    ops = [("y", y, []), ("d (= c + a)", d, ["y"]), ("c (= a * b)", c, ["y", "d (= c + a)"])]
    c_, d_ = 1.5 * -2.0, 1.5 * -2.0 + 1.5
    dy_dc = c_ + d_                         # through d, and directly
    expected = {"a": dy_dc * -2.0 + c_, "b": dy_dc * 1.5}
    return "c = a * b; d = c + a; y = d * c", {"a": a, "b": b}, ops, expected, {}


def _uneven_graph(Value):
    """c = a * b, y = c + exp(exp(c)) with a = 0.5, b = -1.5: y reaches c directly and
    through two exps, so an order by distance from y (a breadth-first walk) runs c's
    _backward before the exps have passed theirs on; _order_graph reaches c by paths one
    step apart, where such a walk can come out right."""
    a, b = Value(0.5), Value(-1.5)
    c = a * b
    e = c.exp()
    f = e.exp()
    y = c + f
    ops = [("y", y, []), ("f (= exp(e))", f, ["y"]), ("e (= exp(c))", e, ["f (= exp(e))"]),
           ("c (= a * b)", c, ["y", "e (= exp(c))"])]
    c_ = 0.5 * -1.5
    dy_dc = 1.0 + math.exp(math.exp(c_)) * math.exp(c_)      # directly, and through e and f
    expected = {"a": dy_dc * -1.5, "b": dy_dc * 0.5}
    notes = {"c (= a * b)": (
        " y reaches c by paths of different lengths (directly, and through f and e), so "
        "walking outward from y level by level, breadth-first, is not such an order: build "
        "the topological order first (a depth-first search), then walk it backwards.")}
    return "c = a * b; e = c.exp(); f = e.exp(); y = c + f", {"a": a, "b": b}, ops, \
        expected, notes


def _probe_order(learner, Value, graph):
    """Run the learner's backward() on `graph` (_order_graph, _uneven_graph) with each op's
    _backward logged; when the gradients come out wrong, say which rule of the visiting order
    the log shows broken."""
    text, leaves, ops, expected, notes = graph(Value)
    calls = []                              # (name of the op whose _backward ran, its grad then)
    for name, node, _ in ops:
        def logged(name=name, node=node, original=node._backward):
            calls.append((name, node.grad))
            original()
        node._backward = logged
    y = ops[0][1]
    run_learner_code(learner.path, y.backward, f"y.backward() ran on {text}")
    got = {k: leaves[k].grad for k in expected}
    if all(np.isclose(got[k], expected[k], rtol=1e-6, atol=1e-9) for k in expected):
        return
    inputs = ", ".join(f"{k} = {v.data:g}" for k, v in leaves.items())
    said = (f"y.backward() on {text} with {inputs} leaves a.grad = "
            f"{got['a']:.6g} and b.grad = {got['b']:.6g}; they should be d y / d a = "
            f"{expected['a']:.6g} and d y / d b = {expected['b']:.6g}.\n    ")
    called = [name for name, _ in calls]
    seed = next((grad for name, grad in calls if name == "y"), None)
    if seed is not None and seed != 1.0:
        raise CheckFailure(said + f"y.grad was {seed} when y's _backward ran: backward() must "
                           f"set self.grad = 1.0 (d y / d y) before any _backward runs.")
    for name, _, _ in ops:
        if name not in called:
            raise CheckFailure(said + f"The _backward of {name} never ran: backward() must "
                               f"call it for every Value that y depends on.")
    for name, _, _ in ops:
        if called.count(name) > 1:
            raise CheckFailure(
                said + f"The _backward of {name} ran {called.count(name)} times, and each run "
                f"adds its share again: visit each Value once (a `visited` set), in reverse "
                f"topological order.")
    for name, _, users in ops:
        before = called[:called.index(name)]
        for user in users:
            if user not in before:
                raise CheckFailure(
                    said + f"The _backward of {name} ran before that of {user}, which adds to "
                    f"its gradient, so it passed its gradient on before it had all of it. Call "
                    f"_backward in reverse topological order: each Value after every Value "
                    f"that uses it.{notes.get(name, '')}")
    raise CheckFailure(said.rstrip())


def _neuron(v):
    return (v["w1"] * v["x1"] + v["w2"] * v["x2"] + v["bias"]).tanh()


def _mlp(v):
    """A 3-4-1 tanh network and its squared error, written for Values and 0-d Tensors alike."""
    hidden = [(sum(v[f"w{j}{i}"] * v[f"x{i}"] for i in range(3)) + v[f"b{j}"]).tanh()
              for j in range(4)]
    out = sum(v[f"u{j}"] * h for j, h in enumerate(hidden)) + v["c"]
    return (out - 0.5) ** 2


_EXPRESSIONS = [
    # (what it says, function of a dict of inputs, the inputs)
    ("y = a * a", lambda v: v["a"] * v["a"], {"a": 3.0}),
    ("y = a * b + a", lambda v: v["a"] * v["b"] + v["a"], {"a": 2.0, "b": -3.0}),
    ("y = (a - b) / (a * b).exp()", lambda v: (v["a"] - v["b"]) / (v["a"] * v["b"]).exp(),
     {"a": 0.8, "b": -0.4}),
    ("y = tanh(w1*x1 + w2*x2 + bias)  (a neuron)", _neuron,
     {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0, "bias": 6.8813735870195432}),
]


def _random_mlp_inputs():
    rng = np.random.default_rng(4)
    names = ([f"x{i}" for i in range(3)] + [f"w{j}{i}" for j in range(4) for i in range(3)]
             + [f"b{j}" for j in range(4)] + [f"u{j}" for j in range(4)] + ["c"])
    return {name: float(rng.normal()) for name in names}


@exercise("scalar_engine", "A scalar autograd engine", hints=[
    "Each _backward adds (local derivative) * out.grad to each child's grad, with +=. The "
    "table in the docstring gives every local derivative.",
    "In __mul__ each input's local derivative is the other input's data; in tanh and exp the "
    "derivative is easiest written with out.data, which already holds tanh(x) or exp(x).",
    "backward() needs an order in which every Value comes after all the Values it was made "
    "from. A depth-first search gives one: visit a Value's children first, then list the "
    "Value; a `visited` set keeps a Value reached twice from being listed twice.",
    "The gradient flows from the output back to the leaves, so walk that list from its end, "
    "after seeding the output's own gradient: d y / d y is 1.",
], forbid=["tinyautograd"])
def check_scalar_engine(learner: Learner) -> None:
    Value = learner.attribute("Value")
    for op in _scalar_ops():
        _probe_op(learner, Value, op)
    _probe_order(learner, Value, _order_graph)
    _probe_order(learner, Value, _uneven_graph)
    expressions = _EXPRESSIONS + [("loss = (a 3-4-1 tanh network's output - 0.5) ** 2, "
                                   "inputs and weights drawn at random", _mlp,
                                   _random_mlp_inputs())]
    for text, fn, inputs in expressions:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in inputs.items())
        shown = shown if len(inputs) <= 6 else "the inputs of the random network"
        values = {k: Value(x) for k, x in inputs.items()}
        y = run_learner_code(learner.path, lambda fn=fn, values=values: fn(values),
                             f"computing {text}")
        run_learner_code(learner.path, y.backward, f"y.backward() ran on {text}")
        tensors = {k: Tensor(np.float64(x), requires_grad=True, dtype=np.float64)
                   for k, x in inputs.items()}
        fn(tensors).backward()
        for name, value in values.items():
            got, expected = value.grad, float(tensors[name].grad)
            expect(isinstance(got, (int, float)),
                   f"{text} with {shown}: after y.backward(), {name}.grad is {describe(got)}; "
                   f"it should be a number.{_value_in_grad(got)}")
            if not np.isclose(got, expected, rtol=1e-6, atol=1e-9):
                raise CheckFailure(f"{text} with {shown}: after y.backward(), {name}.grad is "
                                   f"{got:.6g}; it should be d y / d {name} = {expected:.6g}.")


# ---------------------------------------------------------------------------------------------
# Registration order is the order of the chapter: further exercises follow.
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# 2. Gradients through broadcasting
# ---------------------------------------------------------------------------------------------

def _engine_unbroadcast(grad, shape):
    """tinyautograd's answer: the gradient that reaches x through x.broadcast_to(grad.shape)."""
    x = Tensor(np.zeros(shape), requires_grad=True, dtype=np.float64)
    x.broadcast_to(grad.shape).backward(Tensor(grad, dtype=np.float64))
    return x.grad


def _random_broadcast(rng):
    """A broadcast shape and an input shape that broadcasts to it."""
    big = tuple(int(n) for n in rng.integers(2, 5, size=rng.integers(1, 5)))
    small = list(big[rng.integers(0, len(big) + 1):])         # drop some leading axes
    for i in range(len(small)):
        if rng.random() < 0.4:
            small[i] = 1                                      # and stretch some others
    return big, tuple(small)


@exercise("broadcast_gradients", "Gradients through broadcasting", hints=[
    "Two steps: first sum away the extra leading axes, then sum (keepdims=True) over the axes "
    "where the input had size 1.",
    "Step 1: the extra leading axes are the first grad.ndim - len(shape) of them; summing "
    "over them (a tuple of axes) leaves grad with as many axes as the input.",
    "Step 2: sum, keeping the axis (keepdims=True), over every axis where the input has size "
    "1 and grad does not.",
    "mul_backward: each input's gradient is grad times the other input, as for numbers, "
    "brought back to that input's own shape. Which of your two functions does that last part?",
], forbid=["tinyautograd.engine"])
def check_broadcast_gradients(learner: Learner) -> None:
    unbroadcast = learner.function("unbroadcast")
    grad = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    for shape in [(2, 1), (3,), (1, 3), (), (2, 3), (1, 1)]:
        got = on_copies(unbroadcast, grad, shape)
        expect_array(got, _engine_unbroadcast(grad, shape), unbroadcast.last_call,
                     tensor=False)
    rng = np.random.default_rng(0)
    for _ in range(12):
        big, small = _random_broadcast(rng)
        grad = rng.normal(size=big)
        expect_array(on_copies(unbroadcast, grad, small), _engine_unbroadcast(grad, small),
                     unbroadcast.last_call, tensor=False)

    mul_backward = learner.function("mul_backward")
    cases = [((2, 3), (3,)), ((2, 1), (1, 3)), ((2, 3, 4), (4,)), ((4, 3, 1), (4, 1, 5)),
             ((), (2, 2))]
    for a_shape, b_shape in cases:
        a = Tensor(rng.normal(size=a_shape), requires_grad=True, dtype=np.float64)
        b = Tensor(rng.normal(size=b_shape), requires_grad=True, dtype=np.float64)
        out = a * b
        grad = rng.normal(size=out.shape)
        out.backward(Tensor(grad, dtype=np.float64))
        # In an engine the same gradient array may go on to the other input, and a and b are
        # the forward's values: a backward that writes into them spoils both.
        got = on_copies(mul_backward, grad, a.data, b.data,
                        advice="A backward pass may read it again, for the other input's "
                               "gradient, say (`{name} *= ...` and `{name}[...] = ...` write "
                               "into it). Make new arrays instead (`{name} * ...`).")
        expect(isinstance(got, (tuple, list)) and len(got) == 2,
               f"{mul_backward.last_call} returned {describe(got)}; it should return two "
               f"arrays: `return grad_a, grad_b`.")
        for name, other, g, tensor, own in zip("ab", "ba", got, (a, b), (a.data, b.data)):
            try:
                expect_array(g, tensor.grad, mul_backward.last_call, tensor=False,
                             what=f"gives as the gradient with respect to `{name}`")
            except CheckFailure as failure:
                # grad times the input itself, where it is grad times the other one.
                own_times_grad = _engine_unbroadcast(grad * own, tensor.shape)
                if (isinstance(g, np.ndarray) and g.shape == own_times_grad.shape
                        and np.allclose(g, own_times_grad, atol=1e-5, rtol=1e-4)):
                    raise CheckFailure(
                        f"{failure}\n    That is grad times {name} itself: dL/d{name} is grad "
                        f"times the OTHER input, {other} (as for numbers, d(a * b)/da = b), "
                        f"brought back to {name}'s shape.") from None
                raise


# ---------------------------------------------------------------------------------------------
# 3. The backward of matrix multiplication
# ---------------------------------------------------------------------------------------------

def _tensor(array):
    return Tensor(np.array(array, dtype=np.float64), requires_grad=True, dtype=np.float64)


def _shapes(inputs):
    return ", ".join(f"{name} of shape {np.shape(v)}" for name, v in inputs.items())


def _reverses_every_axis(learner: Learner) -> bool:
    """Whether the learner's file transposes a whole array: `.T`, or transpose given no axes
    (`x.transpose()`, `np.transpose(x)`), which reverse every axis of a batched one."""
    for node in ast.walk(ast.parse(python_source(learner.path))):
        if isinstance(node, ast.Attribute) and node.attr == "T":
            return True
        if isinstance(node, ast.Call) and not node.keywords:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            # np.transpose(x) and a bare transpose(x) are given the array; x.transpose() not.
            method = isinstance(func, ast.Attribute) and not (
                isinstance(func.value, ast.Name) and func.value.id in ("np", "numpy"))
            if name == "transpose" and len(node.args) == (0 if method else 1):
                return True
    return False


@exercise("matmul_backward", "The backward of matrix multiplication", hints=[
    "Each gradient has the shape of its input: dL/dA is (n, k), dL/dB is (k, m), and grad is "
    "(n, m). Only one product of grad with the other operand gives each shape.",
    "dL/dA = grad @ B^T and dL/dB = A^T @ grad.",
    "For batches transpose only the last two axes: b.swapaxes(-1, -2), not b.T.",
    "The rule is the same in any number of dimensions: each gradient is grad times the other "
    "operand transposed in its last two axes, in the order that gives back that input's "
    "shape. The engine sums away the batch axes of a shared weight for you.",
], forbid=["tinyautograd.ops", "tinyautograd.functional"])
def check_matmul_backward(learner: Learner) -> None:
    MatMul = learner.attribute("MatMul")
    matmul = _Apply(learner, "matmul")
    a = np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0]])                          # (2, 3)
    b = np.array([[1.0, 0.0, 2.0, -1.0], [0.0, 1.0, 1.0, 0.0], [2.0, -1.0, 0.0, 1.0]])
    grad = np.array([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, 3.0, -1.0]])            # (2, 4)
    out = matmul(_tensor(a), _tensor(b))
    expect_array(out, a @ b, matmul.last_call)
    call = f"{matmul.last_call} with grad={describe(grad, limit=8)}"
    got = _returned_gradients(learner, MatMul, out, grad, 2, call)
    for name, g, expected in zip("ab", got, (grad @ b.T, a.T @ grad)):
        expect(g is not None, f"MatMul.backward after {call} returned None as the gradient "
                              f"with respect to `{name}`.")
        expect_array(g, expected, f"MatMul.backward after {call}",
                     what=f"returns as the gradient with respect to `{name}`")

    rng = np.random.default_rng(0)
    fn = learner.attribute("matmul")
    for a_shape, b_shape, what in [((3, 4), (4, 2), "2-D"),
                                   ((2, 3, 4), (4, 5), "a batch times a shared weight"),
                                   ((2, 3, 4), (2, 4, 2), "batched"),
                                   ((2, 2, 3, 4), (2, 2, 4, 3), "4-D, like attention heads")]:
        inputs = {"a": rng.normal(size=a_shape), "b": rng.normal(size=b_shape)}
        try:
            _gradcheck(learner, fn, inputs, f"matmul(a, b) ({what}: {_shapes(inputs)})")
        except CheckFailure as failure:
            # numpy's ValueError when the operands of @ do not fit: in a batched case, from
            # a .T in the file, which works on 2-D arrays and reverses every axis of the others.
            if (max(len(a_shape), len(b_shape)) > 2 and isinstance(failure.raised, ValueError)
                    and _reverses_every_axis(learner)):
                raise CheckFailure(f"{failure}\n    .T reverses every axis of a batched array "
                                   f"((2, 3, 4) becomes (4, 3, 2)); swap only the last two: "
                                   f".swapaxes(-1, -2).") from None
            raise
    # Second derivatives: under create_graph=True the same backward runs on Tensors.
    inputs = {"a": rng.normal(size=(2, 3, 4)), "b": rng.normal(size=(4, 2))}
    try:
        _gradcheck(learner, fn, inputs, f"matmul(a, b) ({_shapes(inputs)})",
                   check_with=gradgradcheck)
    except CheckFailure as failure:
        raise CheckFailure(f"{failure}\n    For second derivatives (backward with "
                           f"create_graph=True) grad and ctx.operands are Tensors: write the "
                           f"backward with @ and .swapaxes(-1, -2), which arrays and Tensors "
                           f"both have, not with numpy functions.") from None


# ---------------------------------------------------------------------------------------------
# 4. The backward of softmax and cross-entropy
# ---------------------------------------------------------------------------------------------

def _check_one_gradient(learner, function, call_fn, inputs, grad, expected, name,
                        mistakes=()):
    """Apply the learner's function through `call_fn` (a Call) to `inputs` (Tensors), call its
    backward directly with `grad`, and compare the one gradient with `expected`; when it is
    wrong and equals one of `mistakes` ((description, array) pairs), say which. A mistake's
    array may be the exception numpy raises for it instead: the same error from the learner's
    backward is then named too."""
    out = call_fn(*inputs)
    shown = f"{float(grad):g}" if np.ndim(grad) == 0 else describe(np.asarray(grad), limit=8)
    call = f"{call_fn.last_call} with grad={shown}"
    expect(getattr(out, "grad_fn", None) is not None,
           f"{call_fn.last_call} returned {describe(out)}, not a Tensor made by "
           f"{function.__name__}.apply.")
    errors = [(said, wrong) for said, wrong in mistakes if isinstance(wrong, Exception)]
    arrays = [(said, wrong) for said, wrong in mistakes if not isinstance(wrong, Exception)]
    try:
        (got,) = _returned_gradients(learner, function, out, grad, 1, call)
    except CheckFailure as failure:
        raised = failure.raised
        for description, error in errors:
            if type(raised) is type(error) and str(raised) == str(error):
                raise CheckFailure(f"{failure}\n    That is the error you get {description}.",
                                   raised=raised) from None
        raise
    expect(got is not None, f"{function.__name__}.backward after {call} returned None.")
    try:
        expect_array(got, expected, f"{function.__name__}.backward after {call}",
                     what=f"returns as the gradient with respect to `{name}`")
    except CheckFailure as failure:
        for description, wrong in arrays:
            if got.shape == np.shape(wrong) and np.allclose(got, wrong, atol=1e-5, rtol=1e-4):
                raise CheckFailure(f"{failure}\n    That is exactly what you get "
                                   f"{description}.") from None
        raise
    # A backward may run more than once on one forward pass (retain_graph=True), so it must
    # leave what forward saved on ctx as it found it.
    (again,) = _returned_gradients(learner, function, out, grad, 1, call)
    expect(again is not None and again.shape == got.shape and np.allclose(again, got),
           f"{function.__name__}.backward after {call} returns another gradient when it runs "
           f"a second time on the same forward pass: the first run changed what forward saved "
           f"on ctx (ctx.p). Work on a copy, ctx.p.copy(), so that backward can run again, as "
           f"it does after loss.backward(retain_graph=True).")


def _engine_gradient(forward, x, grad):
    """d(sum(grad * forward(x)))/dx, from tinyautograd's own ops."""
    t = _tensor(x)
    forward(t).backward(Tensor(np.asarray(grad, dtype=np.float64), dtype=np.float64))
    return t.grad


def _check_softmax_backward(learner, Softmax, softmax, z, g, mistakes):
    """_check_one_gradient for Softmax on `z`, with numpy's error for shapes that do not fit
    (a row sum of shape (N,) against (N, V), or one shaped for 2-D z alone against a batch)
    followed by what the row sum's shape must be."""
    try:
        _check_one_gradient(learner, Softmax, softmax, [_tensor(z)], g,
                            _engine_gradient(lambda t: t.softmax(-1), z, g), "z", mistakes)
    except CheckFailure as failure:
        if not isinstance(failure.raised, ValueError):
            raise
        if z.ndim == 2:
            said = ("The row sum of g * p must keep its axis, shape (N, 1) with keepdims=True, "
                    "to broadcast back over each row of (N, V).")
        else:
            said = ("Softmax.backward works for z of shape (N, V) but not for a batch "
                    "(B, T, V): take the row sum along the last axis, axis=-1, and keep that "
                    "axis with keepdims=True, which fits any number of axes. [:, None], a "
                    "reshape to (N, 1) and axis=1 fit 2-D arrays only.")
        raise CheckFailure(f"{failure}\n    {said}", raised=failure.raised) from None


def _row_sum_mistakes(g, p, axes):
    """(description, gradient) of Softmax's backward with the row sum of g * p taken along
    each of `axes` (None: over the whole array) in place of the last axis."""
    mistakes = []
    for axis in axes:
        wrong = p * (g - (g * p).sum(axis=axis, keepdims=True))
        if axis is None:
            said = "summing g * p over the whole array, one number for every row together"
        elif axis == 0:
            said = "summing g * p along axis 0, down the columns, across different rows"
        else:
            said = (f"summing g * p along axis {axis}, which is the last axis of a 2-D z but "
                    f"not of a {p.ndim}-D one")
        mistakes.append((f"{said}: each row has its own sum, along the last axis (axis=-1, "
                         f"keepdims=True)", wrong))
    return mistakes


# The cross-entropy cases (logits, targets): the first has a target past the last row (N = 2),
# the second a repeated target and every target below N, with N != V.
CROSS_ENTROPY_CASES = [
    (np.log(np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])), np.array([0, 2])),
    (np.log(np.array([[0.1, 0.6, 0.2, 0.1], [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])),
     np.array([1, 0, 1])),
]


def _minus_one_at(logits, index, n, upstream):
    """The gradient of a cross-entropy backward that subtracts its 1s with `d[index] -= 1`
    (d a copy of softmax(logits)) in place of one per row: worked out as numpy does it (an
    index repeated counts once), or the IndexError numpy raises for it."""
    d = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    try:
        d[index] -= 1.0
    except IndexError as error:
        return error
    return d / n * upstream


@exercise("softmax_cross_entropy_backward", "The backward of softmax and cross-entropy", hints=[
    "Softmax: the formula is p * (g - s), where s is one number per row: the sum of g * p "
    "along the last axis, whatever the number of axes, kept as an axis of size 1 "
    "(keepdims=True) so that it broadcasts back over the row.",
    "Cross-entropy: start from a copy of the saved probabilities p (never change ctx.p "
    "itself), then subtract 1 at each row's target. Integer-array indexing with the row "
    "numbers and the targets does every row at once.",
    "The loss is a mean over the N rows, so each row's gradient is divided by N; and the "
    "chain rule multiplies by grad, the gradient arriving from whatever came after the loss.",
], forbid=["tinyautograd.ops", "tinyautograd.functional"])
def check_softmax_cross_entropy_backward(learner: Learner) -> None:
    Softmax = learner.attribute("Softmax")
    softmax = _Apply(learner, "softmax")
    z = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]])
    g = np.array([[1.0, 0.0, 0.0], [0.0, -2.0, 1.0]])
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    _check_softmax_backward(learner, Softmax, softmax, z, g, mistakes=[
        ("from the diagonal of the Jacobian alone, g * p * (1 - p): each p_c depends on every "
         "z_j of its row, so subtract the row sum of g * p from g", g * p * (1 - p)),
        *_row_sum_mistakes(g, p, [0, None])])
    # A batch (B, T, V): a row sum written for (N, V) alone ([:, None], axis=1) shows here.
    z = np.array([[[1.0, 2.0, 3.0], [0.5, 0.5, -1.0]], [[0.0, -1.0, 2.0], [1.5, 0.0, 0.5]]])
    g = np.array([[[1.0, 0.0, 0.0], [0.0, -2.0, 1.0]], [[0.5, 1.0, -1.0], [2.0, 0.0, 1.0]]])
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    _check_softmax_backward(learner, Softmax, softmax, z, g, _row_sum_mistakes(g, p, [1]))
    rng = np.random.default_rng(0)
    for shape in [(3, 5), (2, 3, 4)]:
        inputs = {"z": rng.normal(size=shape)}
        _gradcheck(learner, learner.attribute("softmax"), inputs,
                   f"softmax(z) (z of shape {shape})")

    SoftmaxCrossEntropy = learner.attribute("SoftmaxCrossEntropy")
    loss_fn = _Apply(learner, "softmax_cross_entropy")
    one_per_row = ("Index with two arrays side by side, the row numbers and the targets, which "
                   "pick one element per row")
    for logits, targets in CROSS_ENTROPY_CASES:
        n = len(targets)
        for upstream in [1.0, 2.5]:
            expected = _engine_gradient(
                lambda t, targets=targets: functional.cross_entropy(t, targets), logits, upstream)
            _check_one_gradient(
                learner, SoftmaxCrossEntropy, loss_fn, [_tensor(logits), targets],
                np.float64(upstream), expected, "logits", mistakes=[
                    (f"without dividing by N: it is N = {n} times too big. The loss is a mean "
                     f"over the N rows, so divide by N", expected * n),
                    (f"subtracting 1 in every row at every target's column, as d[:, targets] "
                     f"does: `:` takes all the rows, and the targets then pick whole columns. "
                     f"{one_per_row}",
                     _minus_one_at(logits, (slice(None), targets), n, upstream)),
                    (f"subtracting 1 from whole rows, as d[targets] does: one index array "
                     f"picks rows, so the targets are taken as row numbers (and a target of N "
                     f"or more is past the last row). {one_per_row}",
                     _minus_one_at(logits, targets, n, upstream))])
    raw = learner.attribute("softmax_cross_entropy")
    for n, v in [(6, 7), (4, 10)]:
        targets = rng.integers(0, v, size=n)
        inputs = {"logits": rng.normal(size=(n, v)) * 2}
        _gradcheck(learner, lambda t, targets=targets: raw(t, targets), inputs,
                   f"softmax_cross_entropy(logits, targets) (logits of shape {(n, v)}, "
                   f"targets={describe(targets)})")


# ---------------------------------------------------------------------------------------------
# 5. The backward of layer normalisation
# ---------------------------------------------------------------------------------------------

@exercise("layer_norm_backward", "The backward of layer normalisation", hints=[
    "Return three arrays, in the order x, gamma, beta, shaped like x, (C,) and (C,).",
    "beta is added at every position, so its gradient is g summed over every axis but the "
    "last; gamma multiplies x_hat, so its gradient is the same sum of g * x_hat. Reshaping to "
    "(-1, C) puts every position on axis 0 for one sum.",
    "For x, go through x_hat, whose gradient is g * gamma. Both the mean subtracted and the "
    "spread divided by depend on the whole row, so on its way to x that gradient loses two "
    "parts: its own mean over the row, and x_hat times the row mean of (that gradient * "
    "x_hat). What remains is scaled by rstd. Work it out on a row of two numbers if it does "
    "not click.",
], forbid=["tinyautograd.functional", "tinyautograd.nn", "tinyautograd.ops"])
def check_layer_norm_backward(learner: Learner) -> None:
    LayerNormFunction = learner.attribute("LayerNormFunction")
    layer_norm = _Apply(learner, "layer_norm")
    rng = np.random.default_rng(0)
    cases = [(np.array([[1.0, 2.0, 3.0, 6.0], [0.0, -1.0, 1.0, 0.5]]),
              np.array([1.0, 2.0, 0.5, -1.0]), np.array([0.0, 0.1, 0.2, 0.3]),
              np.array([[1.0, 0.0, -1.0, 2.0], [0.5, 1.0, 0.0, -2.0]])),
             (rng.normal(size=(2, 3, 5)), rng.normal(size=5), rng.normal(size=5),
              rng.normal(size=(2, 3, 5))),
             # A row of equal numbers has variance 0: only eps keeps 1 / sqrt(var + eps) finite.
             (np.array([[2.0, 2.0, 2.0], [1.0, -1.0, 0.5]]), np.array([1.0, -0.5, 2.0]),
              np.array([0.1, 0.0, -0.1]), np.array([[1.0, -1.0, 0.5], [0.5, 2.0, -1.0]]))]
    for x, gamma, beta, grad in cases:
        inputs = {"x": _tensor(x), "gamma": _tensor(gamma), "beta": _tensor(beta)}
        out = layer_norm(*inputs.values())
        call = f"{layer_norm.last_call} with grad={describe(grad, limit=8)}"
        if (x.std(axis=-1) == 0).any():
            call += "  (a row of equal numbers: its variance is 0, so rstd is 1 / sqrt(eps))"
        got = _returned_gradients(learner, LayerNormFunction, out, grad, 3, call)
        reference = {k: _tensor(v) for k, v in [("x", x), ("gamma", gamma), ("beta", beta)]}
        functional.layer_norm(*reference.values()).backward(Tensor(grad, dtype=np.float64))
        _expect_in_forwards_order(got, {name: t.grad for name, t in reference.items()},
                                  f"LayerNormFunction.backward after {call}")
        for (name, tensor), g in zip(reference.items(), got):
            expect(g is not None, f"LayerNormFunction.backward after {call} returned None as "
                                  f"the gradient with respect to `{name}`.")
            expect_array(g, tensor.grad, f"LayerNormFunction.backward after {call}",
                         what=f"returns as the gradient with respect to `{name}`")
    inputs = {"x": rng.normal(size=(2, 3, 4)), "gamma": rng.normal(size=4),
              "beta": rng.normal(size=4)}
    _gradcheck(learner, learner.attribute("layer_norm"), inputs,
               f"layer_norm(x, gamma, beta) ({_shapes(inputs)})")


def _expect_in_forwards_order(got, expected, call):
    """Right gradients in another order than forward's inputs (`expected`, name -> gradient)
    are named as such: one by one, each would be only a wrong value."""
    for order in itertools.permutations(expected):
        if list(order) != list(expected) and all(
                g is not None and g.shape == expected[name].shape
                and np.allclose(g, expected[name], atol=1e-5, rtol=1e-4)
                for g, name in zip(got, order)):
            raise CheckFailure(f"{call} returns the gradients with respect to "
                               f"({', '.join(order)}), in that order: backward returns one "
                               f"gradient per input of forward, in forward's order "
                               f"({', '.join(expected)}).")
