"""Every op against PyTorch (float64), with the op table in tests/op_cases.py: the forward values
and the gradients for a random upstream gradient agree to a relative 1e-7, on shapes, axes and
broadcasts drawn by hypothesis; so do the second derivatives (double backward). torch is a
test-only dependency.
"""

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import tinyautograd as ta
from op_cases import CASES, Draw
from tinyautograd import Tensor

RTOL = 1e-7
ATOL = 1e-12   # for results that cancel to ~0, where a relative error means nothing


def both(arrays):
    """The same float64 inputs as tinyautograd and as torch tensors."""
    ours = [Tensor(np.asarray(a, np.float64), requires_grad=True, dtype=np.float64)
            for a in arrays]
    theirs = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    return ours, theirs


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=25)
@given(data=st.data())
def test_matches_torch(case, data):
    arrays, params = case.draw(Draw(data))
    ours, theirs = both(arrays)

    out = case.fn(*ours, **params)
    expected = case.torch_fn(*theirs, **params)
    assert out.shape == tuple(expected.shape)
    assert out.dtype == np.float64
    assert np.isfinite(out.data).all() == torch.isfinite(expected).all().item()
    assert_allclose(out.data, expected.detach().numpy(), rtol=RTOL, atol=ATOL)

    direction = np.random.default_rng(0).standard_normal(out.shape)
    grads = ta.grad(out, ours, grad_outputs=Tensor(direction, dtype=np.float64))
    expected_grads = torch.autograd.grad(expected, theirs, torch.tensor(direction),
                                         allow_unused=True)
    for i, (g, e) in enumerate(zip(grads, expected_grads)):
        g = np.zeros(ours[i].shape) if g is None else g.data
        e = np.zeros(ours[i].shape) if e is None else e.numpy()
        assert g.dtype == np.float64
        assert_allclose(g, e, rtol=RTOL, atol=ATOL, err_msg=f"gradient of input {i}")


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=8)
@given(data=st.data())
def test_double_backward_matches_torch(case, data):
    """The backward under create_graph, differentiated again, against torch's double backward:
    d/d(inputs, g) of sum(w_i * grad_i), where grad_i = d(sum(out * g))/d(input i) and the w_i
    are fixed random weights. Differentiating in the incoming gradient g too reaches the
    backward of every op, linear ones (sum, reshape, indexing) included."""
    arrays, params = case.draw(Draw(data))
    check_double_backward(case, arrays, params)


def test_double_backward_of_attention_without_a_mask_on_4d_inputs_matches_torch():
    # The shapes for which torch's attention runs its fused kernel, which has no double
    # backward: its reference must be the math one (a random draw found it, never CI's).
    case = next(c for c in CASES
                if c.name == "attention: softmax(q k^T / sqrt(d)) v, a mask, broadcast batch axes")
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((1, 1, 2, 3)) for _ in range(3)]
    check_double_backward(case, arrays, {"mask": None})


def check_double_backward(case, arrays, params):
    ours, theirs = both(arrays)
    rng = np.random.default_rng(0)
    out = case.fn(*ours, **params)
    expected = case.torch_fn(*theirs, **params)
    direction = rng.standard_normal(out.shape)
    g, tg = Tensor(direction, requires_grad=True, dtype=np.float64), torch.tensor(
        direction, requires_grad=True)
    grads = ta.grad(out, ours, grad_outputs=g, create_graph=True)
    expected_grads = torch.autograd.grad(expected, theirs, tg, create_graph=True,
                                         allow_unused=True)
    weights = [rng.standard_normal(x.shape) for x in ours]
    projected = sum((gi * w).sum() for gi, w in zip(grads, weights) if gi is not None)
    expected_projected = sum((e * torch.tensor(w)).sum()
                             for e, w in zip(expected_grads, weights) if e is not None)
    second = ta.grad(projected, ours + [g])
    expected_second = torch.autograd.grad(expected_projected, theirs + [tg], allow_unused=True)
    for i, (h, e) in enumerate(zip(second, expected_second)):
        shape = (ours + [g])[i].shape
        h = np.zeros(shape) if h is None else h.data
        e = np.zeros(shape) if e is None else e.detach().numpy(force=True)   # a ZeroTensor too
        assert_allclose(h, e, rtol=RTOL, atol=ATOL,
                        err_msg=f"second derivative in {'g' if i == len(ours) else i}")


# ------------------------------------------------------------------------------ numerics


def test_softmax_and_log_softmax_of_huge_logits_are_finite():
    logits = np.array([[1e4, -1e4, 0.0], [3e4, 3e4, -5e4]])
    x, t = both([logits])
    for ours, theirs in [(x[0].softmax(-1), torch.softmax(t[0], -1)),
                         (x[0].log_softmax(-1), torch.log_softmax(t[0], -1)),
                         (x[0].softmax(0), torch.softmax(t[0], 0))]:
        assert np.isfinite(ours.data).all()
        assert_allclose(ours.data, theirs.detach().numpy(), rtol=RTOL)
        ours.sum().backward()
        assert np.isfinite(x[0].grad).all()



@pytest.mark.parametrize("op", ["softmax", "log_softmax", "cross_entropy"])
def test_logits_masked_with_minus_inf_are_torchs_and_twice_differentiable(op):
    # The mask written by hand, x.masked_fill(blocked, -inf), before softmax (attention) or a
    # loss over the allowed classes only: e^-inf is 0, so the blocked entries take no weight
    # and pass no gradient, first or second order. Every row keeps an entry.
    logits = np.random.default_rng(5).standard_normal((3, 4))
    blocked = np.array([[True, False, True, False], [False] * 4, [True, True, True, False]])
    fns = {"softmax": lambda x: x.softmax(-1), "log_softmax": lambda x: x.log_softmax(-1),
           "cross_entropy": lambda x: (ta.functional.cross_entropy if isinstance(x, Tensor)
                                       else lambda x, t: torch.nn.functional.cross_entropy(
                                           x, torch.as_tensor(t)))(x, np.array([1, 0, 3]))}
    mask_of = {Tensor: lambda m: m, torch.Tensor: torch.as_tensor}

    def fn(x):
        return fns[op](x.masked_fill(mask_of[type(x)](blocked), -np.inf))

    (x,), (t,) = both([logits])
    out, expected = fn(x), fn(t)
    assert_allclose(out.data, expected.detach().numpy(), rtol=RTOL)
    direction = np.random.default_rng(0).standard_normal(out.shape)
    (grad,) = ta.grad(out, [x], grad_outputs=Tensor(direction, dtype=np.float64),
                      create_graph=True)
    (expected_grad,) = torch.autograd.grad(expected, [t], torch.tensor(direction),
                                           create_graph=True)
    assert_allclose(grad.data, expected_grad.detach().numpy(), rtol=RTOL, atol=ATOL)
    assert (grad.data[blocked] == 0).all()
    weights = np.random.default_rng(1).standard_normal(logits.shape)
    (second,) = ta.grad((grad * weights).sum(), [x])
    (expected_second,) = torch.autograd.grad((expected_grad * torch.tensor(weights)).sum(), [t])
    assert_allclose(second.data, expected_second.numpy(), rtol=RTOL, atol=ATOL)
    if op != "log_softmax":            # (-inf at the blocked entries: no differences to take)
        assert ta.gradcheck(fn, x) and ta.gradgradcheck(fn, x)


@pytest.mark.filterwarnings("error")    # numpy's warning of inf - inf: torch's NaN is quiet
@pytest.mark.parametrize("op", ["softmax", "log_softmax", "cross_entropy"])
def test_a_row_masked_out_entirely_or_holding_inf_is_nan_quietly_as_torchs(op):
    # Row 0 keeps its entries; row 1 is all -inf (every class masked out); row 2 holds +inf
    logits = np.array([[0.5, -1.0, 2.0], [-np.inf] * 3, [np.inf, 0.0, 1.0]])
    fns = {"softmax": lambda x: x.softmax(-1), "log_softmax": lambda x: x.log_softmax(-1),
           "cross_entropy": lambda x: (ta.functional.cross_entropy if isinstance(x, Tensor)
                                       else lambda x, t: torch.nn.functional.cross_entropy(
                                           x, torch.as_tensor(t), reduction="none")
                                       )(x, np.array([1, 0, 2]))}
    (x,), (t,) = both([logits])
    out, expected = fns[op](x), fns[op](t)
    if op == "cross_entropy":                    # torch's mean: the rows' losses, averaged
        expected = expected.mean()
    assert_allclose(out.data, expected.detach().numpy(), rtol=RTOL)      # NaN where torch's is
    (grad,) = ta.grad(out.sum(), [x])
    (expected_grad,) = torch.autograd.grad(expected.sum(), [t])
    assert_allclose(grad.data, expected_grad.numpy(), rtol=RTOL)


SIZE_0_CASES = {   # name: (ours, torch's, the input's shape), each with an axis of size 0
    "softmax along an empty axis": (lambda x: x.softmax(-1), lambda x: x.softmax(-1), (2, 0)),
    "log_softmax along an empty axis": (lambda x: x.log_softmax(0), lambda x: x.log_softmax(0),
                                        (0, 3)),
    "softmax of no rows": (lambda x: x.softmax(-1), lambda x: x.softmax(-1), (0, 3)),
    "sum of nothing": (lambda x: x.sum(axis=0), lambda x: x.sum(dim=0), (0, 3)),
    "mean over an empty batch": (lambda x: x.mean(axis=-1), lambda x: x.mean(dim=-1), (0, 3)),
    "matmul with an inner size 0": (lambda x: x @ np.ones((0, 2)),
                                    lambda x: x @ torch.ones((0, 2), dtype=x.dtype), (3, 0)),
    "a batch times a weight of no rows": (lambda w: np.ones((2, 3, 0)) @ w,
                                          lambda w: torch.ones((2, 3, 0), dtype=w.dtype) @ w,
                                          (0, 2)),
    "a batch times a weight of no columns": (lambda w: np.ones((2, 3, 4)) @ w,
                                             lambda w: torch.ones((2, 3, 4), dtype=w.dtype) @ w,
                                             (4, 0)),
    "getitem with no indices": (lambda x: x[np.array([], int)],
                                lambda x: x[torch.tensor([], dtype=torch.long)], (3, 2)),
    "concat with an empty part": (lambda x: ta.concat([x, x[:0]], axis=0),
                                  lambda x: torch.cat([x, x[:0]], dim=0), (2, 3)),
    "layer_norm over no features": (lambda x: ta.functional.layer_norm(x),
                                    lambda x: torch.nn.functional.layer_norm(x, (0,)), (2, 0)),
    "rms_norm over no features, with a weight": (
        lambda x: ta.functional.rms_norm(x, Tensor(np.ones(0), requires_grad=True)),
        lambda x: torch.nn.functional.rms_norm(x, (0,), torch.ones(0, dtype=x.dtype)), (2, 0)),
    "layer_norm of no rows": (lambda x: ta.functional.layer_norm(x),
                              lambda x: torch.nn.functional.layer_norm(x, (3,)), (0, 3)),
    "mean of nothing": (lambda x: x.mean(), lambda x: x.mean(), (0,)),
    "mean along an empty axis": (lambda x: x.mean(axis=1, keepdims=True),
                                 lambda x: x.mean(dim=1, keepdim=True), (2, 0, 3)),
    "log_softmax along the empty axis of a sequence": (
        lambda x: x.log_softmax(1), lambda x: x.log_softmax(1), (2, 0, 3)),
    "rms_norm over no features": (lambda x: ta.functional.rms_norm(x),
                                  lambda x: torch.nn.functional.rms_norm(x, (0,)), (2, 0)),
    "layer_norm of an empty vector": (lambda x: ta.functional.layer_norm(x),
                                      lambda x: torch.nn.functional.layer_norm(x, (0,)), (0,)),
    "max along the full axis of no rows": (lambda x: x.max(axis=1),
                                           lambda x: x.amax(dim=1), (0, 3)),
}


@pytest.mark.filterwarnings("error")    # nothing printed either: torch prints nothing here
@pytest.mark.parametrize("case", SIZE_0_CASES, ids=str)
def test_axes_of_size_0_as_torch(case):
    fn, torch_fn, shape = SIZE_0_CASES[case]
    x, t = both([np.zeros(shape)])
    out, expected = fn(x[0]), torch_fn(t[0])
    assert out.shape == tuple(expected.shape)
    assert_allclose(out.data, expected.detach().numpy())
    direction = np.ones(out.shape)
    (grad,) = ta.grad(out, x, grad_outputs=Tensor(direction, dtype=np.float64))
    (expected_grad,) = torch.autograd.grad(expected, t, torch.tensor(direction))
    assert grad.shape == shape
    assert_allclose(grad.data, expected_grad.numpy())


@pytest.mark.filterwarnings("error")    # ours prints nothing, as its mean of nothing
@pytest.mark.parametrize("shape, axis, ddof", [((2, 0), 1, 0), ((0,), None, 0), ((0, 3), 0, 1)],
                         ids=str)
def test_var_of_nothing_is_nan_quietly(shape, axis, ddof):
    x, t = both([np.zeros(shape)])
    out = x[0].var(axis, ddof=ddof)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # torch: "degrees of freedom is <= 0"
        expected = t[0].var(dim=axis, correction=ddof)
    assert out.shape == tuple(expected.shape)
    assert_allclose(out.data, expected.detach().numpy())    # nan where torch's is nan
    (grad,) = ta.grad(out.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), t)
    assert grad.shape == tuple(expected_grad.shape) == shape

@pytest.mark.parametrize("op, shape, axis, expected", [
    ("max", (0,), None, r"max: the tensor of shape \(0,\) is empty"),
    ("max", (2, 0), 1, r"max: axis 1 of shape \(2, 0\) has size 0"),
    ("max", (2, 0, 3), (1, 2), r"max: axis 1 of shape \(2, 0, 3\) has size 0"),
    ("argmax", (0, 3), None, r"argmax: the tensor of shape \(0, 3\) is empty"),
    ("argmax", (2, 0), -1, r"argmax: axis -1 of shape \(2, 0\) has size 0"),
    ("min", (2, 0), 1, r"min: axis 1 of shape \(2, 0\) has size 0"),
])
def test_max_and_argmax_of_nothing_say_which_axis_is_empty_where_torch_raises(op, shape, axis,
                                                                               expected):
    torch_op = {"max": torch.amax, "argmax": torch.argmax, "min": torch.amin}[op]
    with pytest.raises((RuntimeError, IndexError)):
        torch_op(torch.zeros(shape), **({} if axis is None else {"dim": axis}))
    with pytest.raises(ValueError, match=expected):
        getattr(ta.zeros(*shape), op)(axis)


@pytest.mark.parametrize("op", ["max", "min", "argmax"])
def test_an_axis_out_of_range_of_an_empty_tensor_gets_the_error_any_other_tensor_gets(op):
    with pytest.raises(Exception) as full:
        getattr(ta.zeros(2, 3), op)(5)
    with pytest.raises(type(full.value)) as empty:
        getattr(ta.zeros(2, 0), op)(5)
    assert str(empty.value) == str(full.value).replace("(2, 3)", "(2, 0)")


@pytest.mark.parametrize("op", ["max", "min"])
def test_max_of_a_slice_with_nan_gives_torchs_nan_gradient_without_a_warning(op):
    values = np.array([[1.0, np.nan, 3.0], [2.0, 2.0, 1.0]])
    (x,), (t,) = both([values])
    getattr(x, op)(axis=1).sum().backward()
    {"max": torch.amax, "min": torch.amin}[op](t, dim=1).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = getattr(x, op)(axis=1)
        x.grad = None
        y.sum().backward()
    assert_array_equal(x.grad, t.grad.numpy())      # NaN in the first row, ties in the second


@pytest.mark.parametrize("create_graph", [False, True], ids=["plain", "create_graph"])
@pytest.mark.parametrize("op", ["relu", "abs"])
def test_relu_and_abs_at_nan_and_inf_have_torchs_gradient(op, create_graph):
    # torch's: relu's slope is 1 at NaN (0 only where x <= 0), abs's 0 (its sign's), so that a
    # NaN's gradient is not made NaN or cut off again at each such op after the one that made it
    values = np.array([np.nan, -np.inf, np.inf, -1.0, 0.0, 2.0])
    (x,), (t,) = both([values])
    direction = np.linspace(-1.0, 2.0, values.size)
    fn = {"relu": lambda v: v.relu(), "abs": abs}[op]
    (g,) = ta.grad(fn(x), [x], grad_outputs=direction, create_graph=create_graph)
    (expected,) = torch.autograd.grad(fn(t), [t], torch.tensor(direction))
    assert_array_equal(g.data, expected.numpy())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")    # np.var's, the reference: 1 / 0
@pytest.mark.filterwarnings("ignore::UserWarning")       # torch's: degrees of freedom <= 0
@pytest.mark.parametrize("ddof", [3, 4, 10])
def test_var_with_ddof_not_below_the_count_is_infinite_as_numpys_and_torchs(ddof):
    # numpy and torch divide by max(N - ddof, 0): no variance is negative.
    x = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]])
    ours = Tensor(x, dtype=np.float64).var(axis=1, ddof=ddof)
    assert_array_equal(ours.data, np.var(x, axis=1, ddof=ddof))     # inf, and 0/0 = nan
    assert_array_equal(ours.data, torch.tensor(x).var(dim=1, correction=ddof).numpy())


@pytest.mark.filterwarnings("ignore::UserWarning")       # torch's: degrees of freedom <= 0
@pytest.mark.parametrize("ddof", [3, 4])
def test_var_with_ddof_not_below_the_count_has_torchs_infinite_gradient(ddof):
    # The mean's share of it was 0 * inf: NaN, and so every element's. torch's is
    # 2 (x - mean) / 0, NaN only where x is the mean (at ddof 3; above, ours stays so).
    x = np.array([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0], [1.0, 2.0, 3.0]])
    g = np.array([1.0, 1.0, -2.0])
    ours = Tensor(x, dtype=np.float64, requires_grad=True)
    ours.var(axis=1, ddof=ddof).backward(g)
    theirs = torch.tensor(x, requires_grad=True)
    theirs.var(dim=1, correction=3).backward(torch.tensor(g))
    assert_array_equal(ours.grad, theirs.grad.numpy())    # -inf, inf, and NaN at the mean


@pytest.mark.parametrize("ddof", [3, 4])
def test_var_with_ddof_not_below_the_count_warns_of_nothing_as_torchs(ddof):
    # Its inf, NaN and +-inf gradient are the results var documents: numpy's divide-by-zero
    # and invalid-value warnings from the engine's formulas told the user nothing they asked.
    x = Tensor([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]], requires_grad=True)    # NaN in row 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.var(axis=1, ddof=ddof)
        y.backward(np.ones(2, np.float32))
    assert np.isinf(y.data[0]) and np.isnan(y.data[1])
    assert np.isinf(x.grad[0]).all() and np.isnan(x.grad[1]).all()


def test_sigmoid_of_large_inputs_is_finite_and_exact():
    values = np.array([-1000.0, -745.0, -40.0, 40.0, 745.0, 1000.0])
    for dtype in (np.float32, np.float64):
        x = Tensor(values, requires_grad=True, dtype=dtype)
        y = x.sigmoid()
        y.sum().backward()
        assert np.isfinite(y.data).all() and np.isfinite(x.grad).all()
        expected = torch.sigmoid(torch.tensor(values, dtype=getattr(torch, dtype.__name__)))
        assert_allclose(y.data, expected.numpy(), rtol=1e-6, atol=1e-300)   # subnormals


def test_softplus_of_large_negative_inputs_keeps_its_tiny_values_as_torchs():
    # ln(1 + e^x) far below 0 is about e^x, lost in the rounding of 1 + e^x: computed as
    # log(1 + e^x) it would be 0 there (log1p keeps it).
    values = np.array([-700.0, -100.0, -40.0, -20.0])
    for dtype in (np.float32, np.float64):
        y = ta.functional.softplus(Tensor(values, dtype=dtype))
        expected = torch.nn.functional.softplus(torch.tensor(values,
                                                             dtype=getattr(torch, dtype.__name__)))
        assert_allclose(y.data, expected.numpy(), rtol=1e-6, atol=0)


def test_gelu_of_far_tails_is_finite_and_torchs():
    # Far below zero, e^(-2u) of GELU's formula would overflow: y and dy/dx are 0 there, not
    # NaN, without an overflow warning; far above, y = x and dy/dx = 1. The second derivative
    # too.
    values = np.array([-1e4, -100.0, -30.0, -11.0, -6.0, -1.0, 0.0, 1.0, 6.0, 30.0, 1e4])
    for dtype in (np.float32, np.float64):
        x = Tensor(values, requires_grad=True, dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = x.gelu()
            (slope,) = ta.grad(y.sum(), [x], create_graph=True)
            (curvature,) = ta.grad(slope.sum(), [x])
        t = torch.tensor(values, dtype=getattr(torch, dtype.__name__), requires_grad=True)
        y_t = torch.nn.functional.gelu(t, approximate="tanh")
        (slope_t,) = torch.autograd.grad(y_t.sum(), [t], create_graph=True)
        (curvature_t,) = torch.autograd.grad(slope_t.sum(), [t])
        for ours, theirs in [(y, y_t), (slope, slope_t), (curvature, curvature_t)]:
            assert np.isfinite(ours.data).all()
            assert_allclose(ours.data, theirs.detach().numpy(), rtol=RTOL, atol=1e-6)


@pytest.mark.filterwarnings("ignore:overflow encountered")       # x^3 of -1e30 in float32
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loops", [True, False], ids=["loops", "numpy forms"])
def test_gelu_past_its_cap_is_0_as_torchs_however_far_out(dtype, loops, monkeypatch):
    # Past the cap on -2u (x below -9.67), y was x e^-80: -18 at -1e36 (torch: -0)
    if not loops:
        monkeypatch.setattr(ta.kernels, "usable", lambda *arrays, into=(): False)
    values = np.array([-3e38, -1e36, -1e30, -1e4, -20.0, -9.7])
    x = Tensor(values, requires_grad=True, dtype=dtype)
    y = x.gelu()
    y.sum().backward(retain_graph=True)
    t = torch.tensor(values, dtype=torch.float64, requires_grad=True)  # (float32's: NaN slopes)
    y_t = torch.nn.functional.gelu(t, approximate="tanh")
    y_t.sum().backward()
    assert_array_equal(y.data, y_t.detach().numpy())       # 0 (-0 for torch: equal)
    assert_array_equal(x.grad, t.grad.numpy())
    # A second backward through the kept graph, and one under create_graph, compute the slope
    # again from x: past the cap too it is 0 (its formula there: -inf in float32), and so is
    # the derivative of the slope (NaN in float32: the formula's infs, times 0).
    x.grad = None
    y.sum().backward()
    assert_array_equal(x.grad, t.grad.numpy())
    (slope,) = ta.grad(x.gelu().sum(), x, create_graph=True)
    (slope_t,) = torch.autograd.grad(torch.nn.functional.gelu(t, approximate="tanh").sum(), t,
                                     create_graph=True)
    assert_array_equal(slope.data, slope_t.detach().numpy())
    (curvature,) = ta.grad(slope.sum(), x)
    (curvature_t,) = torch.autograd.grad(slope_t.sum(), t)  # -4.5e-32 at -9.7: ours, 0
    assert_allclose(curvature.data, curvature_t.numpy(), rtol=0, atol=1e-30)


@pytest.mark.filterwarnings("ignore:overflow encountered")       # x^3 of 2e13 in float32
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loops", [True, False], ids=["loops", "numpy forms"])
def test_gelu_above_10_is_x_with_slope_1_as_torchs_however_far_out(dtype, loops, monkeypatch):
    # The slope was 1.0035, 4.5 and inf at 1e12, 1e13 and 2e13 in float32 (the loops), NaN at
    # 2e13 (numpy): its formula's x^3 overflows there, and inf * e^(-2u) = inf * 0.
    if not loops:
        monkeypatch.setattr(ta.kernels, "usable", lambda *arrays, into=(): False)
    values = np.array([10.5, 1e4, 1e12, 1e13, 2e13])
    x = Tensor(values, requires_grad=True, dtype=dtype)
    t = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    y_t = torch.nn.functional.gelu(t, approximate="tanh")
    (slope_t,) = torch.autograd.grad(y_t.sum(), t, create_graph=True)
    (curvature_t,) = torch.autograd.grad(slope_t.sum(), t)      # -6.4e-35 at 10.5, then 0
    y = x.gelu()
    y.sum().backward()
    assert_array_equal(y.data, y_t.detach().numpy().astype(dtype))
    assert_array_equal(x.grad, slope_t.detach().numpy())
    (slope,) = ta.grad(x.gelu().sum(), x, create_graph=True)
    assert_array_equal(slope.data, slope_t.detach().numpy())
    (curvature,) = ta.grad(slope.sum(), x)
    assert_allclose(curvature.data, curvature_t.numpy(), rtol=0, atol=1e-30)
    # Further out torch's slope is NaN (its x^3 overflows too): the limit is 1.
    far = Tensor([np.finfo(dtype).max, np.inf], requires_grad=True, dtype=dtype)
    y = far.gelu()
    y.sum().backward()
    assert_array_equal(y.data, far.data)
    assert_array_equal(far.grad, [1.0, 1.0])


@pytest.mark.parametrize("logits, targets, label_smoothing", [
    # Huge logits: the loss stays finite.
    ([[1e4, -1e4, 0.0], [0.0, 5e3, -5e3]], [1, 2], 0.1),
    # The range's end, which torch takes: the targets are then uniform, whatever the labels.
    (np.random.default_rng(0).standard_normal((5, 4)), [0, 3, 1, 1, 2], 1.0),
], ids=["huge logits", "label smoothing 1"])
def test_cross_entropy_at_the_edges_is_torchs(logits, targets, label_smoothing):
    x, t = both([np.array(logits)])
    loss = ta.functional.cross_entropy(x[0], np.array(targets), label_smoothing=label_smoothing)
    expected = torch.nn.functional.cross_entropy(t[0], torch.tensor(targets),
                                                 label_smoothing=label_smoothing)
    assert_allclose(loss.data, expected.item(), rtol=RTOL)
    loss.backward()
    expected.backward()
    assert_allclose(x[0].grad, t[0].grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_with_every_target_ignored_has_a_zero_gradient(label_smoothing):
    # A batch of padding only: torch's loss is 0/0 = nan, but its gradient is 0, so that one
    # such batch does not fill every parameter with NaN. Second order too.
    logits = np.random.default_rng(0).standard_normal((2, 3, 4))
    targets = np.full((2, 3), -100)
    x, t = both([logits])
    loss = ta.functional.cross_entropy(x[0], targets, ignore_index=-100,
                                       label_smoothing=label_smoothing)
    expected = torch.nn.functional.cross_entropy(t[0].reshape(-1, 4),
                                                 torch.tensor(targets).reshape(-1),
                                                 ignore_index=-100,
                                                 label_smoothing=label_smoothing)
    assert np.isnan(loss.item()) and np.isnan(expected.item())
    (grad,) = ta.grad(loss, [x[0]], create_graph=True)
    (expected_grad,) = torch.autograd.grad(expected, [t[0]])
    assert_array_equal(grad.data, expected_grad.numpy())
    assert_array_equal(grad.data, np.zeros(logits.shape))
    (curvature,) = ta.grad((grad * grad).sum() + grad.sum(), [x[0]])
    assert_array_equal(curvature.data, np.zeros(logits.shape))


@pytest.mark.filterwarnings("error")    # nothing printed either: torch prints nothing here
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(0, 0), (3, 0), (2, 3, 0)], ids=str)
def test_cross_entropy_over_no_classes_is_torchs(shape, label_smoothing):
    # With 0 classes only ignored targets are in range: torch's loss is 0/0 = nan, with an
    # empty gradient. (torch takes the 3-D case only flattened to rows; so does this test.)
    targets = np.full(shape[:-1], -100)
    x, t = both([np.zeros(shape)])
    loss = ta.functional.cross_entropy(x[0], targets, ignore_index=-100,
                                       label_smoothing=label_smoothing)
    expected = torch.nn.functional.cross_entropy(t[0].reshape(math.prod(shape[:-1]), 0),
                                                 torch.tensor(targets).reshape(-1),
                                                 label_smoothing=label_smoothing)
    assert np.isnan(loss.item()) and np.isnan(expected.item())
    (grad,) = ta.grad(loss, [x[0]], create_graph=True)
    (expected_grad,) = torch.autograd.grad(expected, [t[0]], create_graph=True)
    assert grad.shape == tuple(expected_grad.shape) == shape
    (curvature,) = ta.grad(grad.sum(), [x[0]])
    (expected_curvature,) = torch.autograd.grad(expected_grad.sum(), [t[0]], allow_unused=True)
    assert curvature.shape == shape
    assert expected_curvature is None or tuple(expected_curvature.shape) == shape


@pytest.mark.filterwarnings("error")    # torch prints nothing here either
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_over_no_rows_is_torchs(label_smoothing):
    # No rows and no ignore_index: the mean over no targets is 0/0 = nan, quietly (each row's
    # weight in the mean, 1/count, must not be numpy's 1/0 warning), with an empty gradient.
    x, t = both([np.zeros((0, 4))])
    loss = ta.functional.cross_entropy(x[0], np.zeros(0, np.int64),
                                       label_smoothing=label_smoothing)
    expected = torch.nn.functional.cross_entropy(t[0], torch.zeros(0, dtype=torch.long),
                                                 label_smoothing=label_smoothing)
    assert np.isnan(loss.item()) and np.isnan(expected.item())
    loss.backward()
    expected.backward()
    assert x[0].grad.shape == tuple(t[0].grad.shape) == (0, 4)


@pytest.mark.filterwarnings("error")    # nothing printed: no mean of nothing is taken
@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(3, 4), (3, 0), (0, 4)], ids=["all ignored", "no classes",
                                                                 "no rows"])
def test_cross_entropy_summed_or_per_target_over_no_target_that_counts_is_torchs(
        shape, label_smoothing, reduction):
    # Where the mean is 0/0 = nan, the sum is 0 and each target's loss 0, as torch's: every
    # target ignored, or none there. (With no classes and label smoothing, torch's is NaN, its
    # eps / V with V = 0 reaching even the ignored targets; ours leaves them at 0, as always.)
    targets = np.full(shape[:-1], -100)
    x, t = both([np.random.default_rng(0).standard_normal(shape)])
    loss = ta.functional.cross_entropy(x[0], targets, ignore_index=-100,
                                       label_smoothing=label_smoothing, reduction=reduction)
    expected = torch.nn.functional.cross_entropy(t[0], torch.tensor(targets),
                                                 label_smoothing=label_smoothing,
                                                 reduction=reduction)
    assert loss.shape == tuple(expected.shape)
    if shape[-1] == 0 and label_smoothing:
        assert torch.isnan(expected).all()
    else:
        assert_array_equal(loss.data, expected.detach().numpy())
    assert_array_equal(loss.data, np.zeros(shape[:-1] if reduction == "none" else ()))
    direction = np.ones(loss.shape)
    (grad,) = ta.grad(loss, x, grad_outputs=Tensor(direction, dtype=np.float64))
    (expected_grad,) = torch.autograd.grad(expected, t, torch.tensor(direction))
    assert_array_equal(grad.data, expected_grad.numpy())
    assert_array_equal(grad.data, np.zeros(shape))


def test_cross_entropy_per_target_over_no_classes_has_the_shape_of_the_targets():
    # (B, T, 0) logits, every target ignored: a loss of 0 for each target, (B, T) as with
    # classes. (torch's own fails on this shape, its 0 classes moved to axis 1.)
    x = Tensor(np.zeros((2, 3, 0)), requires_grad=True)
    loss = ta.functional.cross_entropy(x, np.full((2, 3), -100), ignore_index=-100,
                                       reduction="none")
    assert_array_equal(loss.data, np.zeros((2, 3)))
    loss.sum().backward()
    assert x.grad.shape == (2, 3, 0)


def test_the_loss_cross_entropy_points_to_for_class_probabilities_is_torchs():
    # torch's cross_entropy takes probabilities as targets; ours refuses them, saying what to
    # write instead: that loss, its gradient too, is torch's
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=3)
    (x,), (t,) = both([rng.standard_normal((3, 4))])
    with pytest.raises(TypeError, match=r"write -\(p \* logits\.log_softmax\(-1\)\)\.sum\(-1\)"):
        ta.functional.cross_entropy(x, probabilities)
    p = Tensor(probabilities, dtype=np.float64)
    ours = -(p * x.log_softmax(-1)).sum(-1).mean()
    theirs = torch.nn.functional.cross_entropy(t, torch.tensor(probabilities))
    assert_allclose(ours.data, theirs.detach().numpy(), rtol=RTOL)
    ours.backward()
    theirs.backward()
    assert_allclose(x.grad, t.grad.numpy(), rtol=RTOL)


def test_binary_cross_entropy_with_logits_keeps_the_tiny_loss_of_a_confident_right_answer():
    # ln(1 + e^-|x|) where the label agrees with the logit's sign. Written as one formula for
    # every x, softplus(x) - x y (or torch's (1 - y) x + softplus(-x)) is |x| + tiny - |x| for
    # y = 1 (y = 0), the tiny loss lost in rounding; so is its gradient, sigmoid(x) - y.
    x = np.array([17.0, 20.0, 40.0, -17.0, -20.0, -40.0])
    y = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    for dtype in (np.float32, np.float64):
        logits = Tensor(x, requires_grad=True, dtype=dtype)
        loss = ta.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        loss.sum().backward()
        assert_allclose(loss.data, np.log1p(np.exp(-np.abs(x))), rtol=1e-6, atol=0)
        assert_allclose(logits.grad, -np.sign(x) / (1 + np.exp(np.abs(x))), rtol=1e-6, atol=0)


@pytest.mark.parametrize("indices, num_classes", [
    ([0, 2, 1, 2], -1), ([[1, 0], [3, 3]], 5), (2, 4), (np.zeros((2, 0), np.int64), 3),
    (np.array([[0], [4]], np.uint8), -1)], ids=str)
def test_one_hot_is_torchs_an_integer_constant(indices, num_classes):
    indices = np.array(indices)
    ours = ta.functional.one_hot(Tensor(indices), num_classes)
    expected = torch.nn.functional.one_hot(torch.as_tensor(indices.astype(np.int64)),
                                           num_classes)
    assert ours.dtype == np.int64 and not ours.requires_grad
    assert_array_equal(ours.data, expected.numpy())
    assert ours.shape == tuple(expected.shape)


def test_cross_entropy_over_no_classes_refuses_a_target_that_counts():
    with pytest.raises(IndexError):
        torch.nn.functional.cross_entropy(torch.zeros(3, 0), torch.tensor([-100, 0, -100]))
    with pytest.raises(IndexError, match=r"^cross_entropy: target 0 is out of range for 0 "
                                         r"classes$"):
        ta.functional.cross_entropy(ta.zeros(3, 0), np.array([-100, 0, -100]), ignore_index=-100)


SPECIAL_VALUES = [-np.inf, -1.0, -0.0, 0.0, 1.0, np.inf, np.nan]
TORCH_F = torch.nn.functional
# Each elementwise op, ours and torch's; pow's exponents as numbers, as `x ** 0.5` is written
ELEMENTWISE = {
    **{f"x ** {n}": (lambda x, n=n: x ** n) for n in (2, 3, 0.5, -0.5, 1.5, -1.5, -1, -2, 0)},
    **{f"{c} ** x": (lambda x, c=c: c ** x) for c in (2.0, 0.5, 0.0, -1.0)},
    **{name: (lambda x, name=name: getattr(x, name)())
       for name in ("sqrt", "exp", "log", "tanh", "sigmoid", "relu")},
    "abs": abs, "neg": lambda x: -x, "x * x": lambda x: x * x, "x / x": lambda x: x / x,
    **{f"x / {c}": (lambda x, c=c: x / c) for c in (2.0, 0.0, -0.0, np.inf)},
    **{f"{c} / x": (lambda x, c=c: c / x) for c in (2.0, 0.0, -0.0, np.inf)},
    "x % 2": lambda x: x % 2.0,
    "max": lambda x: (x.reshape(7, 1).max(axis=1) if isinstance(x, Tensor)
                      else x.reshape(7, 1).amax(1)),
    "min": lambda x: (x.reshape(7, 1).min(axis=1) if isinstance(x, Tensor)
                      else x.reshape(7, 1).amin(1)),
    "where": lambda x: (ta.where(np.arange(7) % 2 == 0, x, x * 2) if isinstance(x, Tensor)
                        else torch.where(torch.arange(7) % 2 == 0, x, x * 2)),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # numpy's warnings at inf, 0 and NaN
@pytest.mark.parametrize("create_graph", [False, True], ids=["plain", "create_graph"])
@pytest.mark.parametrize("op", list(ELEMENTWISE) + ["softplus"])
def test_elementwise_ops_at_special_values_are_torchs(op, create_graph):
    # At -inf, +-0.0, inf and NaN the value and the gradient are torch's (0.0 for its -0.0 of
    # relu and %: a zero's sign, which no gradient here depends on): x ** 0.5 had gradient 0
    # at -inf (torch's and x.sqrt()'s NaN) and +inf at -0.0 (theirs -inf), x ** 0 NaN at NaN
    fn = ELEMENTWISE.get(op)
    ours_fn, torch_fn = (ta.functional.softplus, TORCH_F.softplus) if fn is None else (fn, fn)
    (x,), (t,) = both([SPECIAL_VALUES])
    y = ours_fn(x)
    (g,) = ta.grad(y.sum(), [x], create_graph=create_graph)
    y_t = torch_fn(t)
    (g_t,) = torch.autograd.grad(y_t.sum(), [t])
    assert_array_equal(y.data, y_t.detach().numpy())      # (NaN where theirs is NaN)
    assert_array_equal(g.data, g_t.numpy())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # 1 / 0 at 0, NaN at a negative x
@pytest.mark.parametrize("exponent", [-0.5, 0.5, -1.5, -1.0, 2.0])
def test_pow_in_place_gives_what_pow_gives_as_torchs(exponent):
    # x **= y under no_grad (an optimizer's step) took numpy's pow, +inf at -0.0 where x ** y
    # and torch's pow_ give -inf for -0.5
    x = Tensor(SPECIAL_VALUES, dtype=np.float64)
    t = torch.tensor(SPECIAL_VALUES, dtype=torch.float64)
    expected = (x ** exponent).data
    with ta.no_grad():
        x **= exponent
    t.pow_(exponent)
    assert_array_equal(x.data, expected)
    assert_array_equal(x.data, t.numpy())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_gelu_at_the_infinities_is_finite_where_torchs_is_nan():
    # Deliberately not torch's: GELU tends to 0 (slope 0) at -inf and to x (slope 1) at inf,
    # the limits its tails are computed by (see the far-tail tests); torch's tanh formula
    # gives NaN for the value at -inf and for both slopes.
    (x,), (t,) = both([SPECIAL_VALUES])
    y = x.gelu()
    (g,) = ta.grad(y.sum(), [x])
    y_t = TORCH_F.gelu(t, approximate="tanh")
    (g_t,) = torch.autograd.grad(y_t.sum(), [t])
    assert_array_equal(y.data[[0, 5]], [0.0, np.inf])
    assert_array_equal(g.data[[0, 5]], [0.0, 1.0])
    assert np.isnan(y_t[0].item()) and np.isnan(g_t[[0, 5]].numpy()).all()
    finite = [1, 2, 3, 4]                                         # elsewhere torch's
    assert_allclose(y.data[finite], y_t.detach().numpy()[finite], rtol=RTOL)
    assert_allclose(g.data[finite], g_t.numpy()[finite], rtol=RTOL)
    assert np.isnan(y.data[6]) and np.isnan(g.data[6])


def pow_grid():
    """Every pair (a, b) of a few bases, 0 among them, and exponents, as two flat arrays."""
    a, b = np.meshgrid([0.0, 2.0, -2.0], [0.0, 0.5, 1.0, 2.0, 3.0, -1.0])
    return a.ravel(), b.ravel()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")    # 0 ** -1 and (-2) ** 0.5
def test_pow_gradients_at_a_zero_base_are_torchs():
    # b a^(b-1) at a = b = 0 is 0 * inf, and y ln a at a = 0 is 0 * -inf (b > 0) or 1 * -inf
    # (b = 0): torch takes 0 for all three (a^0 = 1 is flat; 0^b is 0 or 1 for every b >= 0).
    (a, b), (ta_, tb) = both(pow_grid())
    grads = ta.grad((a ** b).sum(), [a, b])
    expected = torch.autograd.grad((ta_ ** tb).sum(), [ta_, tb])
    for ours, theirs in zip(grads, expected):
        assert_allclose(ours.data, theirs.numpy(), rtol=RTOL)      # nan and inf where torch's
    zeros = (a.data == 0) & (b.data == 0)
    assert (grads[0].data[zeros] == 0).all() and (grads[1].data[(a.data == 0) & (b.data >= 0)]
                                                   == 0).all()
    # a constant exponent or a constant base, as torch's pow(tensor, number) and
    # pow(number, tensor)
    x, t = both([[0.0, 1.5, -2.0]])
    for exponent in (0.0, 2.0):
        (ours,) = ta.grad((x[0] ** exponent).sum(), x)
        (theirs,) = torch.autograd.grad((t[0] ** exponent).sum(), t)
        assert_array_equal(ours.data, theirs.numpy())
    e, t = both([[0.0, 0.5, 2.0]])
    (ours,) = ta.grad((0.0 ** e[0]).sum(), e)
    (theirs,) = torch.autograd.grad((0.0 ** t[0]).sum(), t)
    assert_array_equal(ours.data, theirs.numpy())


def test_pow_at_a_zero_base_is_twice_differentiable():
    # x ** n at x = 0 for a constant n: smooth, so finite differences hold, and no 0 * inf
    # reaches the second derivative (torch's is nan for x ** tensor(0.)).
    x = Tensor([0.0, 1.5, -2.0], requires_grad=True, dtype=np.float64)
    for n in (0.0, 1.0, 2.0, 3.0):
        assert ta.gradcheck(lambda x, n=n: x ** n, x)
        assert ta.gradgradcheck(lambda x, n=n: x ** n, x)
    (slope,) = ta.grad((x ** 0.0).sum(), [x], create_graph=True)
    (curvature,) = ta.grad(slope.sum(), [x])
    assert_array_equal(curvature.data, np.zeros(3))
    # with both a and b variable, at a = 0: d2y/da2 and d2y/da db are torch's where it has
    # numbers (b = 1, 2, 3)
    values = np.array([0.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0])
    (a, b), (ta_, tb) = both(values)
    slope_a, _ = ta.grad((a ** b).sum(), [a, b], create_graph=True)
    slope_ta, _ = torch.autograd.grad((ta_ ** tb).sum(), [ta_, tb], create_graph=True)
    for ours, theirs in zip(ta.grad(slope_a.sum(), [a, b]),
                            torch.autograd.grad(slope_ta.sum(), [ta_, tb])):
        assert_allclose(ours.data, theirs.numpy(), rtol=RTOL)



def test_pow_with_an_exponent_of_0_is_twice_differentiable_in_both():
    # a ** b with b = 0 and a > 0 is smooth: d/db (b a^(b-1)) = a^(b-1) (1 + b ln a) = 1/a there.
    # torch's double backward gives 0 (its pow backward zeroes b a^(b-1) where b == 0, a
    # constant to the second derivative), so finite differences are the judge here.
    a = Tensor([1.3, 0.6, 2.0, 1.7], requires_grad=True, dtype=np.float64)
    b = Tensor([0.0, 0.0, 1.0, -0.5], requires_grad=True, dtype=np.float64)
    assert ta.gradcheck(lambda a, b: a ** b, a, b)
    assert ta.gradgradcheck(lambda a, b: a ** b, a, b)
    slope_a, _ = ta.grad((a ** b).sum(), [a, b], create_graph=True)
    (curvature_ab,) = ta.grad(slope_a.sum(), [b])
    assert_allclose(curvature_ab.data[:2], 1 / a.data[:2], rtol=RTOL)


# ------------------------------------------------------------------------------ operands


OPERATORS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b, "**": lambda a, b: a ** b,
}


@pytest.mark.parametrize("op", OPERATORS, ids=str)
@pytest.mark.parametrize("left", [True, False], ids=["ndarray-left", "ndarray-right"])
def test_float64_numpy_operands_keep_float64_precision(op, left):
    """A float64 numpy array meeting a float64 tensor is used as it is, as numpy and torch
    use it: not rounded to float32 first (0.1 is not a float32)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 2.0, 4)
    constant = np.array([0.1, 1 / 3, np.pi, 1.1])
    fn = OPERATORS[op]
    result = fn(constant, Tensor(x, dtype=np.float64)) if left else \
        fn(Tensor(x, dtype=np.float64), constant)
    expected = fn(constant, x) if left else fn(x, constant)
    assert result.dtype == np.float64
    assert_allclose(result.data, expected, rtol=1e-15)


def test_backward_with_a_float64_numpy_gradient_keeps_float64_precision():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True, dtype=np.float64)
    seed = np.array([0.1, 1 / 3, np.pi])
    (x * 2.0).backward(seed)
    assert_allclose(x.grad, 2.0 * seed, rtol=1e-15)


def test_operators_accept_numbers_and_arrays_on_either_side():
    x = Tensor(np.array([1.0, 2.0, 4.0]), dtype=np.float64)
    a = np.array([2.0, 4.0, 8.0])
    for ours, expected in [(2 - x, 2 - x.data), (a - x, a - x.data), (2 / x, 2 / x.data),
                           (a / x, a / x.data), (2 ** x, 2 ** x.data), (a ** x, a ** x.data),
                           (3 + x, 3 + x.data), (a * x, a * x.data), (x - a, x.data - a)]:
        assert isinstance(ours, Tensor)
        assert_array_equal(ours.data, expected)
