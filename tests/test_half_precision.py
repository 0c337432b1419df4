"""float16 tensors through the reductions and fused ops compute in float32 and round the result
back to float16, as torch does: float16's largest number is 65504, which a sum, a count or a
row's sum of squares passes long before the values themselves do."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import tinyautograd as ta
import tinyautograd.functional as TF
from op_cases import CASES, Draw
from tinyautograd import Tensor, kernels, nn
from tinyformer.attention import (attention_readable, attention_weights,
                                  scaled_dot_product_attention)

HALF = np.float16


@pytest.fixture(params=["loops", "numpy forms"])
def either_form(request, monkeypatch):
    """Runs a test with the compiled loops (where built) and with the ops' numpy forms."""
    if request.param == "numpy forms":
        monkeypatch.setattr(kernels, "usable", lambda *arrays, into=(): False)


def ours_and_torch(function, torch_function, *arrays, create_graph=False, atol=1e-5,
                   grad_atol=1e-5):
    """Our output and our inputs' gradients of sum(out * g), g random but fixed, in float16, to
    torch's in float64 (the true values for these inputs) within float16's rounding. Ours
    through ta.grad with create_graph when asked (the backward that a second derivative runs)."""
    ours = [Tensor(a, dtype=a.dtype, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, expected = function(*ours), torch_function(*theirs)
    g = np.random.default_rng(1).standard_normal(out.shape).astype(HALF)
    grads = ta.grad((out * Tensor(g, dtype=HALF)).sum(), ours, create_graph=create_graph)
    (expected * torch.tensor(g, dtype=torch.float64)).sum().backward()
    assert out.dtype == HALF and all(grad.dtype == HALF for grad in grads)
    assert_allclose(out.data.astype(np.float32), expected.detach().float().numpy(), rtol=1e-2,
                    atol=atol)
    for grad, t in zip(grads, theirs):
        assert_allclose(grad.data.astype(np.float32), t.grad.float().numpy(), rtol=1e-2,
                        atol=grad_atol)


# ------------------------------------------------------------------ a number float16 cannot hold

# Each `expression(x, number)`, with `number` making a 0-d tensor of the same library.
SCALINGS = {
    "x * 1e5": lambda x, number: x * 1e5,                      # 1e5 is inf in float16
    "1e5 * x": lambda x, number: 1e5 * x,
    "x * 1e-8": lambda x, number: x * 1e-8,                    # 1e-8 is 0 in float16
    "x / 1e-5": lambda x, number: x / 1e-5,                    # 1e-5 is 1.0014e-5
    "x * np.float64": lambda x, number: x * np.float64(1e5),
    "x * 0-d float64": lambda x, number: x * number(1e5),
    "x / 0-d float32": lambda x, number: x / number(1e-5, np.float32),
    # torch's + - and ** round the number to float16 first: so do ours
    "x + number": lambda x, number: x + (0.5 + 2 ** -12),
    "x - number": lambda x, number: x - 2049.0,
    "x ** number": lambda x, number: x ** 11004.0,
}


@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.parametrize("expression", SCALINGS.values(), ids=SCALINGS)
def test_float16_times_or_over_a_number_float16_cannot_hold_is_torchs_bit_for_bit(expression):
    # torch multiplies and divides in float32 and rounds the result once; rounding the number
    # first made 0.01 * 1e5 inf and 1000 * 1e-8 zero.
    values = np.array([0.01, 1000.0, 2 ** -12, 1 + 2 ** -10], HALF)
    x = Tensor(values, dtype=HALF, requires_grad=True)
    theirs = torch.tensor(values, requires_grad=True)
    out = expression(x, lambda v, dtype=np.float64: Tensor(v, dtype=dtype))
    expected = expression(theirs, lambda v, dtype=np.float64: torch.tensor(v, dtype=getattr(
        torch, np.dtype(dtype).name)))
    g = np.array([1.0, 1e-3, 0.5, 2.0], HALF)
    out.backward(g)
    expected.backward(torch.tensor(g))
    assert out.dtype == HALF and x.grad.dtype == HALF
    np.testing.assert_array_equal(out.data, expected.detach().numpy())
    np.testing.assert_array_equal(x.grad, theirs.grad.numpy())


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_float16_scaled_in_place_by_a_number_float16_cannot_hold_is_torchs():
    values = np.array([0.01, 1000.0], HALF)
    x, theirs = Tensor(values.copy(), dtype=HALF), torch.tensor(values)
    x *= 1e5
    theirs *= 1e5
    np.testing.assert_array_equal(x.data, theirs.numpy())          # [1000, inf]
    x, theirs = Tensor(values.copy(), dtype=HALF), torch.tensor(values)
    x /= 1e-5
    theirs /= 1e-5
    np.testing.assert_array_equal(x.data, theirs.numpy())


@pytest.mark.parametrize("op", ["*", "/", "+"])
@pytest.mark.parametrize("wide", [np.float32, np.float64])
def test_a_0d_float16_tensor_with_a_0d_wider_float_gives_the_wider_dtype_as_torchs(op, wide):
    # Two 0-d tensors promote as any two tensors: a float16 loss times a float32 scale that
    # float16 cannot hold (0.1; 65536 gave inf) is float32, as torch's and as their +, where it
    # was float16, rounded.
    compute = {"*": lambda a, b: a * b, "/": lambda a, b: a / b, "+": lambda a, b: a + b}[op]
    loss = Tensor(30.0, dtype=HALF, requires_grad=True)
    theirs = torch.tensor(30.0, dtype=torch.float16, requires_grad=True)
    out = compute(loss, Tensor(0.1, dtype=wide))
    expected = compute(theirs, torch.tensor(0.1, dtype=getattr(torch, np.dtype(wide).name)))
    out.backward()
    expected.backward()
    assert out.dtype == wide and str(expected.dtype) == f"torch.{np.dtype(wide).name}"
    assert out.item() == expected.item()
    assert loss.grad.dtype == HALF
    np.testing.assert_array_equal(loss.grad, theirs.grad.numpy())


# ------------------------------------------------------------------ more than 65504 elements


@pytest.mark.parametrize("value", [0.001, 1.0, 3.0])
def test_the_mean_of_more_float16_elements_than_float16_counts_is_torchs(value):
    # 70,000 is inf in float16: the mean was 0 (or inf / inf, NaN), its gradient 0
    x = np.full(70_000, value, HALF)
    ours_and_torch(lambda t: t.mean(), lambda t: t.mean(), x)


def test_the_mean_and_var_of_float16_over_an_axis_whose_sum_overflows_are_torchs():
    # Sums near 80,000 and centred sums of squares near 180,000: both inf in float16
    x = (np.random.default_rng(0).standard_normal((3, 20_000)) * 3 + 4).astype(HALF)
    ours_and_torch(lambda t: t.mean(axis=1), lambda t: t.mean(dim=1), x)
    ours_and_torch(lambda t: t.var(axis=1), lambda t: t.var(dim=1, correction=0), x)
    ours_and_torch(lambda t: t.var(ddof=1), lambda t: t.var(correction=1), x)


def test_the_sum_of_float16_along_a_leading_axis_accumulates_in_float32_as_torchs():
    # numpy adds float16 along any axis but the last in float16: 5000 tenths summed to 256
    # (the running sum's spacing there, 0.25, is more than twice 0.1), where torch's is 500
    x = np.full((5000, 2), 0.1, HALF)
    ours_and_torch(lambda t: t.sum(axis=0), lambda t: t.sum(dim=0), x)
    ours_and_torch(lambda t: t.sum(), lambda t: t.sum(), x)


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_float16_softmax_over_more_entries_than_float16_counts_is_torchs(op):
    # e^(x - max) near 1, summed 70,000 times, is inf in float16: every softmax was 0.
    # log_softmax's backward reads e^y from its float16 output (as torch's): y near -12 is
    # rounded to 0.004, e^y by 0.4%, and the gradient g - e^y sum(g) to some 1e-3
    x = (np.random.default_rng(0).standard_normal((2, 70_000)) / 1000).astype(HALF)
    for create_graph in (False, True):
        ours_and_torch(lambda t: getattr(t, op)(axis=-1), lambda t: getattr(t, op)(-1), x,
                       create_graph=create_graph, grad_atol=2e-3)


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_cross_entropy_over_more_classes_than_float16_counts_is_torchs(create_graph):
    # Its row sums of e^(x - max), near 70,000, were inf in float16: the loss inf, as
    # log_softmax's was before it computed in float32
    x = (np.random.default_rng(0).standard_normal((2, 70_000)) / 1000).astype(HALF)
    targets = np.array([3, 69_999])
    ours_and_torch(lambda t: TF.cross_entropy(t, targets),
                   lambda t: F.cross_entropy(t, torch.tensor(targets)), x,
                   create_graph=create_graph, grad_atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_float16_cross_entropy_is_float16_in_every_reduction_as_torchs(reduction):
    # computed in float32, then rounded back, the per-target losses too
    x, targets = np.zeros((2, 3), HALF), np.array([0, 2])
    loss = TF.cross_entropy(Tensor(x, dtype=HALF), targets, reduction=reduction)
    expected = F.cross_entropy(torch.from_numpy(x), torch.from_numpy(targets),
                               reduction=reduction)
    assert loss.dtype == HALF and expected.dtype == torch.float16
    assert_allclose(loss.data, expected.numpy())


def float16_grad_and_torchs(op, x, upstream, create_graph):
    """d/dx of sum(upstream * op(x)) for float16 x and upstream, and torch's in float64."""
    ours = Tensor(x, dtype=HALF, requires_grad=True)
    (grad,) = ta.grad(getattr(ours, op)(), ours, grad_outputs=Tensor(upstream, dtype=HALF),
                      create_graph=create_graph)
    theirs = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    getattr(theirs, op)(-1).backward(torch.tensor(upstream, dtype=torch.float64))
    assert grad.dtype == HALF
    return grad.data, theirs.grad.numpy()


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_softmax_backward_sums_its_row_in_float32_as_torch(create_graph):
    # sum(g s) = 2049 lies between two float16s: in float16 it was 2048, and the gradient
    # s (g - 2048) = [0, 1] where torch's is [-0.5, 0.5]
    ours, theirs = float16_grad_and_torchs("softmax", np.zeros(2, HALF),
                                           np.array([2048, 2050], HALF), create_graph)
    assert_allclose(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_log_softmax_backward_sums_more_gradients_than_float16_holds(create_graph):
    # The gradient of y.sum(), 1 - 70,000 e^y: the sum of its 70,000 ones was inf in float16,
    # and every gradient -inf
    ours, theirs = float16_grad_and_torchs("log_softmax", np.zeros(70_000, HALF),
                                           np.ones(70_000, HALF), create_graph)
    assert_allclose(ours, theirs, rtol=0, atol=1e-3)


# ------------------------------------------------------------------ a row's sum of squares


ROWS = (np.random.default_rng(0).standard_normal((2, 768)) * 10).astype(HALF)   # sum x^2: 76,800
WEIGHT = (np.random.default_rng(1).standard_normal(768) / 4 + 1).astype(HALF)
BIAS = (np.random.default_rng(2).standard_normal(768) / 4).astype(HALF)


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_layer_norm_of_rows_whose_squares_pass_65504_is_torchs(either_form, create_graph):
    # Their sum of squares was inf in float16: every output 0
    ours_and_torch(TF.layer_norm, lambda x, w, b: F.layer_norm(x, (768,), w, b),
                   ROWS, WEIGHT, BIAS, create_graph=create_graph)


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_rms_norm_of_rows_whose_squares_pass_65504_is_torchs(create_graph):
    ours_and_torch(TF.rms_norm, lambda x, w: F.rms_norm(x, (768,), w, eps=1e-6),
                   ROWS, WEIGHT, create_graph=create_graph)


def test_a_layer_norm_module_normalises_float16_as_torchs():
    # float32 weight and bias, float16 x: float16 out, as torch.nn.LayerNorm's
    ours_and_torch(nn.LayerNorm(768), lambda x: F.layer_norm(x, (768,)), ROWS)


# ------------------------------------------------------------------ gelu's negative tail


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_gelu_gradients_in_the_negative_tail_are_torchs(either_form, create_graph):
    # e^(-2u), up to e^80, overflowed float16: NaN gradients from x = -5 down. (Torch's own
    # float16 gradient at -5 is -2.0e-6, the true one -1.5e-6: within TOLERANCE's atol.)
    x = np.array([-60000, -100, -8, -5, -4, -1, 0, 0.5, 3, 60000], HALF)
    ours_and_torch(Tensor.gelu, lambda t: F.gelu(t, approximate="tanh"), x,
                   create_graph=create_graph)


# ------------------------------------------------------------------ formulas of several steps

# Elementwise ops whose float16 formula takes several steps compute it in float32 and round the
# result once, as torch's kernels do: each step rounded to float16 lost the last bits (1 - y^2
# near y = 1 most of all).
STEPS = np.linspace(-6, 6, 601).astype(HALF)
UPSTREAM = np.random.default_rng(0).standard_normal(601).astype(HALF)


def float16_value_and_grad(function, x, upstream, create_graph=False):
    """function(x) and d/dx of sum(upstream * function(x)), for float16 x."""
    ours = Tensor(x, dtype=HALF, requires_grad=True)
    out = function(ours)
    (grad,) = ta.grad(out, ours, grad_outputs=Tensor(upstream, dtype=HALF),
                      create_graph=create_graph)
    assert out.dtype == grad.dtype == HALF
    return out.data, grad.data


def test_float16_tanh_gradient_at_3_is_torchs():
    # 1 - y^2 rounded to float16 was 0.009766; torch's 0.00974
    _, grad = float16_value_and_grad(Tensor.tanh, np.array([3.0], HALF), np.ones(1, HALF))
    theirs = torch.tensor([3.0], dtype=torch.float16, requires_grad=True)
    theirs.tanh().backward()
    assert grad[0] == theirs.grad.numpy()[0] == HALF(0.00974)


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("op", ["tanh", "sigmoid", "softplus"])
def test_float16_tanh_sigmoid_and_softplus_are_torchs_bit_for_bit(op, create_graph):
    # (sigmoid's gradient aside: torch's own is up to 2 float16 steps from the float32 one
    # rounded once, which is ours)
    ours = {"tanh": Tensor.tanh, "sigmoid": Tensor.sigmoid, "softplus": TF.softplus}[op]
    y, grad = float16_value_and_grad(ours, STEPS, UPSTREAM, create_graph)
    theirs = torch.tensor(STEPS, requires_grad=True)
    expected = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "softplus": F.softplus}[op](theirs)
    expected.backward(torch.tensor(UPSTREAM))
    np.testing.assert_array_equal(y, expected.detach().numpy())
    if op != "sigmoid":
        np.testing.assert_array_equal(grad, theirs.grad.numpy())


def in_float32(x):
    """A float16 array as float32, for the expected values."""
    return x.astype(np.float32)


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_sigmoid_rounds_its_float32_gradient_once(create_graph):
    y, grad = float16_value_and_grad(Tensor.sigmoid, STEPS, UPSTREAM, create_graph)
    s, g = in_float32(y), in_float32(UPSTREAM)
    np.testing.assert_array_equal(grad, (g * s * (1 - s)).astype(HALF))


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_softcap_rounds_its_float32_formulas_once(create_graph):
    y, grad = float16_value_and_grad(lambda t: TF.softcap(t, 2.0), STEPS, UPSTREAM,
                                     create_graph)
    x, g = in_float32(STEPS), in_float32(UPSTREAM)
    np.testing.assert_array_equal(y, (2 * np.tanh(x / 2)).astype(HALF))
    t = in_float32(y) / 2
    np.testing.assert_array_equal(grad, (g * (1 - t * t)).astype(HALF))


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_swiglu_rounds_its_float32_formulas_once(create_graph):
    y, grad = float16_value_and_grad(TF.swiglu, STEPS[:600], UPSTREAM[:300], create_graph)
    a, b, g = in_float32(STEPS[:300]), in_float32(STEPS[300:600]), in_float32(UPSTREAM[:300])
    s = (np.tanh(a / 2) + 1) / 2
    np.testing.assert_array_equal(y, (a * s * b).astype(HALF))
    slope = ((1 - s) * a + 1) * s                                    # silu'(a), as the op
    np.testing.assert_array_equal(grad, np.concatenate([slope * b * g, g * (a * s)]).astype(HALF))


# ------------------------------------------------------------------ attention's dot products


def test_float16_attention_whose_dot_products_pass_65504_is_torchs(either_form):
    # q . k of 16 values near 100 is 160,000, inf in float16 before the scaling: NaN outputs
    q = np.full((1, 1, 3, 16), 100, HALF)
    k = q.copy()
    k[..., 1, :] = 90
    v = np.random.default_rng(0).standard_normal((1, 1, 3, 4)).astype(HALF)
    ours_and_torch(scaled_dot_product_attention, F.scaled_dot_product_attention, q, k, v)


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_readable_attention_and_its_weights_compute_in_float32_as_the_op(create_graph):
    # The scores above, through the readable form and the weights record_weights keeps (an
    # attention map's): both NaN where their q . k was taken in float16.
    q = np.full((1, 1, 3, 16), 100, HALF)
    k = q.copy()
    k[..., 1, :] = 99.5
    v = np.random.default_rng(0).standard_normal((1, 1, 3, 4)).astype(HALF)
    ours_and_torch(attention_readable, F.scaled_dot_product_attention, q, k, v,
                   create_graph=create_graph, atol=1e-3, grad_atol=1e-3)
    ours_and_torch(attention_weights, lambda q, k: (q @ k.transpose(-2, -1) / 4).softmax(-1),
                   q, k, create_graph=create_graph, atol=1e-3, grad_atol=1e-3)


def test_float16_readable_attention_rounds_once_after_its_weights_meet_the_values():
    # Two keys scored 2.5e-4 apart weigh 0.5 +- 6e-5: in float16 (spaced 4.9e-4 there) both
    # 0.5, and values of +-1000 weighted by them cancel to 0 where the output is 0.125.
    q = np.ones((1, 1, 1, 16), HALF)
    k = np.zeros((1, 1, 2, 16), HALF)
    k[..., 0, 0] = 0.001
    v = np.array([1000, -1000], HALF).reshape(1, 1, 2, 1)
    ours_and_torch(attention_readable, F.scaled_dot_product_attention, q, k, v, atol=1e-3,
                   grad_atol=1e-3)


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_attention_gradients_are_torchs_where_keys_differ_by_float16s_spacing(
        either_form, create_graph):
    # Queries and keys from 64 up, by float16's spacing there (0.0625): dot products from
    # 65,536 (inf in float16), scores that differ by 1 a step. dS sums to 0 along each row,
    # and dQ = dS K / 4 keeps only the keys' differences: a row sum rowsum(dO * O) taken
    # from the output rounded to float16 broke that, and dQ was off by a quarter of its
    # largest value. (Scores near 16,384 hold float32's rounding, 0.001: outputs that cancel
    # to near 0 keep some 1e-4 of it.)
    rng = np.random.default_rng(0)
    q = (64 + rng.integers(0, 3, (2, 3, 5, 16)) * 0.0625).astype(HALF)
    k = (64 + rng.integers(0, 5, (2, 3, 5, 16)) * 0.0625).astype(HALF)
    v = rng.standard_normal((2, 3, 5, 4)).astype(HALF)
    mask = np.tril(np.ones((5, 5), bool))
    ours_and_torch(lambda *t: scaled_dot_product_attention(*t, mask),
                   lambda *t: F.scaled_dot_product_attention(*t, attn_mask=torch.tensor(mask)),
                   q, k, v, create_graph=create_graph, atol=1e-3, grad_atol=1e-3)


@pytest.mark.parametrize("create_graph", [False, True])
def test_float16_attention_with_a_bias_computes_in_float32_as_torchs(either_form, create_graph):
    # The scores of test_float16_attention_whose_dot_products_pass_65504_is_torchs, past
    # float16's largest before the scaling, with a per-head bias (ALiBi's kind) in float16:
    # all in float32, the bias's gradient too.
    q = np.full((1, 2, 3, 16), 100, HALF)
    k = q.copy()
    k[..., 1, :] = 99.5
    v = np.random.default_rng(0).standard_normal((1, 2, 3, 4)).astype(HALF)
    bias = (-np.array([0.5, 2.0])[:, None, None] * np.abs(np.arange(3)[:, None] -
                                                          np.arange(3))).astype(HALF)
    ours_and_torch(lambda q, k, v, b: scaled_dot_product_attention(q, k, v, bias=b),
                   lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b),
                   q, k, v, bias, create_graph=create_graph, atol=1e-3, grad_atol=1e-3)


# ------------------------------------------------------------------ every op of the op table


@pytest.mark.filterwarnings("error")    # no overflow met along the way, as torch's prints none
@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=6)
@given(data=st.data(), create_graph=st.booleans())
def test_every_op_in_float16_is_float16_and_its_float64_values_to_float16s_rounding(
        case, data, create_graph):
    """Every case of tests/op_cases.py in float16: the result and every gradient float16 (no
    silent upcast), and within float16's rounding (about 1e-3 an operation) of the same
    computation in float64 on the same inputs, through the plain backward and the one a second
    derivative runs (create_graph)."""
    arrays, params = case.draw(Draw(data))
    inputs = [Tensor(np.asarray(a, HALF), requires_grad=True, dtype=HALF) for a in arrays]
    out = case.fn(*inputs, **params)
    direction = np.random.default_rng(0).standard_normal(out.shape)
    grads = ta.grad(out, inputs, grad_outputs=Tensor(direction, dtype=HALF),
                    create_graph=create_graph)
    assert out.dtype == HALF, f"{case.name}: float16 inputs gave a {out.dtype} result"
    assert all(g is None or g.dtype == HALF for g in grads), [g.dtype for g in grads if g]

    wide = [Tensor(x.data.astype(np.float64), requires_grad=True, dtype=np.float64)
            for x in inputs]
    out64 = case.fn(*wide, **params)
    grads64 = ta.grad(out64, wide, grad_outputs=Tensor(direction, dtype=np.float64))
    scale = max(1.0, np.abs(out64.data).max(initial=0))
    assert_allclose(out.data.astype(np.float64), out64.data, rtol=1e-2, atol=1e-2 * scale)
    for g, g64 in zip(grads, grads64):
        if g is not None:
            scale = max(1.0, np.abs(g64.data).max(initial=0))
            assert_allclose(g.data.astype(np.float64), g64.data, rtol=2e-2, atol=2e-2 * scale)
