"""Fast backwards: an op's `fast_backward` (numpy arrays) must give what its readable `backward`
(Tensor ops) gives, and the engine must pick the right one.

- for every case of tests/op_cases.py that exercises an op with a fast_backward, on the shapes
  (broadcasting included) the table draws, in float64 and float32: the gradients of a plain
  backward (fast path) equal those of create_graph=True (readable path), and keep the dtype;
- every Function with a fast_backward is covered by such a case;
- the engine calls fast_backward exactly when create_graph is off, and sums a broadcast
  gradient that fast_backward returns back to the input's shape;
- the folded matmul (a batch of rows times a matrix) equals numpy's own, also on large shapes.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import tinyautograd as ta
from op_cases import CASES, Draw
from test_ops_gradcheck import function_registry, names
from tinyautograd import Function, Tensor, ops

FAST = [c for c in CASES if any(f.fast_backward is not None for f in c.covers)]


def test_every_fast_backward_has_a_case():
    fast = {f for f in function_registry() if f.fast_backward is not None}
    assert fast, "no Function has a fast_backward"
    covered = {f for case in FAST for f in case.covers}
    assert not fast - covered, f"no case for the fast_backward of {names(fast - covered)}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", FAST, ids=repr)
@settings(max_examples=20)
@given(data=st.data())
def test_fast_backward_equals_the_readable_backward(case, dtype, data):
    arrays, params = case.draw(Draw(data))
    inputs = [Tensor(np.asarray(a, dtype=dtype), requires_grad=True, dtype=dtype)
              for a in arrays]
    out = case.fn(*inputs, **params)
    g = Tensor(np.random.default_rng(0).standard_normal(out.shape), dtype=dtype)
    fast = ta.grad(out, inputs, grad_outputs=g, retain_graph=True)                # fast_backward
    readable = ta.grad(out, inputs, grad_outputs=g, create_graph=True)            # backward
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for x, f, r in zip(inputs, fast, readable):
        assert f.dtype == r.dtype == dtype and f.shape == r.shape == x.shape
        assert_allclose(f.data, r.data, rtol=tol, atol=tol)


class Square(Function):
    """x^2 with both backwards, counting which one runs."""
    calls = []

    @staticmethod
    def forward(ctx, x):
        return x * x

    @staticmethod
    def backward(ctx, grad):
        Square.calls.append("backward")
        return 2 * grad * ctx.inputs[0]

    @staticmethod
    def fast_backward(ctx, grad):
        Square.calls.append("fast_backward")
        return 2 * grad * ctx.inputs[0].data


def test_fast_backward_runs_unless_create_graph():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    Square.calls.clear()
    Square.apply(x).sum().backward()
    assert Square.calls == ["fast_backward"] and x.grad.tolist() == [2.0, 4.0, 6.0]
    Square.calls.clear()
    (g,) = ta.grad(Square.apply(x).sum(), [x], create_graph=True)
    assert Square.calls == ["backward"] and g.requires_grad      # it has a graph of its own
    (gg,) = ta.grad(g.sum(), [x])                                 # d/dx sum(2x) = 2
    assert gg.tolist() == [2.0, 2.0, 2.0]


def test_fast_backward_gradients_are_summed_back_to_the_input_shape():
    class Scale(Function):
        @staticmethod
        def forward(ctx, x, w):
            return x * w

        @staticmethod
        def backward(ctx, grad):
            x, w = ctx.inputs
            return grad * w, grad * x

        @staticmethod
        def fast_backward(ctx, grad):
            x, w = ctx.inputs
            return grad * w.data, grad * x.data          # (3, 4): w's gradient is broadcast

    x = Tensor(np.ones((3, 4)), requires_grad=True)
    w = Tensor(np.arange(4.0), requires_grad=True)
    Scale.apply(x, w).sum().backward()
    assert w.grad.shape == (4,) and w.grad.tolist() == [3.0, 3.0, 3.0, 3.0]
    assert x.grad.dtype == w.grad.dtype == np.float32


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


def test_the_last_backward_may_reuse_saved_arrays_and_gives_the_same_gradients():
    # GELU, layer norm and attention write into what their forward saved when the graph is
    # freed after the backward (Context.last_backward). Two backwards with retain_graph=True
    # (saved arrays left intact) and a last one without must all give the same gradients.
    from tinyformer.attention import causal_mask, scaled_dot_product_attention

    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 2, 5, 4)), requires_grad=True)
    w = Tensor(rng.standard_normal(4) + 1, requires_grad=True)
    b = Tensor(rng.standard_normal(4), requires_grad=True)
    h = ta.functional.layer_norm(x, w, b).gelu()
    out = scaled_dot_product_attention(h, h * 0.5, h.gelu(), mask=causal_mask(5))
    g = rng.standard_normal(out.shape).astype(np.float32)
    grads = []
    for retain in (True, True, False):
        for t in (x, w, b):
            t.grad = None
        out.backward(g, retain_graph=retain)
        grads.append([t.grad.copy() for t in (x, w, b)])
    for later in grads[1:]:
        for first, again in zip(grads[0], later):
            np.testing.assert_array_equal(first, again)
