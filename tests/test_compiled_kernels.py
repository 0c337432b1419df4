"""benchmarks/compiled_kernels.py (numba): the kernels that benchmarks/envelope.py puts in our
ops' place, through benchmarks/kernel_ops.py's wrappers, to measure what numba's code would
give. A kernel that computed something else would measure nothing: each must give what the op
it stands in for gives, to float32 rounding, on shapes that are not multiples of the vector
width, on a GELU input longer than one block, and through attention's mask. (numba comes with
the test extra.)"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyautograd import Tensor, functional, ops, optim
from tinyformer import attention

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))     # the kernel modules import kernel_ops


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                   # numba's cache finds the kernels by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["compiled_kernels"], scope="module")
def kernels(request):
    return load(request.param)


rng = np.random.default_rng(0)


class Context:
    """What an op's forward and backward read of the engine's context, on arrays."""

    def __init__(self, *operands):
        self.operands = operands
        self.needs_input_grad = (True,) * len(operands)
        self.create_graph = False


def forward_and_backward(forward, backward, inputs, grad, **settings):
    """The output, then dL/d(input) for each input in its own shape (an op may leave the sum
    over broadcast axes to the engine, as LayerNorm does for its bias)."""
    ctx = Context(*inputs)
    ctx.result = forward(ctx, *inputs, **settings)
    grads = backward(ctx, grad)
    grads = grads if isinstance(grads, tuple) else (grads,)
    return [ctx.result] + [g.sum(axis=tuple(range(g.ndim - x.ndim))) for g, x in
                           zip(grads, inputs)]


def assert_same_as_ours(op, forward, backward, inputs, **settings):
    """The kernel's output and input gradients against the op's, for one random dL/dy."""
    shape = op.forward(Context(*inputs), *inputs, **settings).shape
    grad = rng.standard_normal(shape, dtype=np.float32)
    ours = forward_and_backward(op.forward, op.backward, inputs, grad, **settings)
    theirs = forward_and_backward(forward, backward, inputs, grad.copy(), **settings)
    for a, b in zip(ours, theirs):
        assert b.shape == a.shape
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-5 * np.abs(a).max())


def test_exp_is_numpys_to_float32_rounding(kernels):
    x = np.concatenate([np.linspace(-87, 88, 100_001, dtype=np.float32),
                        np.float32([-200, -88, 0, 89, 200])])          # clamped beyond
    out = np.empty_like(x)
    kernels.exp(x, out)
    exact = np.exp(np.clip(x, -87, 88).astype(np.float64))
    assert np.max(np.abs(out - exact) / exact) < 3e-7


def test_exp_reads_a_read_only_array_and_an_empty_one(kernels):
    """Inputs the model never gives but a caller may: the C wrapper takes their address
    another way (the buffer protocol wants a writable array with at least one number)."""
    x = np.linspace(-5, 5, 11, dtype=np.float32)
    x.setflags(write=False)
    out = np.empty_like(x)
    kernels.exp(x, out)
    np.testing.assert_allclose(out, np.exp(x), rtol=1e-6)
    kernels.exp(np.empty(0, np.float32), np.empty(0, np.float32))


@pytest.mark.parametrize("shape", [(2, 3, 7), (384, 128)])
def test_layer_norm_is_ours(kernels, shape):
    x = rng.standard_normal(shape, dtype=np.float32) * 3 + 1
    weight, bias = (rng.standard_normal(shape[-1:], dtype=np.float32) for _ in range(2))
    assert_same_as_ours(functional.LayerNorm, kernels.OPS.layer_norm_forward,
                        kernels.OPS.layer_norm_backward, (x, weight, bias), eps=1e-5)


def test_layer_norm_backward_writes_its_sums_whatever_the_arrays_held(kernels):
    """The wrapper hands the kernel np.empty arrays: the weight's and bias's sums over the rows
    must start from 0, not from what the memory held."""
    x_hat = rng.standard_normal((5, 7), dtype=np.float32)
    grad = rng.standard_normal((5, 7), dtype=np.float32)
    rstd, weight = np.ones(5, np.float32), np.ones(7, np.float32)
    outputs = [np.full_like(grad, np.nan), np.full_like(weight, np.nan),
               np.full_like(weight, np.nan)]
    kernels.layer_norm_rows_backward(grad, x_hat, rstd, weight, *outputs)
    np.testing.assert_allclose(outputs[1], (grad * x_hat).sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(outputs[2], grad.sum(axis=0), rtol=1e-5)


def test_gelu_is_ours_across_blocks_and_in_both_tails(kernels):
    n = 2 * kernels.BLOCK + 7
    x = (np.linspace(-12, 12, n, dtype=np.float32)[rng.permutation(n)]).reshape(1, n)
    assert_same_as_ours(ops.Gelu, kernels.OPS.gelu_forward, kernels.OPS.gelu_backward, (x,))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("scale", [1, 30])
def test_attention_is_ours_with_and_without_its_mask(kernels, causal, scale):
    # scale 30: scores of several hundred, where e^score overflows unless each row's largest
    # is subtracted first.
    q, k, v = (rng.standard_normal((2, 3, 5, 4), dtype=np.float32) for _ in range(3))
    q, k = q * scale, k * scale
    keep = np.tril(np.ones((5, 5), bool)) if causal else None
    assert_same_as_ours(attention.Attention, kernels.OPS.attention_forward,
                        kernels.OPS.attention_backward, (q, k, v), keep=keep)


def test_the_adamw_update_is_ours_bit_for_bit(kernels):
    start = rng.standard_normal((3, 5), dtype=np.float32)
    params = [Tensor(start.copy(), requires_grad=True) for _ in range(2)]
    optimizer = optim.AdamW(params, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    group = optimizer.param_groups[0]
    states = [optimizer.initial_state(p, group) for p in params]
    for _ in range(3):
        grad = rng.standard_normal(start.shape, dtype=np.float32)
        optimizer.update(params[0], grad, states[0], group)
        kernels.OPS.adam_update(optimizer, params[1], grad, states[1], group)
    assert not np.array_equal(params[0].data, start)
    np.testing.assert_array_equal(params[1].data, params[0].data)
    for key in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(states[1][key], states[0][key])
