"""The engine's behaviour: graph recording, backward, modes, hooks, errors, custom ops."""

import gc
import os
import re
import tracemalloc
import warnings
import weakref

import numpy as np
import pytest

import tinyautograd as ta
from tinyautograd import Function, Tensor


def f64(*shape, seed=0, requires_grad=True):
    rng = np.random.default_rng(seed)
    return Tensor(rng.standard_normal(shape), requires_grad=requires_grad, dtype=np.float64)


# ------------------------------------------------------------------ tensors


def test_floats_default_to_float32_and_other_dtypes_are_kept():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(np.zeros(3, np.float64)).dtype == np.float32
    assert Tensor(np.zeros(3), dtype=np.float64).dtype == np.float64
    assert Tensor([1, 2]).dtype.kind == "i"
    assert Tensor([True]).dtype == bool


def test_scalars_do_not_upcast_float32():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (2 * x + 1.5) / 3.0 - x ** 2.0
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_numpy_array_on_the_left_goes_to_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 4.0])


def test_only_floats_can_require_grad():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor([1, 2], requires_grad=True)


def test_complex_numbers_are_refused_in_the_graph_where_their_gradient_would_be_wrong():
    # torch's gradient of a real loss of complex z is dL/dRe z + i dL/dIm z, which needs the
    # conjugates of the operands (of |z * z|: 2 z, not 2 conj(z) |z|^2 / z^2): no op here takes
    # them, so a complex tensor in the graph would get a silently wrong gradient.
    with pytest.raises(TypeError, match=r"^only real floating-point tensors can require "
                                        r"gradients; this one is complex128$"):
        Tensor(np.array([1 + 2j]), requires_grad=True)
    x = Tensor([1.0, 2.0], requires_grad=True)
    message = (r"^{}: its result is {}, and complex numbers are not differentiated here: keep "
               r"what meets a tensor that requires a gradient real, or \.detach\(\) the tensor "
               r"to compute with it outside the graph$")
    with pytest.raises(TypeError, match=message.format("mul", "complex64")):
        x * 1j
    with pytest.raises(TypeError, match=message.format("add", "complex128")):
        x + np.array([1j, 2j])
    with pytest.raises(TypeError, match=r"^assigned grad has dtype complex128: a gradient is "
                                        r"real floating point, as its tensor \(float32\)$"):
        x.grad = np.zeros(2, complex)
    np.testing.assert_array_equal((x.detach() * 1j).data, [1j, 2j])     # outside the graph
    with ta.no_grad():
        np.testing.assert_array_equal((x * 1j).data, [1j, 2j])


def test_a_complex_array_keeps_its_imaginary_part_when_it_meets_a_float_tensor():
    # A real array takes the tensor's dtype; a cast of a complex one would drop i (as torch,
    # whose float32 + complex128 is complex128).
    x = Tensor([1.0, 2.0])
    for result in (x + np.array([1j, 2j]), np.array([1j, 2j]) + x):
        assert result.dtype == np.complex128
        np.testing.assert_array_equal(result.data, [1 + 1j, 2 + 2j])


def test_comparisons_are_outside_the_graph():
    x = Tensor([1.0, -1.0], requires_grad=True)
    mask = x > 0
    assert mask.dtype == bool and not mask.requires_grad and mask.grad_fn is None
    np.testing.assert_array_equal((x == 1.0).data, [True, False])


def test_repr_names_dtype_and_node():
    x = Tensor([1.0], requires_grad=True, dtype=np.float64)
    assert "requires_grad=True" in repr(x) and "float64" in repr(x)
    assert "grad_fn=<exp>" in repr(x.exp())


def test_the_repr_of_an_empty_tensor_shows_its_shape_as_numpy_and_torch():
    assert repr(Tensor(np.zeros((0, 3)))) == "Tensor([], shape=(0, 3))"
    assert repr(Tensor(np.zeros((2, 0), np.int64))) == "Tensor([], shape=(2, 0), dtype=int64)"
    assert repr(Tensor([])) == "Tensor([])"                 # `[]` says (0,) itself


def test_detach_shares_data_and_leaves_the_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None
    d.data[0] = 7.0                      # the same array, as torch's detach shares storage
    assert y.data[0] == 7.0


def test_item_numpy_tolist():
    x = Tensor([[1.5]])
    assert x.item() == 1.5 and x.tolist() == [[1.5]] and x.numpy() is x.data


# ------------------------------------------------------------------ backward


def test_gradient_of_a_small_expression_by_hand():
    a = Tensor(2.0, requires_grad=True, dtype=np.float64)
    b = Tensor(-3.0, requires_grad=True, dtype=np.float64)
    c = a * b + b ** 2          # dc/da = b = -3, dc/db = a + 2b = -4
    c.backward()
    assert a.grad == -3.0 and b.grad == -4.0


def test_input_used_twice_gets_both_contributions():
    x = f64(3)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)


def test_gradients_accumulate_across_backward_calls():
    x = f64(3)
    (x * 3).sum().backward()
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad, np.full(3, 7.0))


def test_broadcast_gradient_is_summed_back():
    x = f64(4, 1, 3)
    b = f64(3, seed=1)
    (x * b).sum().backward()
    np.testing.assert_allclose(b.grad, x.data.sum(axis=(0, 1)))
    np.testing.assert_allclose(x.grad, np.broadcast_to(b.data, (4, 1, 3)).copy())


def test_backward_with_explicit_gradient():
    x = f64(2, 3)
    g = np.arange(6.0).reshape(2, 3)
    (x * 2).backward(g)
    np.testing.assert_allclose(x.grad, 2 * g)


def test_non_scalar_backward_without_gradient_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"shape \(2, 3\).*\.sum\(\)"):
        (f64(2, 3) * 2).backward()


def test_backward_gradient_of_wrong_shape():
    with pytest.raises(ValueError, match=r"grad has shape \(3,\)"):
        (f64(2, 3) * 2).backward(np.ones(3))


def test_backward_of_a_constant_is_a_clear_error():
    with pytest.raises(RuntimeError, match="does not require a gradient"):
        Tensor([1.0]).sum().backward()


def test_second_backward_through_freed_graph_raises():
    x = f64(3)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="already freed.*retain_graph=True"):
        y.backward()


def test_a_graph_freed_by_grad_says_to_keep_it_in_that_call():
    # Hessian-vector products for several v from one gradient: the first grad() freed the
    # gradient's graph. The advice named only backward, and "the first" of them.
    x = f64(3)
    (g,) = ta.grad((x.tanh() ** 3).sum(), x, create_graph=True)
    ta.grad(g[0], x)
    with pytest.raises(RuntimeError, match=r"already freed by an earlier backward\(\) or "
                                           r"grad\(\); pass retain_graph=True to that earlier "
                                           r"call"):
        ta.grad(g[1], x)


def test_create_graph_keeps_the_graph_unless_told_otherwise_as_torch():
    # retain_graph defaults to create_graph: the gradient's own graph goes through the forward
    # nodes (here h's, in the backward of h * h), which must still be there.
    x = f64(3)
    h = x * x
    (h * h).sum().backward(create_graph=True)
    g, x.grad = x.grad_tensor, None
    g.sum().backward()
    np.testing.assert_allclose(x.grad, 12 * x.data ** 2)


def test_retain_graph_allows_a_second_backward():
    x = f64(3)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * np.exp(x.data))


def test_backward_frees_saved_state():
    x = f64(3)
    y = x.exp()
    node = y.grad_fn
    y.sum().backward()
    assert node.freed and node.inputs == ()


class FailsOnce(Function):
    """y = 2x, whose backward raises the first time it runs (then gives dy/dx = 2)."""
    failed = False

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        if not FailsOnce.failed:
            FailsOnce.failed = True
            raise ValueError("boom")
        return grad * 2


def graph_that_fails_part_way():
    """y = sum(exp(b) * FailsOnce(a)), with a gradient already in b.grad, and the gradients
    that reached b before FailsOnce's backward raised (a hook notes them)."""
    FailsOnce.failed = False
    a, b = f64(3), f64(3, seed=1)
    b.grad = np.ones(3)
    reached_b = []
    b.register_hook(reached_b.append)
    y = (b.exp() * FailsOnce.apply(a)).sum()
    return a, b, y, reached_b


def test_a_backward_that_raises_part_way_writes_no_grad_and_a_second_says_why_it_cannot():
    # torch frees the nodes run before the error and keeps the leaves' gradients written so
    # far: b.grad held half a step that a caught error left behind. Ours writes none.
    a, b, y, reached_b = graph_that_fails_part_way()
    with pytest.raises(ValueError, match="boom"):
        y.backward()
    assert reached_b                         # b's gradient was computed before the error...
    assert a.grad is None                    # ...and neither leaf's .grad was written
    np.testing.assert_array_equal(b.grad, np.ones(3))
    with pytest.raises(RuntimeError, match=r"freed by an earlier backward\(\) or grad\(\) that "
                                           r"raised ValueError part way; run the forward again"):
        y.backward()


def test_a_backward_that_raises_part_way_with_retain_graph_can_be_tried_again():
    a, b, y, _ = graph_that_fails_part_way()
    with pytest.raises(ValueError, match="boom"):
        y.backward(retain_graph=True)
    y.backward()                             # each gradient counted once, not b's twice
    np.testing.assert_allclose(a.grad, 2 * np.exp(b.data))
    np.testing.assert_allclose(b.grad, 1 + 2 * a.data * np.exp(b.data))


def test_backward_holds_no_second_copy_of_the_leaves_gradients():
    # .grad is written once every node has run, from gradients held till then: each must be
    # let go as soon as it is copied into .grad, or the end of backward holds them twice
    params = [f64(50_000, seed=i) for i in range(8)]
    loss = sum((p * 2).sum() for p in params)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    grads_size = sum(p.grad.nbytes for p in params)
    assert grads_size <= peak < 1.5 * grads_size


def test_a_chain_of_twenty_thousand_ops_has_no_recursion_limit():
    x = Tensor(1.0, requires_grad=True, dtype=np.float64)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.backward()
    assert x.grad == pytest.approx(1.0001 ** 20_000)


def test_leaf_gradient_is_an_owned_writable_copy():
    x = f64(3)
    x.sum().backward()        # the incoming gradient is a read-only broadcast view
    x.grad += 1               # must not raise
    assert x.grad.flags.writeable and x.grad.shape == (3,)


# ------------------------------------------------------------------ modes


def test_no_grad_records_nothing():
    x = f64(3)
    with ta.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert ta.is_grad_enabled()


def test_no_grad_as_decorator_and_nesting():
    x = f64(3)

    @ta.no_grad()
    def f():
        with ta.enable_grad():
            inner = x * 2
        return inner, x * 3

    inner, outer = f()
    assert inner.requires_grad and not outer.requires_grad


def test_requires_grad_propagates_from_any_input():
    a, b = f64(2), Tensor([1.0, 2.0], dtype=np.float64)
    assert (a + b).requires_grad and not (b + b).requires_grad


# ------------------------------------------------------------------ hooks and retain_grad


def test_hook_reads_and_replaces_a_gradient():
    x = f64(3)
    h = x * 2
    seen = []
    h.register_hook(lambda g: seen.append(g.data.copy()))
    h.register_hook(lambda g: g * 10)
    h.sum().backward()
    np.testing.assert_allclose(seen[0], np.ones(3))
    np.testing.assert_allclose(x.grad, np.full(3, 20.0))


@pytest.mark.parametrize("leaf", [True, False], ids=["leaf", "result"])
@pytest.mark.parametrize("misshapen", [lambda g: g.sum(), lambda g: g[:2],
                                       lambda g: np.ones((2, 3))], ids=["sum", "slice", "bigger"])
def test_a_hook_that_changes_the_gradients_shape_is_refused_as_in_torch(leaf, misshapen):
    import torch
    xt = torch.ones(3, requires_grad=True)
    xt.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match="changed the size"):
        (xt * xt).sum().backward()
    x = f64(3)
    h = x if leaf else x * 2
    h.register_hook(misshapen)
    with pytest.raises(RuntimeError, match=r"returned a gradient of shape \(.*\) for a tensor "
                                           r"of shape \(3,\); it must keep the shape"):
        (h * h).sum().backward()
    assert x.grad is None


@pytest.mark.parametrize("create_graph", [False, True], ids=["plain", "create_graph"])
@pytest.mark.parametrize("wanted", ["h", "h x", "x h", "h y", "h2 h", "x"])
def test_grad_gives_a_hooked_tensors_gradient_before_or_after_its_hooks_as_torch(wanted,
                                                                              create_graph):
    # torch's engine answers for a wanted tensor after its hooks where the pass ends at it,
    # before them where it goes on to another wanted tensor below (which gets the hooked one)
    import torch

    def run(lib, grad, make):
        x, y = make([1.0, 2.0]), make([1.0, -1.0])
        x.register_hook(lambda g: g * 100)
        h = x * 3
        h.register_hook(lambda g: g * 10)
        h2 = h * 2
        h2.register_hook(lambda g: g * 7)
        out = (h2 * h2 * y).sum() + (x * 5).sum()
        named = {"x": x, "y": y, "h": h, "h2": h2}
        return [np.asarray(g.detach().numpy() if lib == "torch" else g.data) for g in
                grad(out, [named[n] for n in wanted.split()], create_graph=create_graph)]

    ours = run("ta", ta.grad, lambda v: Tensor(v, dtype=np.float64, requires_grad=True))
    theirs = run("torch", torch.autograd.grad,
                 lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b)


def test_hook_handle_removes_the_hook():
    x = f64(3)
    handle = x.register_hook(lambda g: g * 0)
    handle.remove()
    x.sum().backward()
    np.testing.assert_allclose(x.grad, np.ones(3))


def test_a_hook_that_removes_itself_leaves_the_next_hook_to_run_as_torch():
    # Every hook registered when the gradient arrives runs, as in torch: a walk over the list
    # itself skipped the hook after a one-shot hook that removes itself.
    x = f64(3)
    h = x * 2
    calls = []

    def once(grad):
        calls.append("once")
        handle.remove()

    handle = h.register_hook(once)
    h.register_hook(lambda grad: calls.append("always"))
    h.sum().backward(retain_graph=True)
    h.sum().backward()
    assert calls == ["once", "always", "always"]     # torch's, from the same calls


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = f64(3)
    h = x * 2
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert (x * 3).grad is None


def test_grad_leaves_a_retained_gradient_alone_where_torchs_fills_it():
    # The README's table of differences says so: grad() returns gradients, and touches no
    # .grad, a retained one included; torch.autograd.grad adds into h.grad on the way.
    import torch
    x_torch = torch.tensor([1.0, 2.0], requires_grad=True)
    h_torch = x_torch * 2
    h_torch.retain_grad()
    torch.autograd.grad((h_torch * h_torch).sum(), [x_torch])
    assert h_torch.grad is not None
    x = f64(2)
    h = x * 2
    h.retain_grad()
    (g,) = ta.grad((h * h).sum(), [x])
    np.testing.assert_allclose(g.data, 8 * x.data)
    assert h.grad is None and x.grad is None


def test_retain_grad_on_a_tensor_outside_the_graph_is_refused_as_in_torch():
    import torch
    with pytest.raises(RuntimeError, match="requires_grad=False"):
        torch.ones(2).retain_grad()
    for outside in (Tensor([1.0, 2.0]), f64(2).detach()):
        with pytest.raises(RuntimeError, match=r"^retain_grad: this tensor does not require a "
                                               r"gradient$"):
            outside.retain_grad()


def test_grad_takes_torchs_allow_unused_and_by_default_gives_none_for_an_unused_input():
    import torch
    x, unused = f64(2), f64(3, seed=1)
    xt, unused_t = (torch.tensor(t.data, requires_grad=True) for t in (x, unused))
    with pytest.raises(RuntimeError, match="index 1 appears to not have been used"):
        torch.autograd.grad((xt * xt).sum(), [xt, unused_t])
    with pytest.raises(RuntimeError, match=r"^grad: input 1 was not used to compute the "
                                           r"outputs.*allow_unused=True"):
        ta.grad((x * x).sum(), [x, unused], allow_unused=False)
    for allow_unused in ({}, {"allow_unused": True}):
        gx, g_unused = ta.grad((x * x).sum(), [x, unused], **allow_unused)
        assert g_unused is None and torch.autograd.grad(
            (xt * xt).sum(), [xt, unused_t], allow_unused=True)[1] is None
        np.testing.assert_allclose(gx.data, 2 * x.data)
    assert ta.grad((x * x).sum(), x, allow_unused=False)[0] is not None


def test_a_seed_tensor_of_another_dtype_gives_gradients_in_the_inputs_dtype_as_torch():
    import torch
    xt = torch.ones(2, requires_grad=True)
    (gt,) = torch.autograd.grad(xt * xt, xt, grad_outputs=torch.ones(2, dtype=torch.float64))
    assert gt.dtype == torch.float32                                    # torch casts the seed
    x = Tensor([1.0, 2.0], requires_grad=True)
    seed64 = Tensor([1.0, 1.0], dtype=np.float64)
    assert ta.grad(x * x, x, grad_outputs=seed64)[0].dtype == np.float32    # as an array's seed
    assert ta.grad(x * x, x, grad_outputs=np.ones(2))[0].dtype == np.float32
    seen = []
    y = x * x
    y.register_hook(lambda g: seen.append(g.dtype))
    y.backward(seed64)
    assert seen == [np.float32] and x.grad.tolist() == [2.0, 4.0]
    with pytest.raises(TypeError, match=r"^grad: grad_outputs\[0\] has dtype float64 but the "
                                        r"output has dtype float32$"):
        ta.grad(x * x, x, grad_outputs=Tensor([1.0, 1.0], requires_grad=True, dtype=np.float64),
                create_graph=True)


# ------------------------------------------------------------------ higher order


def test_second_derivative_of_a_cubic():
    x = Tensor(1.5, requires_grad=True, dtype=np.float64)
    (dy,) = ta.grad(x ** 3, [x], create_graph=True)      # 3x^2
    (d2y,) = ta.grad(dy, [x])                             # 6x
    assert dy.item() == pytest.approx(3 * 1.5 ** 2) and d2y.item() == pytest.approx(9.0)


def test_hessian_vector_product_matches_the_explicit_hessian():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    A = A + A.T
    x = Tensor(rng.standard_normal(4), requires_grad=True, dtype=np.float64)
    v = rng.standard_normal(4)
    f = lambda x: 0.5 * (x @ Tensor(A, dtype=np.float64) @ x) + (x ** 3).sum()
    (g,) = ta.grad(f(x), [x], create_graph=True)
    (hv,) = ta.grad((g * Tensor(v, dtype=np.float64)).sum(), [x])
    hessian = A + np.diag(6 * x.data)
    np.testing.assert_allclose(hv.data, hessian @ v, rtol=1e-10)


def test_backward_create_graph_leaves_a_differentiable_grad_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    (x ** 3).sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad, 3 * x.data ** 2)
    g = x.grad_tensor
    assert g.grad_fn is not None
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad, 6 * x.data)


def test_a_grad_tensor_holding_nan_keeps_its_graph():
    # A NaN gradient equals itself here: only a change by hand drops grad_tensor's graph.
    x = Tensor([-1.0, 4.0], requires_grad=True, dtype=np.float64)
    with np.errstate(invalid="ignore"):                          # sqrt(-1): NaN
        x.sqrt().sum().backward(create_graph=True)
    assert np.isnan(x.grad[0]) and x.grad[1] == 0.25
    assert x.grad_tensor is not None and x.grad_tensor.grad_fn is not None


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
def test_grad_tensor_is_always_grad_with_a_graph_as_torchs_grad_is():
    import torch
    x = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    xt = torch.tensor([1.0, 2.0], requires_grad=True, dtype=torch.float64)
    for t, clear in ((x, None), (xt, None)):
        (t ** 3).sum().backward(create_graph=True)
        t.grad = clear                                   # the torch idiom for zeroing
        (t ** 2).sum().backward(create_graph=True)
        (t ** 4).sum().backward()                        # a backward without a graph adds ...
        (t * t).sum().backward(create_graph=True)        # ... a constant to the next one
    np.testing.assert_allclose(x.grad, xt.grad.detach().numpy())
    np.testing.assert_allclose(x.grad_tensor.data, xt.grad.detach().numpy())
    (second_x,) = ta.grad(x.grad_tensor.sum(), x)
    (second_xt,) = torch.autograd.grad(xt.grad.sum(), xt)
    np.testing.assert_allclose(second_x.data, second_xt.numpy())


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
def test_assigning_grad_drops_grad_tensor_and_its_graph_as_torchs_grad_is_replaced():
    # grad_tensor was kept: its graph's memory stayed after `x.grad = None`, and the next
    # create_graph backward added onto it, not onto the assigned array.
    import torch
    x = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    xt = torch.tensor([1.0, 2.0], requires_grad=True, dtype=torch.float64)
    (x ** 3).sum().backward(create_graph=True)
    x.grad = None
    assert x.grad_tensor is None
    for t, zeros in ((x, np.zeros(2)), (xt, torch.zeros(2, dtype=torch.float64))):
        (t ** 3).sum().backward(create_graph=True)
        t.grad = zeros
        (t ** 2).sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad_tensor.data, xt.grad.detach().numpy())     # [2, 4]
    (second_x,) = ta.grad(x.grad_tensor.sum(), x)
    (second_xt,) = torch.autograd.grad(xt.grad.sum(), xt)
    np.testing.assert_allclose(second_x.data, second_xt.numpy())                 # [2, 2]


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
def test_a_grad_zeroed_in_place_drops_grad_tensor_and_its_graph_as_torchs_zero_does():
    # grad_tensor kept the old graph and values: the next create_graph backward added onto
    # them, so .grad was [3, 12] but grad_tensor [6, 24], its derivative doubled, and the graph
    # it held grew with every step.
    import torch
    x = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    xt = torch.tensor([1.0, 2.0], requires_grad=True, dtype=torch.float64)
    (x ** 3).sum().backward(create_graph=True)
    x.grad[...] = 0                                  # torch's x.grad.zero_()
    assert x.grad_tensor is None
    for _ in range(2):
        (x ** 3).sum().backward(create_graph=True)
        (xt ** 3).sum().backward(create_graph=True)
        np.testing.assert_array_equal(x.grad_tensor.data, x.grad)
        (second_x,) = ta.grad(x.grad_tensor.sum(), x, retain_graph=True)
        (second_xt,) = torch.autograd.grad(xt.grad.sum(), xt, retain_graph=True)
        np.testing.assert_allclose(second_x.data, second_xt.numpy())         # [6, 12]
        x.grad *= 0
        xt.grad.zero_()


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
def test_zero_grad_to_zeros_drops_grad_tensor_even_where_the_gradient_was_zero_already():
    # zero_grad() always drops the graph (grad_tensor's promise). grad_tensor notices a change
    # in place by its values only: a gradient that was 0 already would keep its graph, and the
    # next create_graph backward would add onto it (a second derivative counting both).
    import torch
    w = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    scale = Tensor([0.0, 0.0], requires_grad=True, dtype=np.float64)
    wt = torch.tensor([1.0, 2.0], requires_grad=True, dtype=torch.float64)
    scale_t = torch.tensor([0.0, 0.0], requires_grad=True, dtype=torch.float64)
    (w * scale).sum().backward(create_graph=True)                # dL/dw = scale: zeros
    (wt * scale_t).sum().backward(create_graph=True)
    ta.optim.SGD([w, scale], lr=0.1).zero_grad(set_to_none=False)
    torch.optim.SGD([wt, scale_t], lr=0.1).zero_grad(set_to_none=False)
    assert w.grad_tensor is None
    (w * scale).sum().backward(create_graph=True)
    (wt * scale_t).sum().backward(create_graph=True)
    (second,) = ta.grad(w.grad_tensor.sum(), scale)
    (second_t,) = torch.autograd.grad(wt.grad.sum(), scale_t)
    np.testing.assert_array_equal(second.data, second_t.numpy())                 # [1, 1]


def _times_zero(grad):
    grad *= 0


def _set_to_five(grad):
    grad[...] = 5


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
@pytest.mark.parametrize("write", [_times_zero, _set_to_five], ids=["*= 0", "[...] = 5"])
def test_a_grad_changed_in_place_and_not_read_before_the_next_backward_drops_its_graph(write):
    # Nothing reads grad_tensor between the write and the next backward: the backward itself
    # must see that .grad no longer agrees with the graph, and start from .grad as a constant.
    import torch
    x = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    xt = torch.tensor([1.0, 2.0], requires_grad=True, dtype=torch.float64)
    for t in (x, xt):
        (t ** 3).sum().backward(create_graph=True)
        write(t.grad)                                # torch records it, as a constant
        (t ** 3).sum().backward(create_graph=True)
    np.testing.assert_allclose(x.grad_tensor.data, xt.grad.detach().numpy())
    (second_x,) = ta.grad(x.grad_tensor.sum(), x)
    (second_xt,) = torch.autograd.grad(xt.grad.sum(), xt)
    np.testing.assert_allclose(second_x.data, second_xt.numpy())                 # [6, 12]


def test_create_graph_stamps_each_backward_op_with_the_forward_node_it_differentiates():
    x, w = f64(3), f64(3, seed=1)
    y = x * w
    loss = (y * y).sum()                  # y reaches the second mul twice: its grads are summed
    seed = Tensor(1.0, requires_grad=True, dtype=np.float64)
    (gx,) = ta.grad(loss, [x], grad_outputs=seed, create_graph=True)
    assert gx.grad_fn.backward_of is y.grad_fn                  # grad * w, in x * w's backward
    gy = gx.grad_fn.inputs[0]                                    # dL/dy = g * y + g * y
    assert gy.grad_fn.name == "add" and gy.grad_fn.backward_of is None   # the paths' sum
    assert {i.grad_fn.backward_of for i in gy.grad_fn.inputs} == {loss.grad_fn.inputs[0].grad_fn}
    assert y.grad_fn.backward_of is None and ta.engine._mode.annotations is None


def test_a_gradient_recorded_inside_an_annotation_gets_both_attributes():
    # Nested annotations add to the outer ones: a module whose forward takes a gradient (a
    # gradient penalty) gives its backward nodes both its path and the node they differentiate.
    x = f64(3)
    y = x.exp()
    with ta.engine.annotate(module_path="penalty"):
        (g,) = ta.grad(y.sum(), [x], create_graph=True)
    assert g.grad_fn.module_path == "penalty" and g.grad_fn.backward_of is y.grad_fn
    assert ta.engine._mode.annotations is None


def test_every_model_op_is_twice_differentiable():
    # The fused kernels too: the gradient of cross-entropy after layer norm has a graph.
    x = f64(4, 5)
    loss = ta.functional.cross_entropy(ta.functional.layer_norm(x), np.array([0, 1, 2, 3]))
    (g,) = ta.grad(loss, [x], create_graph=True)
    assert g.requires_grad and g.grad_fn.backward_of is not None
    assert ta.gradgradcheck(lambda x: ta.functional.cross_entropy(
        ta.functional.layer_norm(x), np.array([0, 1, 2, 3])), x)


def test_grad_returns_none_for_an_unused_input_and_does_not_touch_grad():
    x, unused = f64(3), f64(3, seed=1)
    gx, gu = ta.grad((x * 2).sum(), [x, unused])
    np.testing.assert_allclose(gx.data, np.full(3, 2.0))
    assert gu is None and x.grad is None


def test_grad_returns_a_tuple_for_one_input_tensor_too_as_torch():
    import torch
    w, wt = f64(1, 3), torch.tensor(f64(1, 3).data, requires_grad=True)
    ours, theirs = ta.grad((w * w).sum(), w), torch.autograd.grad((wt * wt).sum(), wt)
    assert type(ours) is type(theirs) is tuple and len(ours) == len(theirs) == 1
    np.testing.assert_allclose(ours[0].data, theirs[0].numpy())       # grad(...)[0], (1, 3)


def test_grad_takes_one_gradient_for_one_output_as_a_tensor_an_array_or_a_number():
    x = f64(2)
    for seed in (np.full(2, 3.0), Tensor(np.full(2, 3.0), dtype=np.float64), [np.full(2, 3.0)]):
        (g,) = ta.grad(x * 2, x, grad_outputs=seed)
        np.testing.assert_allclose(g.data, [6.0, 6.0])
    (g,) = ta.grad((x * 2).sum(), x, grad_outputs=3.0)
    np.testing.assert_allclose(g.data, [6.0, 6.0])
    (both,) = ta.grad([x * 2, x * 3], x, grad_outputs=[np.ones(2), np.ones(2)])
    np.testing.assert_allclose(both.data, [5.0, 5.0])


def test_grad_refuses_grad_outputs_that_do_not_fit_the_outputs():
    x = f64(2)
    with pytest.raises(RuntimeError, match=r"^grad: 2 outputs but 1 grad_outputs; give one "):
        ta.grad([x * 2, x * 3], x, grad_outputs=[np.ones(2)])
    with pytest.raises(RuntimeError, match=r"^grad: 1 outputs but 2 grad_outputs"):
        ta.grad(x * 2, x, grad_outputs=[np.ones(2), np.ones(2)])
    with pytest.raises(ta.ShapeError, match=r"^grad: grad_outputs\[1\] has shape \(3,\) but "
                                            r"the output has shape \(2,\)$"):
        ta.grad([x * 2, x * 3], x, grad_outputs=[np.ones(2), np.ones(3)])
    with pytest.raises(ta.ShapeError, match=r"grad_outputs\[0\] has shape \(1,\)"):
        ta.grad(x * 2, x, grad_outputs=np.ones(1))           # not broadcast
    with pytest.raises(RuntimeError, match=r"^grad: the output has shape \(2,\), so its "
                                           r"gradient is ambiguous.*grad_outputs\[0\]"):
        ta.grad(x * 2, x)
    with pytest.raises(RuntimeError, match=r"^grad: output 1 does not require a gradient: "
                                           r"nothing it was computed from had requires_grad"):
        ta.grad([x.sum(), Tensor(np.ones(2)).sum()], x)      # torch refuses it too
    with pytest.raises(RuntimeError, match=r"^grad: input 1 does not require a gradient, .* "
                                           r"create it with requires_grad=True"):
        ta.grad((x * 2).sum(), [x, Tensor(np.ones(2))])


def test_grad_refuses_outputs_and_inputs_that_are_not_tensors_in_one_line_as_torch():
    # An array or a string met `.requires_grad` ("'numpy.ndarray' object has no attribute"),
    # a dict gave its keys, and no inputs at all gave (), which a zip would silently take.
    from tinyautograd import nn
    x = f64(2)
    loss = (x * x).sum()
    with pytest.raises(TypeError, match=r"^grad: input 1 is a ndarray, not a Tensor: give the "
                                        r"Tensors themselves \(p, not p\.data\)"):
        ta.grad(loss, [x, x.data])
    with pytest.raises(TypeError, match=r"^grad: the inputs are a dict; give its Tensors"):
        ta.grad(loss, {"x": x})
    with pytest.raises(TypeError, match=r"^grad: the inputs must be a Tensor or a sequence of "
                                        r"Tensors, got Linear \(a module's are "
                                        r"model\.parameters\(\)\)$"):
        ta.grad(loss, nn.Linear(2, 1))
    with pytest.raises(TypeError, match=r"^grad: the outputs must be a Tensor or a sequence of "
                                        r"Tensors, got float$"):
        ta.grad(3.0, [x])
    with pytest.raises(RuntimeError, match=r"^grad: no inputs; give the Tensors to "):
        ta.grad(loss, [], retain_graph=True)
    assert ta.grad(loss, (p for p in [x]))[0].shape == (2,)     # any iterable, as torch


# ------------------------------------------------------------------ grad() goes only where needed


def _both(test):
    """Run `test(tensor, grad)` with ours and with torch's: what each gives, to compare."""
    import torch
    ours = test(lambda data: Tensor(data, requires_grad=True, dtype=np.float64), ta.grad)
    theirs = test(lambda data: torch.tensor(data, requires_grad=True, dtype=torch.float64),
                  torch.autograd.grad)
    return ours, theirs


def _logged(t, name, calls):
    t.register_hook(lambda g: calls.append((name, g.tolist())))
    return t


def test_grad_fires_the_hooks_only_on_the_paths_to_the_wanted_inputs_as_torch():
    def weight_beside_the_path(tensor, grad):            # h = x * w is on the path, w is not
        calls = []
        x, w = tensor([1.0, 2.0]), _logged(tensor([3.0, 4.0]), "w", calls)
        h = _logged(x * w, "h", calls)
        grad((h * h).sum(), x)
        return calls

    def a_branch_that_does_not_lead_to_the_input(tensor, grad):
        calls = []
        x, w = tensor([1.0, 2.0]), tensor([3.0, 4.0])
        a, b = x * 2, _logged(w * 3, "b", calls)
        grad((a * a).sum() + (b * b).sum(), x)
        return calls

    def below_a_wanted_intermediate(tensor, grad):
        calls = []
        x = _logged(tensor([1.0, 2.0]), "x", calls)
        h = _logged(x * 2, "h", calls)
        grad((h * h).sum(), h)
        return calls

    def below_a_wanted_intermediate_that_another_wanted_input_is_below(tensor, grad):
        calls = []
        x = _logged(tensor([1.0, 2.0]), "x", calls)
        h = _logged(x * 2, "h", calls)
        grads = grad((h * h).sum() + x.sum(), [h, x])
        return calls, [g.tolist() for g in grads]

    for case in (weight_beside_the_path, a_branch_that_does_not_lead_to_the_input,
                 below_a_wanted_intermediate,
                 below_a_wanted_intermediate_that_another_wanted_input_is_below):
        ours, theirs = _both(case)
        assert ours == theirs, case.__name__
    assert _both(weight_beside_the_path)[0] == [("h", [6.0, 16.0])]


def _grads(*tensors):
    """Each tensor's .grad as a list (None where it has none), to compare with torch's."""
    return [None if t.grad is None else np.asarray(t.grad.tolist()).tolist() for t in tensors]


@pytest.mark.parametrize("create_graph", [False, True], ids=["plain", "create_graph"])
@pytest.mark.parametrize("wanted", ["w", "h", "h w", "w b", "w w", "unused"])
def test_backward_with_inputs_fills_those_alone_as_torch(wanted, create_graph):
    # torch's backward(inputs=...): a PyTorch user's call raised "unexpected keyword argument"
    import torch

    def run(tensor):
        calls = []
        w, b = _logged(tensor([1.0, 2.0]), "w", calls), _logged(tensor([3.0, 4.0]), "b", calls)
        unused = tensor([5.0])
        h = _logged(w * b, "h", calls)
        h.register_hook(lambda g: g * 10)      # the .grad of a wanted h is the hooked one
        kept = w * 2                           # retain_grad() on the way to w: filled too
        kept.retain_grad()
        named = {"w": w, "b": b, "h": h, "unused": unused}
        loss = (h * h).sum() + (kept * kept).sum()
        for _ in range(2):                     # accumulates, as an ordinary backward
            loss.backward(inputs=[named[n] for n in wanted.split()], retain_graph=True,
                          create_graph=create_graph)
        return _grads(w, b, h, unused, kept), sorted(calls)   # (siblings' order is free)

    ours = run(lambda data: Tensor(data, requires_grad=True, dtype=np.float64))
    with warnings.catch_warnings():     # torch's about create_graph's cycle and a non-leaf .grad
        warnings.simplefilter("ignore")
        theirs = run(lambda data: torch.tensor(data, requires_grad=True, dtype=torch.float64))
    assert ours == theirs


def test_backward_with_one_input_tensor_records_its_gradient_under_create_graph():
    w = f64(3)
    (w * w * w).sum().backward(inputs=w, create_graph=True)
    np.testing.assert_allclose(w.grad, 3 * w.data ** 2)
    (second,) = ta.grad(w.grad_tensor.sum(), w)
    np.testing.assert_allclose(second.data, 6 * w.data)


def test_backward_refuses_inputs_that_are_empty_or_need_no_gradient_as_torch():
    import torch
    wt = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="cannot be empty"):
        (wt * 2).sum().backward(inputs=[])
    with pytest.raises(RuntimeError):
        (wt * 2).sum().backward(inputs=[torch.ones(2)])
    w = f64(2)
    loss = (w * 2).sum()
    with pytest.raises(RuntimeError, match=r"^backward: `inputs` is empty; give the Tensors"):
        loss.backward(inputs=[])
    with pytest.raises(RuntimeError, match=r"^backward: input 1 does not require a gradient"):
        loss.backward(inputs=[w, Tensor([1.0, 2.0])])
    with pytest.raises(TypeError, match=r"^backward: input 0 is a ndarray, not a Tensor"):
        loss.backward(inputs=[w.data])
    (w * 2).sum().backward(inputs=[w])      # nothing was freed by the refusals
    np.testing.assert_allclose(w.grad, [2.0, 2.0])


def test_grad_of_an_intermediate_leaves_the_graph_below_it_for_a_later_backward_as_torch():
    def later_backward(tensor, grad):
        x = tensor([1.0, 2.0])
        h = x.exp()
        y, z = (h * h).sum(), h.sum()
        (gh,) = grad(y, h)                  # frees the graph above h (y's), not exp below it
        z.backward()
        with pytest.raises(RuntimeError):
            y.backward()
        return gh.tolist(), x.grad.tolist()

    def earlier_backward(tensor, grad):     # freed exp: grad(y, h) does not need it
        x = tensor([1.0, 2.0])
        h = x.exp()
        y, z = (h * h).sum(), h.sum()
        z.backward()
        (gh,) = grad(y, h)
        return gh.tolist(), x.grad.tolist()

    for case in (later_backward, earlier_backward):
        ours, theirs = _both(case)
        np.testing.assert_allclose(ours[0], theirs[0])
        np.testing.assert_allclose(ours[1], theirs[1])


def test_grad_of_several_tensors_stops_at_a_wanted_one_whose_graph_was_freed_as_torch():
    # With one wanted tensor this worked; with two, the walk went below h and raised.
    def freed_below(tensor, grad):
        x, w = tensor([1.0, 2.0, 3.0]), tensor([1.0, 1.0, 1.0])
        h = x * 2
        h.sum().backward()                  # frees h's node
        return [g.tolist() for g in grad((h * w).sum(), [h, w])]

    ours, theirs = _both(freed_below)
    assert ours == theirs == [[1.0, 1.0, 1.0], [2.0, 4.0, 6.0]]


def test_grad_refuses_a_wanted_tensor_below_a_freed_graph_as_torch():
    def wanted_below_freed(tensor, grad):
        x, w = tensor([1.0, 2.0]), tensor([1.0, 1.0])
        h = x.exp()
        h.sum().backward()
        with pytest.raises(RuntimeError):
            grad((h * w).sum(), [h, x])

    _both(wanted_below_freed)


def test_a_second_derivative_through_grad_of_an_intermediate_as_torch():
    # dy/dh = 2h has a graph through h's own (exp, mul), below h: grad() must not free it,
    # even when told not to keep the graph it went through (above h).
    def second_derivative(tensor, grad):
        x, w = tensor([1.0, 2.0]), tensor([0.5, -1.0])
        h = (x * w).exp()
        (gh,) = grad((h * h).sum(), h, create_graph=True, retain_graph=False)
        (gx, gw) = grad((gh * gh).sum(), [x, w])
        return gh.tolist(), gx.tolist(), gw.tolist()

    for ours, theirs in zip(*_both(second_derivative)):
        np.testing.assert_allclose(ours, theirs)


@pytest.mark.filterwarnings("ignore::UserWarning")        # torch's: "Anomaly Detection has ..."
@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # numpy's and torch's, of the 0
def test_grad_does_not_look_for_anomalies_in_a_branch_it_was_not_asked_for_as_torch():
    import torch

    def nan_beside(tensor, grad):
        x, w = tensor([1.0, 2.0]), tensor([0.0, 1.0])     # sqrt's derivative at 0 is infinite
        return grad((x * 2).sum() + w.sqrt().sum(), x)[0].tolist()

    with ta.detect_anomaly(), torch.autograd.detect_anomaly():
        ours, theirs = _both(nan_beside)
    assert ours == theirs == [2.0, 2.0]


def test_grad_asks_each_backward_only_for_the_gradients_it_returns():
    asked = []

    class Scale(Function):
        @staticmethod
        def forward(ctx, x, w):
            return x * w

        @staticmethod
        def backward(ctx, grad):
            asked.append(ctx.needs_input_grad)
            x, w = ctx.operands
            return grad * w, grad * x                  # computes both anyway: w's is dropped

    x, w = f64(3), f64(3, seed=1)
    h = Scale.apply(x, w)
    w_branch = Scale.apply(w, w)
    (gx,) = ta.grad((h * h).sum() + w_branch.sum(), x, retain_graph=True)
    assert asked == [(True, False)]                   # w_branch's backward did not run
    np.testing.assert_allclose(gx.data, 2 * h.data * w.data)
    assert h.grad_fn.needs_input_grad == (True, True)     # the node is as it was recorded
    h.sum().backward()
    assert asked[-1] == (True, True)
    np.testing.assert_allclose(w.grad, x.data)



def test_grad_drops_a_gradient_it_did_not_ask_for_before_shaping_it(monkeypatch):
    # A backward may compute every gradient anyway; one off grad()'s walk is dropped as it is,
    # not summed down to its input's shape (nor cast to its dtype) first, only to be dropped.
    shaped = []
    sum_to = ta.engine._sum_to
    monkeypatch.setattr(ta.engine, "_sum_to", lambda g, shape, op: shaped.append(shape)
                        or sum_to(g, shape, op))
    from test_backward_modes import Scale             # x * w; w's gradient in x's shape

    x, w = f64(3), f64(1, seed=1)
    for create_graph in (False, True):
        (gx,) = ta.grad(Scale.apply(x, w).sum(), x, create_graph=create_graph)
        np.testing.assert_allclose(gx.data, np.broadcast_to(w.data, 3))
    assert shaped == []
    Scale.apply(x, w).sum().backward()                 # backward() wants w's: shaped
    assert shaped == [(1,)] and w.grad.shape == (1,)

# ------------------------------------------------------------------ anomaly detection


# Inside detect_anomaly numpy's warnings are off (its error says where): a warning fails these.
@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_anomaly_in_forward_names_the_op_and_the_line():
    x = Tensor([-1.0, 1.0], requires_grad=True)
    with ta.detect_anomaly():
        with pytest.raises(ta.AnomalyError, match=r"log: .*NaN or Inf.*test_engine\.py:\d+"):
            x.log()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_anomaly_mode_lets_an_infinity_the_user_gave_pass_as_torch():
    # A causal mask's -inf and the softmax after it are how attention is written; the mask
    # stopped the run at the masked_fill, so no NaN further on could be looked for.
    scores = Tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    later = np.triu(np.ones((3, 3), dtype=bool), k=1)
    with ta.detect_anomaly():
        weights = scores.masked_fill(later, float("-inf")).softmax(axis=-1)
        (weights * weights).sum().backward()
        with pytest.raises(ta.AnomalyError, match=r"^exp: .*NaN or Inf"):
            (scores * 100).exp()                  # an overflow: an Inf made of finite numbers
        with pytest.raises(ta.AnomalyError, match=r"^mul: .*NaN or Inf"):
            Tensor([np.inf]) * 0.0                # a NaN, though its operand held the Inf
        with pytest.raises(ta.AnomalyError, match=r"^div: .*NaN or Inf"):
            Tensor([1j]) / 0                      # complex numbers' NaN and Inf count too
    assert np.isfinite(scores.grad).all() and (weights.data[later] == 0).all()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_anomaly_at_a_line_without_source_names_the_line_without_empty_quotes():
    # Code typed at a REPL has no source to quote: it said `created at <stdin>:1: ""`.
    x = Tensor([-1.0, 1.0], requires_grad=True)
    with ta.detect_anomaly():
        with pytest.raises(ta.AnomalyError, match=r"; created at <stdin>:1$"):
            exec(compile("x.log()", "<stdin>", "exec"), {"x": x})


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_anomaly_in_a_file_beside_the_package_whose_name_starts_as_its_folders_names_that_file():
    # tinyautograd_notes.py, beside the folder tinyautograd/, was taken for one of the
    # package's files (its path starts with the folder's): the line named was the caller's.
    package = os.path.dirname(os.path.abspath(ta.__file__))
    notes = package + "_notes.py"
    x = Tensor([-1.0, 1.0], requires_grad=True)
    with ta.detect_anomaly():
        with pytest.raises(ta.AnomalyError, match=rf"; created at {re.escape(notes)}:1$"):
            exec(compile("x.log()", notes, "exec"), {"x": x})


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_anomaly_in_backward_names_the_op_that_made_it():
    x = Tensor([0.0, 1.0], requires_grad=True)
    before = np.geterr()
    with ta.detect_anomaly():
        y = x.sqrt()              # finite forward, infinite derivative at 0
        with pytest.raises(ta.AnomalyError, match=r"sqrt backward.*y = x\.sqrt\(\)"):
            y.sum().backward()
    assert np.geterr() == before                     # numpy's settings are the user's again


def test_anomaly_in_a_second_derivative_names_the_line_of_the_op_it_differentiates():
    # The pow that gave inf was recorded by x ** 1.5's backward, inside the engine: the error
    # said it was created "<before detect_anomaly>", though every line ran inside it.
    x = Tensor([0.0, 1.0], requires_grad=True, dtype=np.float64)
    with ta.detect_anomaly():
        y = x ** 1.5              # the second derivative, 0.75 / sqrt(x), is infinite at 0
        (g,) = ta.grad(y.sum(), x, create_graph=True)
        with pytest.raises(ta.AnomalyError, match=r"pow backward: .*created at pow's backward "
                                                  r"under create_graph=True, for the pow "
                                                  r"created at .*y = x \*\* 1\.5"):
            ta.grad(g.sum(), x)


def test_anomaly_mode_nested_or_left_by_an_error_gives_back_what_it_found():
    x = Tensor([-1.0], requires_grad=True)
    with np.errstate(all="raise"):
        with pytest.raises(ta.AnomalyError):
            with ta.detect_anomaly():
                with ta.detect_anomaly():
                    pass
                x.log()                             # the outer one still looks
        with pytest.raises(FloatingPointError):     # numpy's setting and no anomaly mode again
            x.log()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # numpy warns of the NaN too
def test_without_anomaly_mode_nans_pass_silently():
    x = Tensor([0.0], requires_grad=True)
    x.sqrt().sum().backward()
    assert np.isinf(x.grad).all()


# ------------------------------------------------------------------ error messages


def test_matmul_error_names_op_and_shapes():
    with pytest.raises(ta.ShapeError, match=r"matmul: \(2, 3\) @ \(4, 5\): inner sizes 3 and 4 "
                                            r"differ"):
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))


@pytest.mark.parametrize("a, b, says", [
    ((), (3,), r"matmul: \(\) @ \(3,\): operands must have at least one axis; use \*"),
    ((5,), (4,), r"matmul: \(5,\) @ \(4,\): inner sizes 5 and 4 differ"),
    ((3,), (), r"matmul: \(3,\) @ \(\): operands must have at least one axis; use \*"),
    ((2, 3, 4), (5,), r"inner sizes 4 and 5 differ"),
    ((2, 2, 3), (3, 3, 4), r"matmul: \(2, 2, 3\) @ \(3, 3, 4\): the batch axes \(2,\) and "
                           r"\(3,\) do not broadcast"),
])
def test_matmul_says_which_shapes_do_not_fit(a, b, says):
    # The shapes are diagnosed after numpy refuses them (not checked before every product):
    # each kind of misfit still gets its own message.
    with pytest.raises(ta.ShapeError, match=says):
        Tensor(np.ones(a)) @ Tensor(np.ones(b))


def test_linear_says_when_its_inner_sizes_differ():
    x, w, b = Tensor(np.ones((2, 6, 3))), Tensor(np.ones((4, 5))), Tensor(np.ones(5))
    with pytest.raises(ta.ShapeError, match=r"matmul: \(2, 6, 3\) @ \(4, 5\): inner sizes 3 "
                                            r"and 4 differ"):
        ta.functional.linear(x, w, b)


def test_linear_says_when_its_bias_does_not_fit_the_weight():
    x, w, b = Tensor(np.ones((2, 3))), Tensor(np.ones((3, 5))), Tensor(np.ones(4))
    with pytest.raises(ta.ShapeError, match=r"linear: needs weight \(in, out\) and bias "
                                            r"\(out,\), got \(3, 5\) and \(4,\)"):
        ta.functional.linear(x, w, b)


def test_linear_with_torchs_weight_layout_says_to_transpose_it():
    # torch's F.linear takes (out, in); ours (in, out): with or without a bias, say .T.
    x, w_torch = Tensor(np.ones((2, 6, 4))), Tensor(np.ones((3, 4)))
    hint = r"\(torch's F.linear takes \(out, in\): pass weight.T\)$"
    with pytest.raises(ta.ShapeError, match=r"^linear: needs weight .*got \(3, 4\) and "
                                            r"\(3,\) " + hint):
        ta.functional.linear(x, w_torch, Tensor(np.ones(3)))
    with pytest.raises(ta.ShapeError, match=r"^linear: matmul: .*inner sizes 4 and 3 differ "
                                            + hint):
        ta.functional.linear(x, w_torch)
    assert ta.functional.linear(x, w_torch.T, Tensor(np.ones(3))).shape == (2, 6, 3)
    with pytest.raises(ta.ShapeError, match=r"differ$"):     # not a transposed weight: no hint
        ta.functional.linear(x, Tensor(np.ones((3, 5))))


def test_masked_fill_says_its_mask_does_not_fit():
    with pytest.raises(ta.ShapeError, match=r"^masked_fill: the mask of shape \(2, 1, 4, 4\) "
                                            r"does not broadcast against the tensor of shape "
                                            r"\(2, 2, 4, 5\)"):
        Tensor(np.ones((2, 2, 4, 5))).masked_fill(np.ones((2, 1, 4, 4), dtype=bool), -1e9)
    # A mask that fits and a value that does not: the mask is not to blame.
    with pytest.raises(ta.ShapeError) as error:
        Tensor(np.ones((2, 3))).masked_fill(np.ones((2, 3), dtype=bool), np.ones(4))
    assert "the mask" not in str(error.value) and "(4,)" in str(error.value)


def test_masked_fill_refuses_a_float_mask_as_torch():
    # A float mask was taken for its truth: an additive one (0 where a key is kept, -inf
    # where it is blocked) filled exactly the kept scores, silently; torch refuses it.
    scores = Tensor(np.ones((2, 2)), requires_grad=True)
    bias = np.array([[0.0, -np.inf], [0.0, 0.0]], dtype=np.float32)
    for mask in (bias, Tensor(bias)):
        with pytest.raises(TypeError, match=r"^masked_fill: the mask must be boolean \(True where "
                                            r"to fill\), as torch's, got float32; compare first "
                                            r"\(mask != 0\), or add a mask of 0 and -inf"):
            scores.masked_fill(mask, -1e9)
    for mask, dtype in ((bias.astype(np.complex64), "complex64"), (bias.tolist(), "float64")):
        with pytest.raises(TypeError, match=rf"^masked_fill: .* got {dtype}; "):
            scores.masked_fill(mask, -1e9)
    filled = scores.masked_fill(bias != 0, -1e9)        # a boolean mask, or integers, as before
    assert filled.data.tolist() == [[1.0, -1e9], [1.0, 1.0]]
    by_integers = scores.masked_fill(np.array([[0, 1], [0, 0]]), -1e9)
    assert by_integers.data.tolist() == filled.data.tolist()


def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ta.ShapeError, match=r"mul: shapes \(2, 3\) and \(4,\) do not broadcast"):
        Tensor(np.ones((2, 3))) * Tensor(np.ones(4))


@pytest.mark.parametrize("misfit", [
    lambda x: x * Tensor(np.ones(4)),                        # an op's broadcast
    lambda x: ta.concat([x, Tensor(np.ones((3, 4)))], axis=1),   # an op's shapes
    lambda x: x.reshape(4, 2),                               # reshape outside a graph
], ids=["broadcast", "shapes", "reshape"])
def test_a_shape_error_leaves_no_reference_cycle_holding_the_inputs(misfit):
    # The ShapeError, held in a variable of the frame on its own traceback, was a cycle: the
    # inputs' arrays stayed alive until the garbage collector's next run, not freed at once.
    gc.disable()                                # only reference counts free x now
    try:
        x = Tensor(np.ones((2, 3)))
        alive = weakref.ref(x)
        with pytest.raises(ta.ShapeError):
            misfit(x)
        del x
        assert alive() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("requires_grad", [False, True], ids=["no graph", "graph"])
def test_reshape_error_names_the_sizes(requires_grad):
    # Outside a graph reshape skips the op's bookkeeping; its errors are the op's all the same.
    with pytest.raises(ta.ShapeError, match=r"^reshape: shapes \(2, 3\): .*size 6 into shape "
                                            r"\(4,2\)$"):
        Tensor(np.ones((2, 3)), requires_grad=requires_grad).reshape(4, 2)


def test_reshape_outside_a_graph_is_a_view_and_anomaly_mode_still_sees_it():
    x = Tensor(np.arange(6.0))
    y = x.reshape((2, 3))
    assert y.shape == (2, 3) and y.grad_fn is None and not y.requires_grad
    assert np.shares_memory(y.data, x.data)
    with ta.detect_anomaly():                   # every op's output is checked, a view's too
        with pytest.raises(ta.AnomalyError, match=r"^reshape: the output of shape \(3, 1\) "
                                                  r"contains NaN"):
            Tensor([np.nan, 1.0, 2.0]).reshape(3, 1)


def test_transpose_with_two_axes_points_to_swapaxes():
    with pytest.raises(ta.ShapeError, match=r"swapaxes\(-2, -1\)"):
        Tensor(np.ones((2, 3, 4))).transpose(-2, -1)


def test_transpose_of_two_axes_on_a_matrix_is_refused_as_numpys_identity_not_torchs_swap():
    # torch's k.transpose(-2, -1) swaps; numpy's is the identity: q @ k would be silent.
    w = Tensor(np.arange(6.0).reshape(2, 3))
    for axes in ((0, 1), (-2, -1), (0, -1)):
        with pytest.raises(ta.ShapeError, match=r"identity permutation.*use \.T or "
                                                r"swapaxes\(0, 1\)"):
            w.transpose(*axes)
    assert w.transpose(1, 0).shape == w.transpose(-1, -2).shape == (3, 2)
    assert w.transpose((0, 1)).shape == (2, 3)          # numpy's own spelling: no doubt
    assert Tensor(np.ones((2, 3, 4))).transpose(0, 1, 2).shape == (2, 3, 4)


def test_shape_and_axes_may_be_a_numpy_array_or_none_as_numpy_takes_them():
    a = np.arange(24.0).reshape(2, 3, 4)
    x = Tensor(a, requires_grad=True)
    axes = (2, 0, 1)
    y = x.transpose(axes).transpose(np.argsort(axes))     # numpy's way to undo a permutation
    assert y.shape == (2, 3, 4)
    assert x.transpose(None).shape == a.transpose(None).shape == (4, 3, 2)
    assert x.reshape(np.array([4, -1])).shape == (4, 6)
    assert x[0, :, :1].broadcast_to(np.array([2, 3, 4])).shape == (2, 3, 4)
    assert Tensor(np.ones((2, 3))).transpose(np.array([0, 1])).shape == (2, 3)  # a sequence
    (y * Tensor(a)).sum().backward()
    np.testing.assert_array_equal(x.grad, a)


def test_swapaxes_out_of_range_names_the_axis_and_shape():
    with pytest.raises(ta.ShapeError, match=r"^swapaxes: axis 5 is out of range for the 2 axes "
                                            r"of shape \(2, 3\)$"):
        Tensor(np.ones((2, 3))).swapaxes(0, 5)
    assert Tensor(np.ones((2, 3))).swapaxes(0, -1).shape == (3, 2)


def test_numpys_shape_errors_name_the_op_and_shapes_and_other_errors_pass_intact():
    with pytest.raises(ta.ShapeError, match=r"^sum: shapes \(2, 3\): axis 5 is out of bounds"):
        Tensor(np.ones((2, 3))).sum(axis=5)
    for reduction in ("mean", "var", "argmax"):     # made of other ops: named as called
        with pytest.raises(ta.ShapeError, match=rf"^{reduction}: shapes \(2, 3\): axis -3 is "
                                                rf"out of bounds for array of dimension 2$"):
            getattr(Tensor(np.ones((2, 3)), requires_grad=True), reduction)(axis=-3)
    with pytest.raises(ta.ShapeError, match=r"^stack: shapes \(1,\) and \(2,\): .*same shape"):
        ta.stack([Tensor([1.0]), Tensor([1.0, 2.0])])
    with pytest.raises(ta.ShapeError, match=r"^broadcastto: shapes \(3,\): .*\(2,4\)"):
        Tensor(np.ones(3)).broadcast_to(2, 4)
    with pytest.raises(ta.ShapeError, match=r"^concat: shapes \(2, 3\) and \(3, 4\): .*"
                                            r"dimension"):
        ta.concat([Tensor(np.ones((2, 3))), Tensor(np.ones((3, 4)))], axis=1)
    with pytest.raises(ValueError, match=r"^Integers to negative integer powers") as raised:
        Tensor([1, 2]) ** -1
    assert type(raised.value) is ValueError

    class Checked(Function):
        @staticmethod
        def forward(ctx, a, b, scale):
            if scale <= 0:
                raise ValueError(f"checked: scale must be > 0, got {scale}")
            return a * scale

    with pytest.raises(ValueError, match=r"^checked: scale must be > 0, got -1$") as raised:
        Checked.apply(np.ones((2, 3)), np.ones(4), scale=-1)
    assert type(raised.value) is ValueError


def test_cross_entropy_errors():
    logits = Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"targets of shape \(2,\)"):
        ta.functional.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(IndexError, match="target 3 is out of range for 3 classes"):
        ta.functional.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(TypeError, match="integers"):
        ta.functional.cross_entropy(logits, np.array([0.0, 1.0]))
    for eps in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"label_smoothing must be in \\[0, 1\\], got {eps}"):
            ta.functional.cross_entropy(logits, np.array([0, 1]), label_smoothing=eps)
    # Said in one line each, not by `<=` between a float and a str, nor by a tuple index
    with pytest.raises(TypeError, match=r"^cross_entropy: label_smoothing must be a number in "
                                        r"\[0, 1\], got '0.1'$"):
        ta.functional.cross_entropy(logits, np.array([0, 1]), label_smoothing="0.1")
    with pytest.raises(ta.ShapeError, match=r"^cross_entropy: 0-d logits have no class axis"):
        ta.functional.cross_entropy(Tensor(2.0), 0)


def test_cross_entropy_refuses_what_torch_takes_in_its_place():
    logits = Tensor(np.zeros((3, 3)))
    targets = np.array([0, 1, 2])
    # torch's third positional is the class weights, ours ignore_index
    for weight in (np.array([1.0, 2.0, 0.5]), [1.0, 2.0, 0.5], Tensor([1.0, 2.0, 0.5])):
        with pytest.raises(TypeError, match=r"^cross_entropy: ignore_index must be an int or "
                                            r"None, got an array; pass class weights by name, "
                                            r"weight=\.\.\.$"):
            ta.functional.cross_entropy(logits, targets, weight)
    with pytest.raises(TypeError, match=r"ignore_index must be an int or None, got 1\.5$"):
        ta.functional.cross_entropy(logits, targets, 1.5)
    assert ta.functional.cross_entropy(logits, targets, np.int64(1)).item() == \
        pytest.approx(np.log(3))
    # torch ignores -100 by default; ours ignores nothing unless told
    with pytest.raises(IndexError, match=r"^cross_entropy: target -100 is out of range for 3 "
                                         r"classes; torch's default ignore_index is -100: "
                                         r"pass ignore_index=-100$"):
        ta.functional.cross_entropy(logits, np.array([0, -100, 2]))
    with pytest.raises(IndexError, match=r"target -100 is out of range for 3 classes$"):
        ta.functional.cross_entropy(logits, np.array([0, -100, 2]), ignore_index=0)
    # torch's layout (N, C, T), classes on axis 1: say where ours are
    with pytest.raises(ValueError, match=r"^cross_entropy: logits \(1, 10, 2\) need targets of "
                                         r"shape \(1, 10\) \(one class index per row\), got "
                                         r"\(1, 2\) \(classes are on the last axis; torch puts "
                                         r"them on axis 1\)$"):
        ta.functional.cross_entropy(Tensor(np.zeros((1, 10, 2))), np.zeros((1, 2), np.int64))
    with pytest.raises(ValueError, match=r"got \(3,\)$"):          # no such layout: no hint
        ta.functional.cross_entropy(Tensor(np.zeros((1, 10, 2))), np.zeros(3, np.int64))
    # torch's targets may also be class probabilities, floats of the logits' shape: say what
    # computes that loss here (floats of another shape are no such thing: no hint)
    probabilities = np.full((3, 3), 1 / 3)
    with pytest.raises(TypeError, match=r"^cross_entropy: targets must be integers \(class "
                                        r"indices\), got float64: class probabilities \(as "
                                        r"torch also takes\) are not; for probabilities p, "
                                        r"write -\(p \* logits\.log_softmax\(-1\)\)\.sum\(-1\)"
                                        r"\.mean\(\)$"):
        ta.functional.cross_entropy(logits, probabilities)
    with pytest.raises(TypeError, match=r"got float64$"):
        ta.functional.cross_entropy(logits, np.array([0.0, 1.0, 2.0]))


def test_loss_weights_that_torch_refuses_are_refused():
    logits, targets = Tensor(np.zeros((2, 3))), np.array([0, 1])
    for weight, error, says in [
            ([1.0, 2.0], ta.ShapeError, r"weight must have shape \(3,\), one number per class, "
                                        r"got \(2,\)$"),
            ([1.0, -1.0, 1.0], ValueError, r"weight must be >= 0 for every class, got -1\.0$"),
            (["a", "b", "c"], TypeError, r"weight must be real numbers, one per class, got <U1$"),
            (Tensor(np.ones(3), requires_grad=True), ValueError,
             r"weight is a constant, with no gradient \(as torch's\); pass weight\.detach\(\)$")]:
        with pytest.raises(error, match="^cross_entropy: " + says):
            ta.functional.cross_entropy(logits, targets, weight=weight)
    bce = ta.functional.binary_cross_entropy_with_logits
    with pytest.raises(ta.ShapeError, match=r"^binary_cross_entropy_with_logits: pos_weight of "
                                            r"shape \(2, 3\) does not broadcast to the input's "
                                            r"shape \(3,\)$"):
        bce(np.zeros(3), np.ones(3), pos_weight=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"^binary_cross_entropy_with_logits: weight is a "
                                         r"constant, with no gradient \(as torch's\)"):
        bce(np.zeros(3), np.ones(3), weight=Tensor(np.ones(3), requires_grad=True))


def test_swiglu_and_softcap_refuse_what_they_cannot_compute():
    with pytest.raises(ta.ShapeError, match=r"swiglu: .* its size must be even; got shape "
                                            r"\(2, 5\)"):
        ta.functional.swiglu(Tensor(np.ones((2, 5))))
    for cap in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match=f"softcap: cap must be a finite number > 0, got "
                                             f"{cap!r}"):
            ta.functional.softcap(Tensor(np.ones(3)), cap)


LOSSES = {    # each with a target, as a loss is called
    "cross_entropy": lambda x, reduction: ta.functional.cross_entropy(
        x, np.array([0, 2]), reduction=reduction),
    "mse_loss": lambda x, reduction: ta.functional.mse_loss(x, x * 2, reduction=reduction),
    "binary_cross_entropy_with_logits": lambda x, reduction:
        ta.functional.binary_cross_entropy_with_logits(x, x > 0, reduction=reduction),
}


@pytest.mark.parametrize("loss", LOSSES)
def test_losses_refuse_a_reduction_that_is_not_torchs(loss):
    x = Tensor(np.ones((2, 3)))
    for reduction, shown in [("avg", "'avg'"), ("batchmean", "'batchmean'"), (None, "None"),
                             (np.ones(30), r"an array of shape \(30,\)"),
                             (list(range(20)), "a list")]:      # (its repr is one long line)
        with pytest.raises(ValueError, match=rf"^{loss}: reduction must be 'mean', 'sum' or "
                                             rf"'none', got {shown}$"):
            LOSSES[loss](x, reduction)


@pytest.mark.parametrize("loss", ["mse_loss", "binary_cross_entropy_with_logits"])
def test_elementwise_losses_refuse_an_input_and_a_target_of_different_shapes(loss):
    # torch's mse_loss broadcasts them, with a warning: (3, 1) against (3,) is a (3, 3) loss
    with pytest.raises(ta.ShapeError, match=rf"^{loss}: input \(3,\) and target \(3, 1\) must "
                                            rf"have the same shape; broadcast one to the "
                                            rf"other's first if that is meant$"):
        getattr(ta.functional, loss)(Tensor(np.zeros(3)), np.zeros((3, 1)))
    # of as many axes too: a target (1, 3) would broadcast along the batch unsaid
    with pytest.raises(ta.ShapeError, match=rf"^{loss}: input \(2, 3\) and target \(1, 3\) "):
        getattr(ta.functional, loss)(Tensor(np.zeros((2, 3))), np.zeros((1, 3)))
    # torch's third positional (BCE's weight, mse's size_average) is not taken for reduction
    with pytest.raises(TypeError, match=r"takes 2 positional arguments but 3 were given"):
        getattr(ta.functional, loss)(Tensor(np.zeros(3)), np.zeros(3), np.ones(3))


@pytest.mark.parametrize("indices, num_classes, error, message", [
    (np.array([0.0, 1.0]), -1, TypeError,
     r"one_hot: tensor must hold integers \(class indices\), got float32"),
    (np.array([True, False]), 2, TypeError,
     r"one_hot: tensor must hold integers \(class indices\), got bool"),
    (np.array([0, 3, 1]), 3, ValueError, r"one_hot: class index 3 needs num_classes > 3, got "
                                         r"num_classes=3"),
    (np.array([1, -1]), -1, ValueError, r"one_hot: class indices must be >= 0, got -1"),
    (np.zeros(0, np.int64), -1, ValueError, r"one_hot: an empty tensor has no largest index to "
                                            r"take num_classes from; give num_classes"),
    (np.array([1]), -2, ValueError, r"one_hot: num_classes must be a whole number >= 0, or -1 "
                                    r"for the largest index \+ 1, got -2"),
    (np.array([1]), 2.0, ValueError, r"one_hot: num_classes must be .*, got 2.0"),
    (np.array([0]), True, ValueError, r"one_hot: num_classes must be .*, got True"),
], ids=["floats", "booleans", "num_classes too small", "negative", "empty", "-2", "2.0", "True"])
def test_one_hot_refuses_what_has_no_one_hot_rows(indices, num_classes, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        ta.functional.one_hot(Tensor(indices), num_classes)


FUSED = {   # functional's ops whose results are fractions (torch refuses integers for them)
    "layer_norm": ta.functional.layer_norm,
    "rms_norm": ta.functional.rms_norm,
    "swiglu": ta.functional.swiglu,
    "softcap": lambda x: ta.functional.softcap(x, 2.0),
    "cross_entropy": lambda x: ta.functional.cross_entropy(x, np.array([1, 3, 0])),
    "gelu": ta.functional.gelu,
    "silu": ta.functional.silu,
    "mse_loss": lambda x: ta.functional.mse_loss(x, x * 2, reduction="none"),
    "binary_cross_entropy_with_logits": lambda x: ta.functional.binary_cross_entropy_with_logits(
        x, x > 0, reduction="none"),
    "softmax": ta.functional.softmax,
    "log_softmax": ta.functional.log_softmax,
}


@pytest.mark.parametrize("name", FUSED)
def test_fused_ops_of_integer_tensors_compute_in_float32(name):
    # As sigmoid or `/`: an integer tensor gives float32, the float32 tensor's very numbers.
    ints = np.array([[1, 2, 3, 4], [-3, 0, 5, 1], [7, 7, -2, 0]])
    result = FUSED[name](Tensor(ints))
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result.data,
                                  FUSED[name](Tensor(ints.astype(np.float32))).data)


@pytest.mark.parametrize("norm", [ta.functional.layer_norm, ta.functional.rms_norm])
def test_a_norms_weight_gradient_on_integer_input_is_the_float32_inputs(norm):
    ints = np.array([[1, 2, 3, 4], [-3, 0, 5, 1]])
    wanted = []
    for x in (ints.astype(np.float32), ints):
        weight = Tensor(np.linspace(0.5, 2, 4), requires_grad=True)
        y = norm(Tensor(x), weight)
        y.sum().backward(retain_graph=True)
        y.sum().backward()                 # again: from x this time, not forward's x_hat
        wanted.append(weight.grad)
    np.testing.assert_array_equal(wanted[1], wanted[0])


@pytest.mark.parametrize("index", [5, 7, -1])
def test_embedding_index_out_of_range(index):
    with pytest.raises(IndexError, match=f"index {index} is out of range for a table of 5 rows"):
        ta.functional.embedding(np.array([1, index]), Tensor(np.zeros((5, 2))))


def test_embedding_indices_must_be_integers():
    with pytest.raises(TypeError, match="embedding: indices must be integers, got float64"):
        ta.functional.embedding(np.array([1.0, 2.0]), Tensor(np.zeros((5, 2))))


def test_embedding_of_a_numpy_table_is_a_tensor_and_a_table_must_have_two_axes():
    # As every op, an array becomes a Tensor: it was indexed as an array, giving one
    rows = ta.functional.embedding(np.array([1, 1]), np.arange(6.0).reshape(3, 2))
    assert isinstance(rows, Tensor)
    np.testing.assert_array_equal(rows.data, [[2.0, 3.0], [2.0, 3.0]])
    # as torch's "'weight' must be 2-D": one axis gave numbers, none a tuple index error
    for weight in (np.ones(3), np.float32(1.0), np.ones((2, 3, 4))):
        with pytest.raises(ta.ShapeError, match=rf"^embedding: weight must be a table \(num, "
                                                rf"dim\) of 2 axes, got shape "
                                                rf"{re.escape(str(np.shape(weight)))}$"):
            ta.functional.embedding(np.array([0]), Tensor(weight))


# ------------------------------------------------------------------ custom ops


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        return x ** 3

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.operands
        return grad * 3 * x ** 2


class ScaledSquare(Function):
    """A custom op with a setting, given as a keyword."""

    @staticmethod
    def forward(ctx, x, scale=1.0):
        ctx.scale = scale
        return scale * x * x

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.operands
        return grad * 2 * ctx.scale * x


def test_custom_function_is_differentiable_twice():
    x = f64(4)
    assert ta.gradcheck(Cube.apply, x)
    assert ta.gradgradcheck(Cube.apply, x)


def test_custom_function_with_settings():
    x = f64(2, 3)
    assert ta.gradcheck(lambda x: ScaledSquare.apply(x, scale=2.5), x)
    assert ta.gradgradcheck(lambda x: ScaledSquare.apply(x, scale=2.5), x)
    assert ScaledSquare.apply(x).grad_fn.name == "scaledsquare"


def test_a_tensor_requiring_a_gradient_given_as_a_keyword_is_refused():
    # Only positional inputs are recorded: as a keyword, `other` would silently get no gradient.
    class Times(Function):
        @staticmethod
        def forward(ctx, x, *, other):
            return x * other

        @staticmethod
        def backward(ctx, grad):
            return grad

    x, other = f64(2), f64(2)
    with pytest.raises(TypeError, match=r"^times\.apply: the keyword argument other= is a Tensor "
                                        r"that requires a gradient, which a keyword never "
                                        r"gets: pass it positionally"):
        Times.apply(x, other=other)
    # a constant Tensor as a setting is left alone, as under no_grad
    assert Times.apply(x, other=Tensor(np.full(2, 3.0))).requires_grad
    with ta.no_grad():
        Times.apply(x, other=other)


def test_torch_style_saved_tensors_say_how_a_custom_function_keeps_its_inputs():
    advice = (r"the engine keeps a Function's inputs itself: read them in backward with "
              r"ctx\.operands \(or ctx\.array\(i\) for one\), and keep anything else as "
              r"ctx\.scale = value$")

    class Saving(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

    with pytest.raises(AttributeError, match=r"^ctx\.save_for_backward is not needed: " + advice):
        Saving.apply(f64(3))

    class Reading(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 2

    with pytest.raises(AttributeError, match=r"^ctx\.saved_tensors is not needed: " + advice):
        Reading.apply(f64(3)).sum().backward()

    class Dirty(Function):                   # torch's declaration of a change in place
        @staticmethod
        def forward(ctx, x):
            ctx.mark_dirty(x)
            x *= 2
            return x

    with pytest.raises(AttributeError, match=r"^ctx\.mark_dirty is not offered: a forward may "
                                             r"not change its inputs in place \(.*\); compute "
                                             r"and return a new array$"):
        Dirty.apply(f64(3))
    # any other missing name is Python's usual error
    with pytest.raises(AttributeError, match=r"^'Context' object has no attribute 'missing'$"):
        _ = Reading.apply(f64(3)).grad_fn.missing


@pytest.mark.parametrize("name", ["fn", "inputs", "needs_input_grad", "freed", "name",
                                  "output", "operands", "result", "create_graph", "free"])
def test_a_custom_function_cannot_store_its_own_value_under_a_name_the_engine_owns(name):
    # It would break the engine later (ctx.fn = np.tanh: "'numpy.ufunc' object has no attribute
    # 'backward'"), or meet a property's bare "no setter".
    class Storing(Function):
        @staticmethod
        def forward(ctx, x):
            setattr(ctx, name, "mine")
            return x * 2

    with pytest.raises(AttributeError, match=rf"^ctx\.{name} is the engine's own: keep your "
                                             rf"value under another name"):
        Storing.apply(f64(3))


def test_the_engine_still_writes_its_own_names_on_a_custom_functions_context():
    # detect_anomaly notes where the op was called, grad() narrows needs_input_grad, and
    # backward frees the node: all through the guard that refuses the same names to the user.
    asked = []

    class Times(Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.my_name = "times"                      # a name of the user's own is kept
            return x * w

        @staticmethod
        def backward(ctx, grad):
            asked.append(ctx.needs_input_grad)
            x, w = ctx.operands
            return grad * w, grad * x

    x, w = f64(3), f64(3)
    with ta.detect_anomaly():
        y = Times.apply(x, w)
    assert y.grad_fn.my_name == "times" and "test_engine.py" in y.grad_fn.created_at
    ta.grad(y.sum(), [x], retain_graph=True)
    assert asked == [(True, False)] and y.grad_fn.needs_input_grad == (True, True)
    y.sum().backward()
    assert y.grad_fn.freed


@pytest.mark.parametrize("setting", [None, "mean", (0, 1)], ids=["None", "str", "tuple"])
def test_a_setting_given_positionally_to_apply_says_to_give_it_as_a_keyword(setting):
    # None and strings failed as data ("the data must be numbers"), a tuple became an array
    # that numpy's sum refused as an axis.
    class SumOver(Function):
        @staticmethod
        def forward(ctx, x, axis):
            return x.sum(axis=axis)

    said = (r"is a tuple; settings \(an axis, a shape\) go as keywords" if setting == (0, 1)
            else r": the data must be numbers .*; a setting goes as a keyword \(name=value\)$")
    with pytest.raises(TypeError, match=r"^sumover\.apply: positional argument 1 ?" + said):
        SumOver.apply(f64(2, 3), setting)
    assert SumOver.apply(f64(2, 3), axis=setting if setting != "mean" else 0).requires_grad


def test_a_list_of_tensors_given_to_apply_keeps_what_tensor_says_of_it():
    # It said "positional argument 0, [Tensor(1., requires_grad=True), Tensor(, is not an
    # input", cutting the list mid-word, and told to pass a setting as a keyword.
    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            return x ** 3

    with pytest.raises(TypeError, match=r"^cube\.apply: positional argument 0: the list holds "
                                        r"Tensors that require a gradient, .* ta\.stack"):
        Cube.apply([f64(), f64()])


def test_concat_and_stack_still_take_tuples_of_numbers_as_data():
    np.testing.assert_array_equal(ta.concat([Tensor([1.0]), (2.0, 3.0)]).data, [1, 2, 3])
    np.testing.assert_array_equal(ta.stack([(1, 2), (3, 4)]).data, [[1, 2], [3, 4]])


def test_a_function_without_its_forward_or_backward_says_which_it_lacks():
    # Both were a bare NotImplementedError, with no message at all.
    class OnlyForward(Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

    class OnlyBackward(Function):
        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(NotImplementedError, match=r"^OnlyForward has no backward method: a "
                                                  r"Function needs its own backward\(ctx, grad\), "
                                                  r"a @staticmethod$"):
        OnlyForward.apply(f64(2)).sum().backward()
    with pytest.raises(NotImplementedError, match=r"^OnlyBackward has no forward method: a "
                                                  r"Function needs its own forward\(ctx, "
                                                  r"\*arrays\), a @staticmethod$"):
        OnlyBackward.apply(f64(2))


def test_custom_function_with_wrong_number_of_gradients():
    class Bad(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a + b

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs"):
        Bad.apply(f64(2), f64(2)).sum().backward()


@pytest.mark.parametrize("outputs", [lambda x: (2 * x, 3 * x), lambda x: [x.sum(), x.max()]],
                         ids=["tuple", "list"])
def test_a_forward_with_several_outputs_is_refused_rather_than_stacked(outputs):
    class Several(Function):
        @staticmethod
        def forward(ctx, x):
            return outputs(x)

        @staticmethod
        def backward(ctx, grad):
            return grad

    with pytest.raises(TypeError, match=r"^several.forward returned a (tuple|list); a Function "
                                        r"has one output, a numpy array"):
        Several.apply(f64(2))


@pytest.mark.parametrize("result, says", [
    (lambda x: None, r"None \(is its return missing\?\)"),
    (lambda x: "done", r"a str"),
], ids=["None", "str"])
def test_a_forward_that_returns_no_array_says_so(result, says):
    # A forward without its `return` failed with "'NoneType' object has no attribute 'dtype'".
    class Doubled(Function):
        @staticmethod
        def forward(ctx, x):
            return result(x)

    with pytest.raises(TypeError, match=rf"^doubled\.forward returned {says}; a Function has "
                                        rf"one output, a numpy array$"):
        Doubled.apply(f64(2))


def test_a_forward_may_return_a_python_number_as_numpys_scalar():
    class Total(Function):
        @staticmethod
        def forward(ctx, x):
            return float(x.sum())

        @staticmethod
        def backward(ctx, grad):
            return grad * np.ones(ctx.inputs[0].shape)

    x = f64(3)
    Total.apply(x).backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


@pytest.mark.parametrize("dtype", [np.int64, bool])
def test_an_integer_or_boolean_result_of_a_custom_function_is_outside_the_graph_as_torch(dtype):
    # It was recorded: an integer tensor that required a gradient (which none may), whose
    # backward sent integer "gradients" on, x.grad of ones here, where torch has no graph.
    class Positive(Function):
        @staticmethod
        def forward(ctx, x):
            return (x > 0).astype(dtype)

        @staticmethod
        def backward(ctx, grad):
            return grad

    x = f64(3)
    mask = Positive.apply(x)
    assert mask.dtype == dtype and not mask.requires_grad and mask.grad_fn is None
    with pytest.raises(RuntimeError, match=r"^backward: this tensor does not require a "):
        mask.sum().backward()
    assert x.grad is None


@pytest.mark.parametrize("create_graph", [False, True])
def test_a_backward_that_returns_a_list_is_told_to_return_a_tuple(create_graph):
    # torch counts a list as one gradient, and so did this engine: "returned 1 gradients for 2
    # inputs" for a list of two.
    class Times(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.operands
            return [grad * b, grad * a]

    a, b = f64(2), f64(2, seed=1)
    with pytest.raises(RuntimeError, match=r"^times\.backward returned a list; return a tuple, "
                                           r"one gradient per input"):
        ta.grad(Times.apply(a, b).sum(), [a, b], create_graph=create_graph)


def test_a_forward_that_changes_its_input_in_place_is_refused_before_a_gradient_goes_wrong():
    # A ReLU written in place changed the caller's x, and x * x, recorded before, then got a
    # silently wrong gradient from the changed x ([0, 4, 6] for [-2, 4, 6]).
    class InPlaceRelu(Function):
        @staticmethod
        def forward(ctx, a):
            a[a < 0] = 0
            return a

        @staticmethod
        def backward(ctx, grad):
            return grad * (ctx.array(0) > 0)

    x = Tensor([-1.0, 2.0, 3.0], requires_grad=True, dtype=np.float64)
    square = x * x
    with pytest.raises(ValueError, match=r"^assignment destination is read-only$"):
        InPlaceRelu.apply(x)                   # (numpy's words, at the line that wrote)
    assert x.data.tolist() == [-1.0, 2.0, 3.0]
    square.sum().backward()
    assert x.grad.tolist() == [-2.0, 4.0, 6.0]


def test_a_forward_that_returns_its_input_or_a_view_gives_a_writeable_tensor():
    # The read-only view a user's forward gets must not make its result read-only.
    class Flat(Function):
        views_input = True

        @staticmethod
        def forward(ctx, a):
            return a.reshape(-1)

        @staticmethod
        def backward(ctx, grad):
            return grad.reshape(ctx.array(0).shape)

    x = Tensor(np.ones((2, 2)), requires_grad=True, dtype=np.float64)
    flat = Flat.apply(x)
    assert flat.data.flags.writeable and np.shares_memory(flat.data, x.data)
    with ta.no_grad():
        flat += 1                              # a view's change is its input's, as numpy's
    assert x.data.tolist() == [[2.0, 2.0], [2.0, 2.0]]


@pytest.mark.parametrize("change", ["input", "array", "grad", "result"])
def test_a_backward_that_changes_its_arrays_in_place_is_refused_before_a_gradient_goes_wrong(
        change):
    # A backward that wrote into ctx.operands changed the caller's x; one that wrote into grad
    # changed another tensor's gradient too (Add hands both its inputs one array: h.grad came
    # out 2 for 1); one that wrote into ctx.result changed y.
    class Doubled(Function):
        @staticmethod
        def forward(ctx, a):
            return 2 * a

        @staticmethod
        def backward(ctx, grad):
            if change == "input":
                (a,) = ctx.operands
                a *= 0
            elif change == "array":
                ctx.array(0)[...] = 0
            elif change == "grad":
                grad *= 2
            else:
                ctx.result[...] = 0
            return grad * 2

    x = Tensor([1.0, 2.0, 3.0], requires_grad=True, dtype=np.float64)
    h = Tensor([1.0, 2.0, 3.0], requires_grad=True, dtype=np.float64)
    y = Doubled.apply(x)
    with pytest.raises(ValueError, match=r"^(assignment destination|output array) is "
                                         r"read-only$"):
        (y + h).backward(np.ones(3), retain_graph=True)
    assert x.data.tolist() == [1.0, 2.0, 3.0] and y.data.tolist() == [2.0, 4.0, 6.0]
    assert x.grad is None and h.grad is None


def test_a_function_called_or_instantiated_says_to_use_apply():
    x = f64(3)                                       # Cube: the custom op defined above
    for call in (lambda: Cube(x), lambda: Cube()(x)):    # torch's old style, both
        with pytest.raises(TypeError, match=r"^Cube is a Function, not to be instantiated or "
                                            r"called: run it with Cube\.apply\(\.\.\.\)$"):
            call()
    assert Cube.apply(x).shape == (3,)


def test_apply_with_arguments_its_forward_does_not_take_names_both():
    # Python's words counted ctx: "Power.forward() takes 2 positional arguments but 3 were
    # given" for one input too many. The call is named as written, Power.apply (the op's
    # name, "power", is no name to call).
    class Power(Function):
        @staticmethod
        def forward(ctx, a, *, power=3):
            return a ** power

        @staticmethod
        def backward(ctx, grad):
            raise AssertionError("not reached")

    def says(given, why):
        return (rf"^Power\.apply got {given}, which its forward\(ctx, a, \*, power=3\) does not "
                rf"take \({why}\): apply takes forward's arguments after ctx, the inputs "
                rf"positionally and the settings as keywords$")

    x = f64(3)
    with pytest.raises(TypeError, match=says("2 inputs", "too many positional arguments")):
        Power.apply(x, x)
    with pytest.raises(TypeError, match=says("1 input and the settings scale=",
                                             "got an unexpected keyword argument 'scale'")):
        Power.apply(x, scale=2)
    assert Power.apply(x, power=2).tolist() == (x.data ** 2).tolist()

    class Broken(Function):                  # a TypeError inside forward is its own
        @staticmethod
        def forward(ctx, a):
            return a + None

    with pytest.raises(TypeError, match=r"^unsupported operand type\(s\) for \+"):
        Broken.apply(x)


def returning(make_gradient):
    """A custom op y = 2x whose backward returns make_gradient(grad)."""
    class Doubled(Function):
        @staticmethod
        def forward(ctx, x):
            return 2 * x

        @staticmethod
        def backward(ctx, grad):
            return make_gradient(grad)

    return Doubled


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("make_gradient, shape", [
    (lambda g: 2 * g.T, r"\(2, 3\)"),               # transposed: the input's size, scrambled
    (lambda g: 2 * g.reshape(-1), r"\(6,\)"),       # flattened
    (lambda g: 2 * g[:2], r"\(2, 2\)"),             # too few rows
], ids=["transposed", "flattened", "too few rows"])
def test_a_backward_returning_a_gradient_of_the_wrong_shape_is_refused(make_gradient, shape,
                                                                       create_graph):
    x = f64(3, 2)
    y = returning(make_gradient).apply(x)
    with pytest.raises(RuntimeError, match=rf"^doubled\.backward returned an invalid gradient "
                                           rf"of shape {shape} for an input of shape \(3, 2\)"):
        ta.grad(y.sum(), [x], create_graph=create_graph)


def test_a_backward_may_return_a_gradient_in_a_shape_the_input_broadcasts_to():
    x = f64(3, 1)
    y = returning(lambda g: 2 * g + np.zeros((4, 3, 2))).apply(x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full((3, 1), 2.0 * 4 * 2))


def test_a_gradient_for_an_input_that_needs_none_is_dropped_unread():
    # Whatever a backward returns for a constant (here an array of no fitting shape, even under
    # create_graph), nothing reads it: only the inputs that require a gradient get one.
    class Scaled(Function):
        @staticmethod
        def forward(ctx, x, scale):
            return x * scale

        @staticmethod
        def backward(ctx, grad):
            x, scale = ctx.operands
            return grad * scale, np.zeros(7)

    x, scale = f64(3), Tensor(np.full(3, 2.0), dtype=np.float64)
    for create_graph in (False, True):
        (g,) = ta.grad(Scaled.apply(x, scale).sum(), [x], create_graph=create_graph)
        np.testing.assert_allclose(g.data, np.full(3, 2.0))


def test_graph_is_introspectable_for_drawing():
    x = f64(2)
    y = (x * 2).exp()
    node = y.grad_fn
    assert node.name == "exp" and node.output is y
    (mul_out,) = node.inputs
    assert mul_out.grad_fn.name == "mul" and mul_out.grad_fn.inputs[0] is x


# ------------------------------------------------------------------ gradcheck itself


def square_with(backward_formula):
    """x * x as an op whose backward is `backward_formula(x, grad)`: a wrong one, for gradcheck
    to catch."""
    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.operands
            return backward_formula(x, grad)

    return Square.apply


def test_gradcheck_reports_the_worst_element_of_a_wrong_gradient():
    wrong_square = square_with(lambda x, grad: grad * x)            # should be 2x
    x = f64(3)
    with pytest.raises(ta.GradcheckError, match=r"input 0 \(shape \(3,\)\).*index \(\d,\): "
                                                r"analytic .*, numeric"):
        ta.gradcheck(wrong_square, x)
    assert ta.gradcheck(wrong_square, x, raise_exception=False) is False


def test_gradgradcheck_says_it_is_the_second_order_check_that_fails():
    # Right first derivative 2x, but through x's array, a constant: its own derivative is lost.
    constant_slope = square_with(lambda x, grad: grad * 2 * (x.data if isinstance(x, Tensor)
                                                             else x))
    x = f64(3)
    assert ta.gradcheck(constant_slope, x)
    with pytest.raises(ta.GradcheckError, match=r"^gradgradcheck: second-order gradient \(a "
                                                r"Hessian-vector product\) of input 0 \(shape "
                                                r"\(3,\)\) is wrong at index"):
        ta.gradgradcheck(constant_slope, x)
    assert ta.gradgradcheck(constant_slope, x, raise_exception=False) is False


def test_gradgradcheck_checks_the_hessian_along_a_random_direction_not_its_row_sums():
    # x0 * x1 with a backward right in value, [x1, x0], whose own derivative is the identity
    # rather than [[0, 1], [1, 0]]: the Hessian's row sums are right, its products with a
    # random w are not.
    class Product(Function):
        @staticmethod
        def forward(ctx, x):
            return np.array(x[0] * x[1])

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.operands
            values = x.data if isinstance(x, Tensor) else x          # constants
            return grad * (x - values + values[::-1])

    x = f64(2)
    assert ta.gradcheck(Product.apply, x)
    assert ta.gradgradcheck(Product.apply, x, raise_exception=False) is False


@pytest.mark.parametrize("join", [ta.concat, ta.stack])
def test_joining_no_tensors_says_so(join):
    for nothing in ([], (), iter([])):
        with pytest.raises(ValueError, match=rf"^{join.__name__}: needs at least one tensor, "
                                             r"got an empty list$"):
            join(nothing)


@pytest.mark.parametrize("join", [ta.concat, ta.stack])
def test_joining_tensors_not_in_a_list_says_to_make_one(join):
    a, b = Tensor(np.ones((2, 3))), Tensor(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=rf"^{join.__name__} takes a list of tensors: "
                                        rf"{join.__name__}\(\[a, b\], axis=0\)$"):
        join(a, b)


def test_gradcheck_checks_every_input_and_catches_a_gradient_off_by_one_percent():
    nearly_square = square_with(lambda x, grad: grad * 2.02 * x)
    x, y = f64(3), f64(3, seed=1)
    with pytest.raises(ta.GradcheckError, match=r"gradient of input 1 \(shape \(3,\)\)"):
        ta.gradcheck(lambda x, y: x * y + nearly_square(y), x, y)
    # The rule is |a - n| <= atol + rtol |n|, to the edge: 1% off passes rtol 1.1%, fails 0.9%.
    small = Tensor([0.01, 0.02, 0.03], requires_grad=True, dtype=np.float64)
    assert ta.gradcheck(nearly_square, small, atol=0, rtol=0.011)
    assert not ta.gradcheck(nearly_square, small, atol=0, rtol=0.009, raise_exception=False)


def test_gradcheck_fails_a_nan_gradient():
    nan_square = square_with(lambda x, grad: grad * 2 * x / (x != 0))   # nan at 0, where 2x is 0
    x = Tensor([0.0, 1.0], requires_grad=True, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        with pytest.raises(ta.GradcheckError, match=r"index \(0,\): analytic nan"):
            ta.gradcheck(nan_square, x)
        assert ta.gradcheck(nan_square, x, raise_exception=False) is False


def test_gradcheck_wants_float64():
    with pytest.raises(TypeError, match="float64"):
        ta.gradcheck(lambda x: x * 2, Tensor([1.0], requires_grad=True))


@pytest.mark.parametrize("check", [ta.gradcheck, ta.gradgradcheck])
def test_gradcheck_takes_torchs_forms_of_inputs_and_outputs(check):
    import torch
    x, w = f64(3), f64(3, seed=1)
    rows = Tensor([2, 0])                                   # an index: passed on, not checked
    scale = Tensor([2.0], dtype=np.float64)                 # a constant: passed on, not checked
    xt, wt = (torch.tensor(t.data, requires_grad=True) for t in (x, w))
    torch_check = getattr(torch.autograd, check.__name__)
    assert check(lambda x, w: (x * w).exp(), x, w)
    assert check(lambda x, w: (x * w).exp(), (x, w))                 # torch's one tuple
    assert torch_check(lambda x, w: (x * w).exp(), (xt, wt))
    assert check(lambda x, i, c: (x[i.data] * c).tanh(), x, rows, scale)
    assert torch_check(lambda x, i, c: (x[i] * c).tanh(),
                       (xt, torch.tensor([2, 0]), torch.tensor([2.0], dtype=torch.float64)))
    assert check(lambda x, w: (x * w, (x - w).sigmoid()), x, w)        # several outputs
    assert torch_check(lambda x, w: (x * w, (x - w).sigmoid()), (xt, wt))
    assert check(lambda x: Tensor([1.0], dtype=np.float64), x)         # a constant output
    assert torch.autograd.gradcheck(lambda x: torch.ones(1, dtype=torch.float64), (xt,))


def test_gradcheck_nudges_an_input_that_is_a_transposed_view():
    # Its elements are not in row order in memory: gradcheck must still nudge the input itself.
    x = Tensor(np.random.default_rng(0).standard_normal((3, 2)).T, requires_grad=True,
               dtype=np.float64)
    data = x.data
    assert not data.flags.c_contiguous
    assert ta.gradcheck(lambda x: (x * x).sum(axis=0), x)
    assert x.data is data               # and leave it as it was: torch's takes no copy either


@pytest.mark.parametrize("check", [ta.gradcheck, ta.gradgradcheck])
def test_gradcheck_refuses_an_input_whose_elements_cannot_be_nudged_one_at_a_time(check):
    # A read-only array raised numpy's bare "assignment destination is read-only"; a broadcast
    # one would move a whole row with each nudge (torch refuses a stride of 0 too).
    repeated = np.lib.stride_tricks.as_strided(np.arange(3.0), shape=(2, 3), strides=(0, 8))
    windows = np.lib.stride_tricks.as_strided(np.arange(4.0), shape=(2, 3), strides=(8, 8))
    read_only = np.arange(3.0)
    read_only.flags.writeable = False
    for array in (repeated, windows, read_only):    # (windows overlap: [0, 1, 2], [1, 2, 3])
        x = Tensor(array, requires_grad=True, dtype=np.float64)
        assert x.data is array
        shape = re.escape(str(x.shape))
        with pytest.raises(ValueError, match=rf"^gradcheck: input 1 \(shape {shape}"
                                             rf"\) holds a read-only or broadcast array, whose "
                                             rf"elements cannot be nudged one at a time; pass a "
                                             rf"copy, Tensor\(a\.copy\(\), "):
            check(lambda c, x: x * x * c, Tensor(2.0), x)
        x = Tensor(array.copy(), requires_grad=True, dtype=np.float64)
        assert check(lambda c, x: x * x * c, Tensor(2.0), x)


@pytest.mark.parametrize("check", [ta.gradcheck, ta.gradgradcheck])
@pytest.mark.parametrize("setting, value, rule", [
    ("eps", 0, "> 0"),                 # divided by zero: a ZeroDivisionError's traceback
    ("eps", float("nan"), "> 0"),
    ("atol", -1e-5, ">= 0"),           # failed every gradient, a right one too
    ("rtol", float("inf"), ">= 0"),
])
def test_gradcheck_refuses_a_step_or_tolerance_it_cannot_use(check, setting, value, rule):
    with pytest.raises(ValueError, match=rf"^{check.__name__}: {setting} must be a finite "
                                         rf"number {rule}, got {re.escape(repr(value))}$"):
        check(lambda x: x * x, f64(3), **{setting: value})
    if setting != "eps":                  # a tolerance of 0 asks for agreement to the bit: taken
        assert check(lambda x: x * x, f64(3), **{setting: 0})


def test_gradcheck_gives_back_the_input_it_nudged_when_fn_raises():
    def refuses_a_nudge(x):
        if x.data[1] != 2.0:
            raise ValueError("nudged")
        return x * x

    x = Tensor([1.0, 2.0], requires_grad=True, dtype=np.float64)
    with pytest.raises(ValueError, match="nudged"):
        ta.gradcheck(refuses_a_nudge, x)
    assert x.tolist() == [1.0, 2.0]


def test_gradcheck_checks_every_output_and_names_the_input_by_its_position():
    wrong_square = square_with(lambda x, grad: grad * x)            # should be 2x
    x = f64(3)
    with pytest.raises(ta.GradcheckError, match=r"gradient of input 2 \(shape \(3,\)\)"):
        ta.gradcheck(lambda c, i, x: (x * c, wrong_square(x)), Tensor(2.0), [0], x)
    with pytest.raises(TypeError, match=r"no input is a Tensor with requires_grad=True"):
        ta.gradcheck(lambda c: c * 2, Tensor([1.0], dtype=np.float64))
    with pytest.raises(TypeError, match=r"fn must return a Tensor or a tuple of Tensors, got "
                                        r"ndarray"):
        ta.gradcheck(lambda x: x.data * 2, x)


# ------------------------------------------------------------------ random numbers


def test_manual_seed_makes_draws_repeatable():
    ta.manual_seed(3)
    a = ta.randn(4).data.copy()
    d1 = ta.functional.dropout(ta.ones(100), 0.5).data.copy()
    ta.manual_seed(3)
    np.testing.assert_array_equal(a, ta.randn(4).data)
    np.testing.assert_array_equal(d1, ta.functional.dropout(ta.ones(100), 0.5).data)


def test_manual_seed_reseeds_a_generator_fetched_before():
    # torch's idiom: g = torch.default_generator; torch.manual_seed(s) reseeds g itself
    g = ta.random.default_generator()
    ta.manual_seed(3)
    a = g.random(4)
    ta.manual_seed(3)
    np.testing.assert_array_equal(a, g.random(4))
    assert ta.manual_seed(3) is g


@pytest.mark.parametrize("seed", [-1, 1.5, "3", None, True])
def test_manual_seed_refuses_what_is_not_a_seed_in_one_line(seed):
    # numpy's and SeedSequence's errors, before; None seeded from the OS and True passed as 1
    with pytest.raises(ValueError, match=rf"^manual_seed: seed must be a whole number >= 0, got "
                                         rf"{re.escape(repr(seed))}$"):
        ta.manual_seed(seed)
    state = ta.random.get_state()
    ta.manual_seed(np.int64(3))                 # numpy's integers are whole numbers too
    ta.random.set_state(state)
    # a thread's own generator follows the same rule
    with pytest.raises(ValueError, match=r"^seeded: seed must be a whole number >= 0"):
        with ta.random.seeded(seed):
            pass
    with ta.random.seeded(np.int64(3)) as generator:
        assert ta.random.default_generator() is generator


def test_drawing_from_a_generator_moves_it_on_and_leaves_the_shared_one_alone():
    # A trainer's dropout stream: its own generator, taken up again at each step.
    state = ta.random.get_state()
    mine, expected = np.random.default_rng(7), np.random.default_rng(7)
    for _ in range(2):                                    # the second goes on from the first
        with ta.random.drawing_from(mine) as generator:
            assert generator is mine and ta.random.default_generator() is mine
            y = ta.functional.dropout(ta.ones(50), 0.5)
        keep = expected.random(50) >= 0.5
        np.testing.assert_array_equal(y.data, np.where(keep, np.float32(2.0), np.float32(0.0)))
    assert ta.random.get_state() == state
    with pytest.raises(TypeError, match=r"^drawing_from: generator must be a numpy Generator, "
                                        r"as np.random.default_rng\(seed\) makes, got 3$"):
        with ta.random.drawing_from(3):
            pass


@pytest.mark.parametrize("name, draw", [
    ("randn", lambda generator: ta.randn(3, generator=generator)),
    ("rand", lambda generator: ta.rand(3, generator=generator)),
    ("dropout", lambda generator: ta.functional.dropout(ta.ones(3), 0.5, generator=generator)),
    ("normal_", lambda generator: ta.nn.init.normal_(ta.zeros(3), generator=generator)),
    ("uniform_", lambda generator: ta.nn.init.uniform_(ta.zeros(3), generator=generator))])
def test_a_seed_given_for_a_generator_is_refused_saying_what_to_pass(name, draw):
    # generator=0 was taken for none (0 is false): the draws came from the shared stream,
    # not seeded as asked; generator=7 failed at the draw, on a method an int lacks.
    state = ta.random.get_state()
    for seed in (0, 7):
        with pytest.raises(TypeError, match=rf"^{name}: generator must be a numpy Generator, "
                                            rf"as np.random.default_rng\(seed\) makes, got "
                                            rf"{seed}$"):
            draw(seed)
    assert ta.random.get_state() == state                 # nothing drawn from the shared one
    assert draw(np.random.default_rng(0)).shape == (3,) and draw(None).shape == (3,)


def test_dropout_refuses_a_seed_for_its_generator_even_where_it_draws_nothing():
    # As normal_ refuses one while init is skipped: not training, or p = 0, it was taken.
    for settings in (dict(p=0.0), dict(p=0.5, training=False)):
        with pytest.raises(TypeError, match=r"^dropout: generator must be a numpy Generator"):
            ta.functional.dropout(ta.ones(3), generator=0, **settings)


def test_drawing_from_gives_the_thread_its_generator_back_after_an_error():
    # A step that fails inside must not leave this thread drawing from the trainer's stream.
    shared = ta.random.default_generator()
    with pytest.raises(RuntimeError, match="^a failed step$"):
        with ta.random.drawing_from(np.random.default_rng(1)):
            raise RuntimeError("a failed step")
    assert ta.random.default_generator() is shared


def test_set_state_puts_the_default_generator_back_where_get_state_found_it():
    ta.manual_seed(4)
    state = ta.random.get_state()
    first = ta.randn(5).data.copy()
    ta.functional.dropout(ta.ones(10), 0.5)                  # draws that a resumed run repeats
    ta.random.set_state(state)
    np.testing.assert_array_equal(ta.randn(5).data, first)


@pytest.mark.parametrize("factory, draw", [(ta.randn, "standard_normal"), (ta.rand, "random")],
                         ids=["randn", "rand"])
def test_random_factories_draw_from_the_generator_they_are_given(factory, draw):
    state = ta.random.get_state()
    made = factory(2, 3, dtype=np.float64, generator=np.random.default_rng(5))
    assert ta.random.get_state() == state                      # the default one is left alone
    np.testing.assert_array_equal(made.data, getattr(np.random.default_rng(5), draw)((2, 3)))


def test_arange_is_numpys_and_takes_a_dtype():
    assert ta.arange(4).dtype == np.int64 and ta.arange(0, 1, 0.25).dtype == np.float32
    made = ta.arange(3, dtype=np.float64)
    assert made.dtype == np.float64 and made.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("factory", [ta.zeros, ta.ones, ta.randn, ta.rand],
                         ids=["zeros", "ones", "randn", "rand"])
def test_factories_take_the_shape_as_numbers_a_tuple_or_a_list_as_torchs(factory):
    import torch
    for shape in [(2, 3), ((2, 3),), ([2, 3],)]:
        assert factory(*shape).shape == (2, 3) == getattr(torch, factory.__name__)(*shape).shape


@pytest.mark.parametrize("name", ["zeros_like", "ones_like"])
def test_like_factories_take_a_dtype_as_numpy_and_torch(name):
    import torch
    ints = Tensor([[1, 2, 3]])
    made = getattr(ta, name)(ints, dtype=np.float64, requires_grad=True)
    expected = getattr(np, name)(ints.data, dtype=np.float64)
    assert made.dtype == np.float64 and made.requires_grad
    np.testing.assert_array_equal(made.data, expected)
    assert getattr(torch, name)(torch.tensor([[1, 2, 3]]), dtype=torch.float64).shape == (1, 3)
    assert getattr(ta, name)(ints).dtype == np.int64                   # t's dtype by default


@pytest.mark.parametrize("factory", [ta.randn, ta.rand], ids=["randn", "rand"])
@pytest.mark.parametrize("dtype", [np.int64, bool])
def test_random_factories_refuse_a_dtype_that_would_truncate_the_draws_as_torch(factory, dtype):
    with pytest.raises(TypeError, match=r"dtype must be a floating-point type"):
        factory(3, dtype=dtype)
    assert factory(3, dtype=np.float64).dtype == np.float64


def test_dropout_keeps_the_expectation_and_is_identity_off_training():
    x = ta.ones(20_000)
    y = ta.functional.dropout(x, 0.25)
    assert abs(y.data.mean() - 1.0) < 0.03
    assert set(np.unique(y.data)) == {0.0, np.float32(1 / 0.75)}
    assert ta.functional.dropout(x, 0.25, training=False) is x


def test_dropout_draws_from_the_generator_it_is_given_and_leaves_the_default_one_alone():
    x = ta.ones(100)
    state = ta.random.get_state()
    y = ta.functional.dropout(x, 0.5, generator=np.random.default_rng(3))
    assert ta.random.get_state() == state
    keep = np.random.default_rng(3).random(100) >= 0.5
    np.testing.assert_array_equal(y.data, np.where(keep, np.float32(2.0), np.float32(0.0)))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_dropout_keeps_the_dtype_of_its_input_as_torch(dtype):
    # The mask is made in x's dtype: a float32 mask would make a float16 x's result float32.
    import torch
    x = ta.ones(8, dtype=dtype, requires_grad=True)
    y = ta.functional.dropout(x, 0.5)
    expected = torch.nn.functional.dropout(torch.ones(8, dtype=getattr(torch, dtype.__name__)),
                                           0.5)
    assert y.dtype == dtype and str(expected.dtype) == f"torch.{dtype.__name__}"
    y.sum().backward()
    assert x.grad.dtype == dtype


PROBABILITIES = {
    "dropout": lambda p: ta.functional.dropout(Tensor(np.ones(3)), p),
    "dropout_mask": lambda p: ta.functional.dropout_mask((3,), p),
    "cross_entropy": lambda p: ta.functional.cross_entropy(Tensor(np.zeros((2, 3))),
                                                           np.array([0, 1]), label_smoothing=p)}


@pytest.mark.parametrize("take", PROBABILITIES)
def test_a_probability_of_nan_is_refused_and_one_of_numpys_floats_taken(take):
    # NaN fails every comparison, so a check that only looks for p < 0 or p > 1 lets it pass
    with pytest.raises(ValueError, match=r": (p|label_smoothing) must be in \[0, 1\], got nan$"):
        PROBABILITIES[take](np.nan)
    PROBABILITIES[take](np.float32(0.25))     # a number, if not a Python float (a config's)


@pytest.mark.parametrize("p", ["0.5", None])
def test_dropout_refuses_a_p_that_is_no_number_in_one_line(p):
    for drop in (ta.functional.dropout, lambda x, p: ta.functional.dropout_mask(x.shape, p)):
        with pytest.raises(TypeError, match=f"^dropout: p must be a number in \\[0, 1\\], "
                                            f"got {re.escape(repr(p))}$"):
            drop(Tensor(np.ones(3)), p)


def test_dropout_of_zero_is_the_identity_and_draws_nothing():
    # p = 0 drops nothing: a mask of ones would still take numbers from the generator, and a
    # Dropout(0.0) added to a model would change every later draw of a seeded run.
    x = ta.ones(100)
    state = ta.random.get_state()
    assert ta.functional.dropout(x, 0.0) is x
    assert ta.random.get_state() == state


def test_a_function_is_guarded_where_it_is_written_unless_it_says():
    # The checks a Function's author needs (the engine's names on ctx, a keyword Tensor) cost
    # every call: on outside tinyautograd, off for its own ops, and off where an op says so.
    from tinyautograd import ops

    class Mine(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.inputs = x                       # a slip its guard refuses
            return x

    class Tested(Mine):
        guarded = False

    assert ops.Add.guarded is False and Mine.guarded is True
    with pytest.raises(AttributeError, match="ctx.inputs is the engine's own"):
        Mine.apply(f64(2))
    assert Tested.apply(f64(2)).shape == (2,)    # unguarded: the engine trusts it


def test_a_forward_that_returns_a_broadcast_view_of_its_input_gives_a_read_only_tensor():
    # The read-only views a user's forward gets were made writeable again in its result, a
    # broadcast one too: `rows += 1` then wrote through its repeated elements into the
    # caller's x ([2, 2, 2]), where numpy keeps such a view read-only (and where the forward
    # was given x's own array, the result was refused).
    class Rows(Function):
        @staticmethod
        def forward(ctx, a):
            return np.broadcast_to(a, (2, 3))

        @staticmethod
        def backward(ctx, grad):
            return grad.sum(axis=0)

    x = Tensor(np.ones(3), dtype=np.float64)
    rows = Rows.apply(x)
    assert not rows.data.flags.writeable
    with pytest.raises(ValueError, match=r"read-only"):
        rows += 1
    assert x.data.tolist() == [1.0, 1.0, 1.0]


def test_a_forward_result_repeating_a_strided_inputs_elements_stays_read_only():
    # A broadcast of a strided view (every 1000th element: strides (0, 8000)) holds fewer
    # bytes than it spans from its first element to its last, and so was taken for a view that
    # repeats nothing: made writeable, `rows += 1` wrote into the caller's x. A reversed view
    # (a negative stride) repeats nothing and is writeable as the input's own array is.
    class Rows(Function):
        @staticmethod
        def forward(ctx, a):
            return np.broadcast_to(a, (2,) + a.shape)

        @staticmethod
        def backward(ctx, grad):
            return grad.sum(axis=0)

    class Reversed(Function):
        @staticmethod
        def forward(ctx, a):
            return a[::-1]

        @staticmethod
        def backward(ctx, grad):
            return grad[::-1]

    x = Tensor(np.ones(10_000)[::1000], dtype=np.float64)          # (10,), a stride of 8000
    rows = Rows.apply(x)
    with pytest.raises(ValueError, match=r"read-only"):
        rows += 1
    assert x.data.tolist() == [1.0] * 10
    backwards = Reversed.apply(Tensor(np.arange(3.0), dtype=np.float64))
    backwards.data[0] = 7.0
    assert backwards.data.tolist() == [7.0, 1.0, 0.0]


def test_grad_of_a_tensor_does_not_walk_into_a_freed_graph_two_ops_below_it_as_torch():
    # exp's graph is freed by the first backward; h = e * 3 above it is not. grad(y, h) needs
    # nothing below h, so, as in torch, it works rather than report exp's graph as freed.
    def freed_below_the_wanted_one(tensor, grad):
        x = tensor([1.0, 2.0])
        e = x.exp()
        e.sum().backward()                  # frees exp's graph
        h = e * 3
        (gh,) = grad((h * h).sum(), h)
        return gh.tolist()

    ours, theirs = _both(freed_below_the_wanted_one)
    np.testing.assert_allclose(ours, theirs)


def test_backward_frees_what_a_node_kept_for_it_as_torch_frees_its_saved_tensors():
    # The graph is freed after backward (retain_graph=False): an array a node kept on its
    # context goes then, not only the links to its inputs, or a stored output holds it.
    kept = []

    class KeepsAnArray(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.doubled = x * 2
            kept.append(weakref.ref(ctx.doubled))
            return ctx.doubled.copy()

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    x = Tensor([1.0, 2.0], requires_grad=True)
    y = KeepsAnArray.apply(x)
    y.sum().backward()
    gc.collect()
    assert kept[0]() is None
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
