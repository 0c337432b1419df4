"""One backward, two ways of running it. Each op's backward is written once; the engine hands
it numpy arrays in an ordinary backward pass and Tensors under create_graph=True, where the
same lines are recorded. Both must give the same gradients:

- for every case of tests/op_cases.py (every op, fused ones included), on the shapes
  (broadcasting included) the table draws, in float64 and float32: the gradients of a plain
  backward equal those of create_graph=True, and keep the dtype;
- the engine hands arrays exactly when create_graph is off, sums a broadcast gradient back to
  the input's shape in both modes, and refuses, in words, a backward that returns a numpy
  array where it must be recorded;
- a backward may work in place on what it made, never on what forward saved: a graph kept
  with retain_graph gives the same gradients every time;
- the folded matmul (a batch of rows times a matrix) equals numpy's own, also on large shapes.
"""

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import tinyautograd as ta
from op_cases import CASES, Draw
from tinyautograd import Function, Tensor, ops
from tinyautograd import functional as F


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=10)
@given(data=st.data())
def test_arrays_and_tensors_give_the_same_gradients(case, data):
    # Both dtypes on each drawn example: drawing (hypothesis's engine and the table's draws)
    # costs more than the gradients of these small inputs, so one draw serves both.
    arrays, params = case.draw(Draw(data))
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        inputs = [Tensor(np.asarray(a, dtype=dtype), requires_grad=True, dtype=dtype)
                  for a in arrays]
        out = case.fn(*inputs, **params)
        g = Tensor(np.random.default_rng(0).standard_normal(out.shape), dtype=dtype)
        on_arrays = ta.grad(out, inputs, grad_outputs=g, retain_graph=True)
        on_tensors = ta.grad(out, inputs, grad_outputs=g, create_graph=True)
        for i, (x, a, t) in enumerate(zip(inputs, on_arrays, on_tensors)):
            if a is None or t is None:
                assert a is None and t is None, (dtype.__name__, i)
                continue
            assert a.dtype == t.dtype == dtype and a.shape == t.shape == x.shape, \
                (dtype.__name__, i)
            assert_allclose(a.data, t.data, rtol=tol, atol=tol,
                            err_msg=f"{dtype.__name__}, input {i}")


class Square(Function):
    """x^2, noting what its backward is handed."""
    handed = []

    @staticmethod
    def forward(ctx, x):
        return x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.operands
        Square.handed.append((type(grad), type(x), type(ctx.result), ctx.create_graph))
        return 2 * grad * x


def test_arrays_unless_create_graph_then_tensors():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    Square.handed.clear()
    Square.apply(x).sum().backward()
    assert Square.handed == [(np.ndarray, np.ndarray, np.ndarray, False)]
    assert x.grad.tolist() == [2.0, 4.0, 6.0]
    Square.handed.clear()
    (g,) = ta.grad(Square.apply(x).sum(), [x], create_graph=True)
    assert Square.handed == [(Tensor, Tensor, Tensor, True)]
    assert g.requires_grad                                       # it has a graph of its own
    (gg,) = ta.grad(g.sum(), [x])                                 # d/dx sum(2x) = 2
    assert gg.tolist() == [2.0, 2.0, 2.0]


class Scale(Function):
    @staticmethod
    def forward(ctx, x, w):
        return x * w

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.operands
        return grad * w, grad * x                  # (3, 4): w's gradient is broadcast


@pytest.mark.parametrize("create_graph", [False, True])
def test_broadcast_gradients_are_summed_back_to_the_input_shape(create_graph):
    x = Tensor(np.ones((3, 4)), requires_grad=True)
    w = Tensor(np.arange(4.0), requires_grad=True)
    gx, gw = ta.grad(Scale.apply(x, w).sum(), [x, w], create_graph=create_graph)
    assert gw.shape == (4,) and gw.tolist() == [3.0, 3.0, 3.0, 3.0]
    assert gx.shape == (3, 4) and gx.dtype == gw.dtype == np.float32
    assert gw.requires_grad == create_graph


def test_a_backward_that_returns_arrays_cannot_be_recorded_and_says_so():
    class ArraysOnly(Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, grad):
            return 2 * np.asarray(grad) * ctx.inputs[0].data   # arrays: they leave the graph

    x = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    ArraysOnly.apply(x).sum().backward()                      # fine without a graph
    assert x.grad.tolist() == [2.0, 4.0]
    with pytest.raises(RuntimeError, match="arraysonly.backward returned a numpy array under "
                                           "create_graph=True"):
        ta.grad(ArraysOnly.apply(x).sum(), [x], create_graph=True)


class Sin(Function):
    """sin, with the backward a user writes first (np.cos), and what the error says to do."""

    following_the_error = False

    @staticmethod
    def forward(ctx, x):
        return np.sin(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.operands
        if Sin.following_the_error and ctx.create_graph:
            return grad * Cos.apply(x)
        return grad * np.cos(x)


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        return np.cos(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.operands
        return -grad * (Sin.apply(x) if ctx.create_graph else np.sin(x))


def test_a_numpy_function_in_a_recorded_backward_says_what_to_write_instead(monkeypatch):
    x = Tensor([0.5, 1.0], requires_grad=True, dtype=np.float64)
    assert ta.gradcheck(Sin.apply, x)                         # fine on arrays
    with pytest.raises(TypeError) as refused:
        ta.gradgradcheck(Sin.apply, x)
    assert re.fullmatch(r"In sin.backward under create_graph=True, .* a numpy function refuses "
                        r"them\. Write it .* or another Function \(Cos.apply\(x\) for "
                        r"np.cos\(x\)\)\.", str(refused.value).splitlines()[-1])
    assert "does not support ufuncs" in str(refused.value).splitlines()[0]   # numpy's own words
    monkeypatch.setattr(Sin, "following_the_error", True)
    assert ta.gradgradcheck(Sin.apply, x)


@pytest.mark.parametrize("shapes", [((12, 64, 128), (128, 512)), ((2, 3, 5, 7), (7, 4)),
                                    ((0, 3), (3, 2)), ((2, 0, 3), (3, 2)), ((4, 3), (3,))])
def test_folded_matmul_equals_numpy(shapes):
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    out = ops.MatMul.apply(Tensor(a, requires_grad=True), Tensor(b, requires_grad=True))
    assert out.dtype == np.float32 and out.shape == (a @ b).shape
    assert_allclose(out.data, a @ b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("index", [np.array([3, 0, 3, 3, -1, 0]),           # repeats, negatives
                                   np.array([[1, 1], [4, 2], [1, 0]]),      # a 2-D batch of ids
                                   np.arange(5)])                           # no repeats
def test_index_add_of_rows_equals_np_add_at(index):
    # The embedding's gradient adds rows as flat elements (ops._add_rows): the same bits.
    rng = np.random.default_rng(0)
    x = rng.standard_normal(index.shape + (3, 2))
    expected = np.zeros((5, 3, 2))
    np.add.at(expected, index, x)
    out = ops.IndexAdd.apply(Tensor(x, dtype=np.float64), index=index, shape=(5, 3, 2))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.data, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_kept_graph_gives_the_same_gradients_every_time(dtype):
    # GELU, layer norm, cross-entropy and attention keep arrays for their backward and work in
    # place on arrays they make there: none may write into what forward kept. Two backwards
    # with retain_graph=True and a last one without must all give the same gradients. (float32
    # runs the compiled loops where they are built, float64 always the numpy forms.)
    from tinyformer.attention import causal_mask, scaled_dot_product_attention

    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True, dtype=dtype)
    w = Tensor(rng.standard_normal(4) + 1, requires_grad=True, dtype=dtype)
    b = Tensor(rng.standard_normal(4), requires_grad=True, dtype=dtype)
    h = ta.functional.layer_norm(x, w, b).gelu()
    out = scaled_dot_product_attention(h, h * 0.5, h.gelu(), mask=causal_mask(5))
    loss = ta.functional.cross_entropy(out, rng.integers(0, 4, out.shape[:-1]),
                                       label_smoothing=0.1)
    grads = []
    for retain in (True, True, False):
        for t in (x, w, b):
            t.grad = None
        loss.backward(retain_graph=retain)
        grads.append([t.grad.copy() for t in (x, w, b)])
    for later in grads[1:]:
        for first, again in zip(grads[0], later):
            np.testing.assert_array_equal(first, again)


def test_gelu_forward_keeps_the_derivative_its_formula_gives_to_the_bit():
    # Forward computes dy/dx while x and tanh u are in the cache; a backward through a kept
    # graph (or under create_graph) computes it again with _gelu_slope, in the same order.
    x = ta.Tensor((np.random.default_rng(0).standard_normal(1000) * 3).astype(np.float32),
                  requires_grad=True)
    y = x.gelu()
    kept = y.grad_fn.derivative.copy()
    np.testing.assert_array_equal(kept, ops._gelu_slope(x.data))
    y.sum().backward(retain_graph=True)                 # the kept derivative
    first = x.grad.copy()
    x.grad = None
    y.sum().backward()                                  # again, through _gelu_slope
    np.testing.assert_array_equal(x.grad, first)


@pytest.mark.parametrize("shape", [(3, 5), (2, 1, 7), (200, 16), (6, 4, 64, 64), (70, 0)])
def test_row_sum_is_numpys_sum_over_the_last_axis_on_few_rows_and_many(shape):
    # Many rows go through a product with a column of ones, a few through numpy's own sum.
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert_allclose(F.row_sum(x), x.sum(axis=-1, keepdims=True), rtol=1e-5, atol=1e-5)
    t = F.row_sum(Tensor(x))
    assert isinstance(t, Tensor) and t.shape == shape[:-1] + (1,)
