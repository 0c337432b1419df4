"""Every op's gradient against finite differences, with the op table in tests/op_cases.py.

- the registry: every Function subclass in the project's packages has a case, and every
  case's graph holds the Functions it is tagged with;
- gradcheck (float64 central differences) for every case, broadcasting included;
- gradgradcheck for every case, the fused kernels (cross-entropy, layer norm) included, and the
  gradient differentiated with respect to the incoming gradient too (torch's gradgradcheck does
  both);
- both again with only some inputs wanting a gradient, the others constants (a backward
  skips the gradients nobody wants);
- float32 in, float32 out: the result and every gradient (no silent upcast to float64);
- an input used twice, and gradients accumulating over two backward calls.
"""

import importlib
import pkgutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import tinyautograd as ta
import tinyformer
import tinyformer_cli
import viz
from op_cases import CASES, Draw
from tinyautograd import Tensor

GRADCHECK_CASES = [c for c in CASES if c.finite_differences]


def f64(array):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True, dtype=np.float64)


def draw_example(case, data, dtype=np.float64):
    arrays, params = case.draw(Draw(data))
    inputs = [Tensor(np.asarray(a, dtype=dtype), requires_grad=True, dtype=dtype)
              for a in arrays]
    return inputs, params


def functions_in_graph(out):
    """The Function classes of every node reachable from `out` through grad_fn links."""
    found, seen, todo = set(), set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        found.add(node.fn)
        todo.extend(t.grad_fn for t in node.inputs)
    return found


# Where a Function may be written: every package of the project, the layers above the engine
# included (a fused op belongs in tinyformer, but one written in viz is checked all the same).
PACKAGES = (ta, tinyformer, viz, tinyformer_cli)


def ours(module_name):
    """A module of the project's packages; not the exercise course, whose Functions are the
    student's to write (its own checks test them), nor a __main__, which runs the program."""
    return (module_name.split(".")[0] in {p.__name__ for p in PACKAGES}
            and not module_name.startswith("tinyformer.exercises")
            and not module_name.endswith(".__main__"))


def function_registry():
    """Every Function subclass defined in the project's packages (their modules imported
    first): the engine's ops and the fused ops of the layers above."""
    for package in PACKAGES:
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ours(module.name):
                importlib.import_module(module.name)
    found, todo = set(), [ta.Function]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return {f for f in found if ours(f.__module__)}


def names(functions):
    return sorted(f"{f.__module__}.{f.__qualname__}" for f in functions)


# ------------------------------------------------------------------------------ the registry


def test_every_function_has_a_case():
    covered = {f for case in CASES for f in case.covers}
    missing = function_registry() - covered
    assert not missing, f"Functions with no case in tests/op_cases.py: {names(missing)}; add " \
                        f"an OpCase to CASES there whose `covers` names each"


def test_every_function_has_a_gradcheck_and_gradgradcheck_case():
    # (A Function with no case at all is the test above's.)
    with_a_case = {f for case in CASES for f in case.covers} & function_registry()
    checked = {f for case in GRADCHECK_CASES for f in case.covers}
    missing = with_a_case - checked
    assert not missing, f"no gradcheck nor gradgradcheck for {names(missing)}: its cases in " \
                        f"tests/op_cases.py all have finite_differences=False; add one with " \
                        f"inputs where it is differentiable"


def test_case_names_are_unique():
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=5)
@given(data=st.data())
def test_case_graph_holds_the_functions_it_is_tagged_with(case, data):
    inputs, params = draw_example(case, data)
    out = case.fn(*inputs, **params)
    missing = set(case.covers) - functions_in_graph(out)
    assert not missing, f"{case.name}: no node of {names(missing)} in the graph"


# ------------------------------------------------------------------------------ finite differences


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=repr)
@settings(max_examples=15)
@given(data=st.data())
def test_gradcheck(case, data):
    inputs, params = draw_example(case, data)
    assert ta.gradcheck(lambda *xs: case.fn(*xs, **params), *inputs)


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=repr)
@settings(max_examples=10)
@given(data=st.data())
def test_gradgradcheck(case, data):
    inputs, params = draw_example(case, data)
    assert ta.gradgradcheck(lambda *xs: case.fn(*xs, **params), *inputs)


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=repr)
@settings(max_examples=8)
@given(data=st.data())
def test_gradient_is_differentiable_in_the_incoming_gradient(case, data):
    """gradgradcheck differentiates a gradient with respect to the inputs only. For an op that
    is linear in its inputs (add, sum, reshape, indexing, where, ...) that derivative is 0
    whatever its backward does; so here the gradient is also differentiated with respect to the
    incoming gradient g, as torch's gradgradcheck does. A backward that leaves the graph (numpy
    arrays, `.data`) fails this check."""
    inputs, params = draw_example(case, data)
    out_size = case.fn(*inputs, **params).size
    rng = np.random.default_rng(4)
    g = f64(rng.standard_normal(out_size))     # flat, reshaped to the output's shape inside
    w = [Tensor(rng.standard_normal(x.shape), dtype=np.float64) for x in inputs]

    def gradient_projected(*xs_and_g):
        *xs, g = xs_and_g
        with ta.enable_grad():
            out = case.fn(*xs, **params)
            grads = ta.grad(out, xs, grad_outputs=g.reshape(out.shape), create_graph=True)
        total = (g * 0.0).sum()
        for gi, wi in zip(grads, w):
            if gi is not None:
                total = total + (gi * wi).sum()
        return total

    assert ta.gradcheck(gradient_projected, *inputs, g)


@pytest.mark.parametrize("case", GRADCHECK_CASES, ids=repr)
@settings(max_examples=6)
@given(data=st.data())
def test_gradcheck_and_gradgradcheck_with_some_inputs_constant(case, data):
    """A backward skips the gradients nobody wants (ctx.needs_input_grad: a frozen weight, a
    bias given as a constant). The checks above make every input want one; here only some do,
    the others are constants, and what is left must still be right, to second order."""
    arrays, params = case.draw(Draw(data))
    wanted = data.draw(st.lists(st.booleans(), min_size=len(arrays), max_size=len(arrays))
                       .filter(any), label="wants a gradient")
    constants = {i: Tensor(a, dtype=np.float64) for i, a in enumerate(arrays) if not wanted[i]}
    variables = [f64(a) for a, w in zip(arrays, wanted) if w]

    def fn(*xs):
        given = iter(xs)
        inputs = [constants[i] if i in constants else next(given) for i in range(len(arrays))]
        return case.fn(*inputs, **params)

    assert ta.gradcheck(fn, *variables)
    assert ta.gradgradcheck(fn, *variables)


def test_gradcheck_leaves_0d_inputs_0d():
    """gradcheck nudges each element of an input in place, in the input's own array: a 0-d
    input, whose one element is at index (), stays 0-d (np.ascontiguousarray, which an
    earlier gradcheck used, returns at least 1-D)."""
    x = f64(2.0)
    ta.gradcheck(lambda x: x * x, x)
    assert x.shape == ()
    ta.gradgradcheck(lambda x: x * x, x)
    assert x.shape == ()


# ------------------------------------------------------------------------------ float32


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=10)
@given(data=st.data())
def test_float32_in_float32_out_and_float32_gradients(case, data):
    """No silent upcast: a Python number, a numpy float64 scalar or array, or an integer array
    met along the way must not turn a float32 computation into a float64 one. The values agree
    with the float64 computation to float32 accuracy."""
    inputs32, params = draw_example(case, data, np.float32)
    out = case.fn(*inputs32, **params)
    assert out.dtype == np.float32, f"{case.name}: float32 inputs gave a {out.dtype} result"
    direction = np.random.default_rng(0).standard_normal(out.shape)
    grads = ta.grad(out, inputs32, grad_outputs=Tensor(direction, dtype=np.float32))
    for i, g in enumerate(grads):
        if g is not None:
            assert g.dtype == np.float32, f"{case.name}: input {i} got a {g.dtype} gradient"

    inputs64 = [f64(x.data) for x in inputs32]
    out64 = case.fn(*inputs64, **params)
    grads64 = ta.grad(out64, inputs64, grad_outputs=Tensor(direction, dtype=np.float64))
    scale = max(1.0, np.abs(out64.data).max(initial=0))
    assert_allclose(out.data, out64.data, rtol=1e-4, atol=1e-5 * scale)
    for g, g64 in zip(grads, grads64):
        if g is not None:
            assert_allclose(g.data, g64.data, rtol=1e-3,
                            atol=1e-4 * max(1.0, np.abs(g64.data).max(initial=0)))


# ------------------------------------------------------------------------------ accumulation


def test_input_used_twice():
    rng = np.random.default_rng(0)
    x = f64(rng.standard_normal((2, 3)))
    (x * x).sum().backward()
    assert_allclose(x.grad, 2 * x.data, rtol=1e-12)

    x = f64(rng.standard_normal((2, 3)))
    (x + x).sum().backward()
    assert_allclose(x.grad, np.full((2, 3), 2.0), rtol=1e-12)

    # twice through different paths, one of them broadcasting: y = x * x.sum(axis=0) + x
    x = f64(rng.standard_normal((2, 3)))
    (x * x.sum(axis=0) + x).sum().backward()
    assert_allclose(x.grad, np.broadcast_to(2 * x.data.sum(axis=0) + 1, (2, 3)), rtol=1e-12)


def test_input_used_twice_passes_gradcheck_and_gradgradcheck():
    rng = np.random.default_rng(1)
    x = f64(rng.standard_normal(4))
    for fn in [lambda x: x * x, lambda x: x + x, lambda x: x * x.exp() - x.tanh() * x]:
        assert ta.gradcheck(fn, x)
        assert ta.gradgradcheck(fn, x)


def test_gradients_accumulate_over_two_backward_calls():
    rng = np.random.default_rng(2)
    x, w = f64(rng.standard_normal((3, 2))), f64(rng.standard_normal((2,)))
    (x @ w).sum().backward()
    first_x, first_w = x.grad.copy(), w.grad.copy()
    (x * x).sum().backward()
    assert_allclose(x.grad, first_x + 2 * x.data, rtol=1e-12)
    assert_allclose(w.grad, first_w, rtol=1e-12)

    # the same graph twice, kept with retain_graph
    y = (x.tanh() @ w).sum()
    x.grad = w.grad = None
    y.backward(retain_graph=True)
    once_x, once_w = x.grad.copy(), w.grad.copy()
    y.backward()
    assert_allclose(x.grad, 2 * once_x, rtol=1e-12)
    assert_allclose(w.grad, 2 * once_w, rtol=1e-12)


def test_float32_gradients_accumulate_in_float32():
    x = Tensor(np.arange(1.0, 4.0), requires_grad=True)
    (x * 1.5).sum().backward()
    (x * x).sum().backward()
    assert x.grad.dtype == np.float32
    assert_allclose(x.grad, 1.5 + 2 * x.data, rtol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=6, deadline=None)
@given(data=st.data(), changed=st.integers(0, 9))
def test_a_change_in_place_before_backward_is_refused_or_harmless(case, data, changed):
    """Change an input (or the result) in place through a detached alias between the forward
    and the backward: the backward must refuse, or give the gradient of the forward it was
    recorded with. Never a gradient silently computed from the new values."""
    inputs, params = draw_example(case, data)
    direction = np.random.default_rng(0).standard_normal(case.fn(*inputs, **params).shape)
    expected = ta.grad(case.fn(*inputs, **params), inputs, grad_outputs=Tensor(direction))
    out = case.fn(*inputs, **params)
    target = out if changed >= len(inputs) else inputs[changed]   # the result, or an input
    alias = target.detach()
    if not alias.data.flags.writeable:           # a broadcast view: no change in place there
        return
    alias += np.random.default_rng(1).standard_normal(target.shape)
    try:
        with np.errstate(all="ignore"):
            found = ta.grad(out, inputs, grad_outputs=Tensor(direction))
    except RuntimeError as error:
        assert "was changed in place after" in str(error)
        return
    for g, e in zip(found, expected):
        if e is None:
            assert g is None
        else:
            assert_allclose(g.data, e.data, rtol=1e-12, atol=0)
