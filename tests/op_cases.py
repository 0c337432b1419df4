"""The op table: every differentiable operation of tinyautograd (and tinyformer's fused attention),
written once with tinyautograd and once with PyTorch, with the inputs to try it on. It reads as
documentation of the op set.

One table serves every op-level check:

    tests/test_ops_gradcheck.py   finite differences (gradcheck, gradgradcheck), float32 dtypes,
                                  the registry (every Function has a case, every tag is real)
    tests/test_ops_torch.py       forward values, gradients and double backward equal
                                  PyTorch's (float64)
    tests/test_backward_modes.py  a plain backward (arrays) and one under create_graph
                                  (Tensors) give the same gradients, float64 and float32
    tests/test_meta_ops.py        every public op that gives a Tensor is called by a case
    tests/test_kernels.py         the compiled loops agree with the numpy forms on the cases
                                  of the ops they serve (GELU, layer norm, attention)
    tests/test_half_precision.py  float16 in, float16 out, within float16's rounding of the
                                  float64 computation

An `OpCase` has

    name          the test id
    covers        the Function classes the case exercises; a test walks the graph of the result
                  to check that a node of each is really there, and another that every Function
                  subclass in tinyautograd and tinyformer is covered by some case
    fn            fn(*tensors, **params): the computation with tinyautograd
    torch_fn      torch_fn(*tensors, **params): the same computation with torch
    draw          draw(d) -> (arrays, params): the differentiable inputs (float64 numpy arrays, in
                  the order fn takes them) and the settings (axes, indices, constants), drawn
                  through a `Draw`
    finite_differences
                  False where the case is not differentiable at its inputs on purpose (ties in
                  max): no gradcheck, only parity with torch

Every case that takes finite differences also gets gradgradcheck: every op, the fused kernels
(cross-entropy, layer norm, RMS norm, SwiGLU, ...) included, is twice differentiable.

A new op gets its case beside its kin in CASES below (softplus beside sigmoid: one of typical
values, one of extreme ones where a naive formula overflows), drawn with the helpers here
(`one(normal)`, `two_that_broadcast(...)`, `draw_reduction(...)`: inputs where it is
differentiable). Its checks, in every file that reads the table, are then run by its name:

    python -m pytest tests/test_ops_gradcheck.py tests/test_ops_torch.py \
        tests/test_backward_modes.py tests/test_meta_ops.py -k "softplus or every"

API differences with torch, handled in the torch_fn column: our `transpose(*axes)` is numpy's
full permutation (torch's `permute`), reductions use numpy's `axis`/`keepdims`, `var` has ddof=0 by
default, `max(axis)` and `min(axis)` are torch's `amax` and `amin` (ties share the gradient),
`cross_entropy` puts the classes on the LAST axis and has `ignore_index=None`, and tinyautograd's
`gelu` is torch's `gelu(approximate="tanh")`.
"""

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as TF
from torch.nn.attention import SDPBackend, sdpa_kernel
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinyautograd as ta
import tinyautograd.functional as F
from tinyautograd import ops
from tinyautograd.functional import (CrossEntropy, LayerNorm, ReluSquared, RMSNorm, SoftCap,
                                     SwiGLU)
from tinyformer.attention import Attention, scaled_dot_product_attention

MAX_SIDE = 4       # elements per axis
MAX_SIZE = 32      # elements per input: gradcheck costs two forwards per element


# --------------------------------------------------------------------------------- the case


@dataclass(frozen=True)
class OpCase:
    name: str
    covers: tuple
    fn: Callable
    torch_fn: Callable
    draw: Callable
    finite_differences: bool = True

    def __repr__(self):
        return self.name


# --------------------------------------------------------------------------------- drawing


def _small(shape):
    return math.prod(shape) <= MAX_SIZE


def _small_result(shapes):
    return _small(shapes.result_shape)


# Each strategy is built once per setting and kept: building a filtered strategy has hypothesis
# read the predicate's source (to see whether it is a bound it can apply directly), about 2 ms
# a time (the axes' one_of some 0.4 ms), paid on every draw of every example of every case when
# built afresh. The same strategy draws the same shapes and axes, so what the table tries is
# unchanged.
@functools.cache
def _shapes(min_dims, max_dims, min_side, max_side):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side).filter(_small)


@functools.cache
def _broadcast_shapes(n, min_dims, max_dims):
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=min_dims, max_dims=max_dims,
                                             max_side=MAX_SIDE).filter(_small_result)


@functools.cache
def _axes(ndim, allow_none, allow_tuple):
    options = [st.none()] if allow_none else []
    options.append(st.integers(-max(ndim, 1), max(ndim, 1) - 1))
    if ndim and allow_tuple:
        options.append(hnp.valid_tuple_axes(ndim, min_size=1))
    return st.one_of(options)


class Draw:
    """What a case draws with. Shapes, axes and settings come from hypothesis (which explores
    and shrinks them); values come from a numpy generator whose seed hypothesis draws, so that
    they are generic: no ties for max, nothing at the kinks of relu and abs, no log of 0."""

    def __init__(self, data):
        self._data = data
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    def __call__(self, strategy, label=None):
        return self._data.draw(strategy, label=label)

    # -- shapes and settings (hypothesis) ----------------------------------------------------

    def shape(self, min_dims=0, max_dims=3, min_side=1, max_side=MAX_SIDE):
        return self(_shapes(min_dims, max_dims, min_side, max_side), label="shape")

    def broadcast_shapes(self, n=2, min_dims=0, max_dims=3):
        """n shapes that broadcast together, like (3, 1, 4) and (5, 4), () and (2,)."""
        shapes = self(_broadcast_shapes(n, min_dims, max_dims), label="shapes")
        return shapes.input_shapes

    def axis(self, ndim, allow_none=True, allow_tuple=True):
        """None, an axis (maybe negative) or a non-empty tuple of axes (maybe negative).
        (An empty tuple means 'no axis' to numpy and 'every axis' to torch: not drawn.) A 0-d
        input takes axis 0 or -1 as well, meaning all of it, in numpy and torch alike."""
        return self(_axes(ndim, allow_none, allow_tuple), label="axis")

    def sample(self, options, label=None):
        return self(st.sampled_from(options), label=label)

    def boolean(self, label=None):
        return self(st.booleans(), label=label)

    def integer(self, low, high, label=None):
        return self(st.integers(low, high), label=label)

    # -- values (numpy) ------------------------------------------------------------------------

    def normal(self, shape, scale=1.0):
        return self.rng.standard_normal(shape) * scale

    def positive(self, shape, low=0.5, high=2.0):
        return self.rng.uniform(low, high, shape)

    def away_from_zero(self, shape, low=0.2, high=2.0):
        """Either sign, never within `low` of 0 (the kinks of relu and abs)."""
        return self.rng.choice([-1.0, 1.0], shape) * self.rng.uniform(low, high, shape)

    def distinct(self, shape):
        """Values at least 0.1 apart: max has no ties, even when nudged by gradcheck."""
        size = math.prod(shape)
        return (self.rng.permutation(size) * 0.1 + self.rng.uniform(0, 0.01, size)
                - 0.05 * size).reshape(shape)


# --------------------------------------------------------------------------------- torch helpers


def _dims(axis, ndim):
    """A numpy axis for torch: None means every axis."""
    return tuple(range(ndim)) if axis is None else axis


def _torch(value):
    """A parameter for torch: numpy arrays become tensors, numbers stay numbers."""
    return torch.as_tensor(value) if isinstance(value, (np.ndarray, np.generic)) else value


def _torch_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    parts = tuple(torch.as_tensor(p) if isinstance(p, np.ndarray) else p for p in parts)
    return parts if isinstance(index, tuple) else parts[0]


def _reversed_axes(x):
    """numpy's x.T, x.transpose(): every axis, in reverse order."""
    return x.permute(tuple(reversed(range(x.ndim))))


def _torch_getitem_by_positions(x, index):
    """x[index] for any numpy basic index, negative steps included (torch has none): index an
    array of positions with numpy, then gather those positions with torch."""
    positions = np.arange(x.numel()).reshape(tuple(x.shape))[index]
    return x.reshape(-1)[torch.as_tensor(positions.copy())]   # torch takes no negative strides


# --------------------------------------------------------------------------------- draws


def one(make):
    """One input of a drawn shape, its values made by `make(d, shape)`."""
    def draw(d):
        return [make(d, d.shape())], {}
    return draw


def two_that_broadcast(make_a, make_b):
    def draw(d):
        sa, sb = d.broadcast_shapes(2)
        return [make_a(d, sa), make_b(d, sb)], {}
    return draw


normal = Draw.normal
positive = Draw.positive
away_from_zero = Draw.away_from_zero


def at_kinks(d, shape):
    """-1, 0 and 1: many exact zeros, where relu and abs have a kink (torch's gradient: 0)."""
    return d.rng.integers(-1, 2, shape).astype(float)


def large(d, shape):
    """|x| between 20 and 800: e^x overflows, e^-x underflows."""
    return d.away_from_zero(shape, 20.0, 800.0)


def draw_left_operand(positive_left=False):
    """x and a constant for the left of an operator: a Python int or float, a numpy float64
    scalar, or a float64 numpy array (0-d, or broadcasting with x)."""
    def draw(d):
        left_shape, x_shape = d.broadcast_shapes(2)
        kind = d.sample(["int", "float", "np.float64", "ndarray"], label="left operand")
        value = d.positive(left_shape) if positive_left else d.normal(left_shape)
        if kind == "int":
            left = d.integer(1, 3)
        elif kind == "float":
            left = float(value.flat[0])
        elif kind == "np.float64":
            left = np.float64(value.flat[0])
        else:
            left = value
        x = d.normal(x_shape) if positive_left else d.away_from_zero(x_shape)
        return [x], {"left": left}
    return draw


def _away_from_jumps(d, make):
    """`make()`'s (a, b), drawn again until every a / b is at least 0.05 from an integer,
    where a % b jumps: far enough that neither finite differences nor float16's rounding of
    the inputs cross a jump."""
    for _ in range(10_000):
        a, b = make()
        quotient = np.asarray(a / b)
        if np.all(np.abs(quotient - np.round(quotient)) >= 0.05):
            return a, b
    raise AssertionError("no a / b away from the integers")


def draw_remainder(d):
    sa, sb = d.broadcast_shapes(2)
    a, b = _away_from_jumps(d, lambda: (d.normal(sa, 2.0), d.away_from_zero(sb, 0.5)))
    return [a, b], {}


def draw_remainder_by_number(d):
    """x % a number (x % 1.0 is x's fractional part), or a number % x, either sign."""
    number = d.sample([1.0, 2, -3, 0.75, -1.5], label="number")
    shape = d.shape()
    x, number = _away_from_jumps(d, lambda: (d.normal(shape, 2.0), number))
    return [x], {"number": number}


def draw_number_remainder(d):
    number = d.sample([1.0, 2, -3, 0.75, -1.5], label="number")
    shape = d.shape()
    number, x = _away_from_jumps(d, lambda: (number, d.away_from_zero(shape, 0.5)))
    return [x], {"number": number}


def draw_pow_scalar_exponent(d):
    exponent = d.sample([2, 3, -1, 0.5, 1.5, -2.5, 2.0], label="exponent")
    shape = d.shape()
    # Integer exponents take either sign (away from 0); the others need a positive base.
    x = d.away_from_zero(shape, 0.3) if float(exponent).is_integer() else d.positive(shape)
    return [x], {"exponent": exponent}


def draw_numpy_integers(d):
    ints_shape, x_shape = d.broadcast_shapes(2)
    if d.boolean(label="np.int64 scalar"):
        ints = np.int64(d.integer(-3, 3))
    else:
        ints = d.rng.integers(-3, 4, ints_shape)
    return [d.normal(x_shape)], {"ints": ints}


def matmul_shapes(kind):
    """(a_shape, b_shape) for each way numpy's matmul reads its operands."""
    def shapes(d):
        n, k, m = (d.integer(1, MAX_SIDE) for _ in range(3))
        if kind == "1-D @ 1-D":
            return (k,), (k,)
        if kind == "1-D @ N-D":
            return (k,), d.shape(0, 2, max_side=3) + (k, m)
        if kind == "N-D @ 1-D":
            return d.shape(0, 2, max_side=3) + (n, k), (k,)
        if kind == "batched":
            batch_a, batch_b = d.broadcast_shapes(2, 0, 2)
            return batch_a + (n, k), batch_b + (k, m)
        if kind == "N-D @ 2-D":
            return d.shape(1, 2, max_side=3) + (n, k), (k, m)
        raise ValueError(kind)
    return shapes


def draw_matmul_case(kind):
    def draw(d):
        sa, sb = matmul_shapes(kind)(d)
        return [d.normal(sa), d.normal(sb)], {}
    return draw


def draw_reduction(make, ddof=False):
    def draw(d):
        shape = d.shape()
        params = {"axis": d.axis(len(shape)), "keepdims": d.boolean(label="keepdims")}
        if ddof:
            results = np.empty(shape).sum(axis=params["axis"], keepdims=True).size
            reduced = math.prod(shape) // results        # how many elements each result combines
            params["ddof"] = d.sample([0, 1] if reduced > 1 else [0], label="ddof")
        return [make(d, shape)], params
    return draw


def draw_ties(d):
    shape = d.shape(min_dims=1)
    x = d.rng.integers(0, 3, shape).astype(float)     # three values: many ties
    return [x], {"axis": d.axis(len(shape)), "keepdims": d.boolean(label="keepdims")}


def draw_along_axis(scale=1.0):
    def draw(d):
        shape = d.shape()                          # 0-d too: axis 0 or -1
        return [d.normal(shape, scale)], {"axis": d.axis(len(shape), False, False)}
    return draw


def _prime_factors(n):
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return factors


def draw_reshape(d):
    """A new shape for the same elements: the prime factors of the size dealt out to 0-3 axes
    (size-1 axes included), one of them maybe written -1."""
    shape = d.shape()
    size = math.prod(shape)
    new = [1] * d.integer(0 if size == 1 else 1, 3, label="new ndim")
    for p in _prime_factors(size):
        new[d.integer(0, len(new) - 1)] *= p
    if new and d.boolean(label="-1"):
        new[d.integer(0, len(new) - 1)] = -1
    return [d.normal(shape)], {"shape": tuple(new)}


def draw_permutation(negative=False):
    def draw(d):
        shape = d.shape(min_dims=1 if negative else 0)
        ndim = len(shape)
        axes = d(st.permutations(range(ndim)), label="axes")
        if negative:
            # At least one axis counted from the end: transpose(-1, 0, 1) is transpose(2, 0, 1).
            flip = d(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
            flip[d.integer(0, ndim - 1)] = True
            axes = [a - ndim if f else a for a, f in zip(axes, flip)]
        elif d.boolean(label="no axes"):
            axes = []
        return [d.normal(shape)], {"axes": tuple(axes)}
    return draw


def draw_swapaxes(d):
    shape = d.shape(min_dims=1)
    ndim = len(shape)
    return [d.normal(shape)], {"a": d.integer(-ndim, ndim - 1), "b": d.integer(-ndim, ndim - 1)}


def draw_broadcast_to(d):
    shape = d.shape(max_dims=2)
    lead = d.shape(0, 1, max_side=3)
    target = lead + tuple(d.integer(1, 3) if s == 1 else s for s in shape)
    return [d.normal(shape)], {"shape": target}


def draw_basic_index(d):
    shape = d.shape()
    index = d(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True), label="index")
    return [d.normal(shape)], {"index": index}


def draw_integer_array_index(d):
    """Integer arrays (with repeated entries, whose gradients must add up), alone, in pairs
    (maybe broadcasting against each other), next to a slice, or on either side of one (then
    numpy and torch put the indexed axes first)."""
    shape = d.shape(min_dims=1)
    size = shape[0]
    picks = d.rng.integers(-size, size, d.shape(1, 2, max_side=5))   # negative ones too
    kinds = ["x[idx]", "x[list]"]
    if len(shape) > 1:
        kinds += ["x[idx, 1:]", "x[:, idx]", "x[rows, cols]", "x[rows[:, None], cols]"]
    if len(shape) > 2:
        kinds.append("x[idx, :, idx]")
    kind = d.sample(kinds, label="kind")
    if kind == "x[idx]":
        index = picks
    elif kind == "x[list]":
        index = [int(i) for i in picks.reshape(-1)] + [int(picks.flat[0])]
    elif kind == "x[idx, 1:]":
        index = (picks, slice(1, None))
    elif kind == "x[:, idx]":
        index = (slice(None), d.rng.integers(0, shape[1], picks.shape))
    elif kind == "x[rows, cols]":
        index = (picks, d.rng.integers(0, shape[1], picks.shape))
    elif kind == "x[rows[:, None], cols]":
        # (n, 1) rows against (m,) columns: an (n, m) block of picks, repeats included
        index = (picks.reshape(-1, 1), d.rng.integers(-shape[1], shape[1], d.integer(1, 3)))
    else:
        index = (picks, slice(None), d.rng.integers(-shape[2], shape[2], picks.shape))
    return [d.normal(shape)], {"index": index}


def draw_mask_index(d):
    """A boolean mask over every axis or the first ones, as a numpy array or as the Tensor a
    comparison gives (x[x > 0])."""
    shape = d.shape(min_dims=1)
    mask = d.rng.random(shape[:d.integer(1, len(shape), label="mask axes")]) > 0.5
    return [d.normal(shape)], {"mask": ta.Tensor(mask) if d.boolean(label="Tensor") else mask}


def draw_index_add(d):
    """The gradient of x[index] as a function of the incoming gradient g: IndexAdd."""
    x_shape = d.shape(min_dims=1)
    if d.boolean(label="basic index"):
        index = (slice(d.integer(0, x_shape[0] - 1), None),)
    else:
        index = (d.rng.integers(0, x_shape[0], d.integer(1, 6)),)   # repeats add up
    g_shape = np.empty(x_shape)[index].shape
    return [d.normal(g_shape)], {"index": index, "shape": x_shape}


def draw_joined(stack=False):
    def draw(d):
        shape = d.shape(min_dims=0 if stack else 1, max_dims=2)
        count = d.integer(1, 3, label="how many")
        ndim = len(shape) + (1 if stack else 0)
        axis = d.integer(-ndim, ndim - 1, label="axis")
        arrays = []
        for _ in range(count):
            s = list(shape)
            if not stack:
                s[axis] = d.integer(1, 3)   # concat: sizes along the axis may differ
            arrays.append(d.normal(tuple(s)))
        return arrays, {"axis": axis}
    return draw


def draw_flattened(d):
    """Tensors of any shapes, for concat(axis=None), which flattens them first (numpy's)."""
    return [d.normal(d.shape(max_dims=2)) for _ in range(d.integer(1, 3))], {}


def draw_where(d):
    cond_shape, a_shape, b_shape = d.broadcast_shapes(3)
    cond = d.rng.random(cond_shape) > 0.5
    return [d.normal(a_shape), d.normal(b_shape)], {"cond": cond}


def draw_masked_fill(d):
    mask_shape, x_shape = d.broadcast_shapes(2)
    x_shape = np.broadcast_shapes(mask_shape, x_shape)   # torch: the mask broadcasts to x
    mask = d.rng.random(mask_shape) > 0.5
    # A large fill like attention's -1e9 would drown gradcheck's differences in rounding.
    return [d.normal(x_shape)], {"mask": mask, "value": d.sample([0.0, -1e4, np.float64(2.5)])}


def draw_cross_entropy(batch_dims):
    def draw(d):
        shape = tuple(d.integer(1, 4) for _ in range(batch_dims))
        classes = d.integer(2, 5, label="classes")
        targets = d.rng.integers(0, classes, shape)
        ignore_index = d.sample([None, -100, 0], label="ignore_index")
        if ignore_index is not None:
            ignored = d.rng.random(shape) < 0.3
            targets[ignored] = ignore_index
            if (targets == ignore_index).all():       # at least one target counts (else NaN)
                targets.flat[0] = 1
        # torch's class weights, one of them 0 at times (its targets then count for nothing),
        # but not every counted target's (the mean would be 0/0 = NaN)
        weight = None
        if d.boolean(label="class weights"):
            weight = d.rng.random(classes) + 0.1
            counted = targets[targets != ignore_index] if ignore_index is not None else targets
            zeroed = d.rng.integers(classes)
            if (counted != zeroed).any():
                weight[zeroed] *= d.sample([1.0, 0.0], label="a weight of 0")
        params = {"targets": targets, "ignore_index": ignore_index,
                  "label_smoothing": d.sample([0.0, 0.1, 0.5]),
                  "reduction": d.sample(["mean", "sum", "none"], label="reduction"),
                  "weight": weight}
        return [d.normal(shape + (classes,), 2.0)], params
    return draw


def draw_loss(make_input, make_target):
    """An input and a target of one drawn shape (0-d too), and torch's reduction."""
    def draw(d):
        shape = d.shape()
        reduction = d.sample(["mean", "sum", "none"], label="reduction")
        return [make_input(d, shape), make_target(d, shape)], {"reduction": reduction}
    return draw


def probabilities_or_labels(d, shape):
    """Targets of binary cross-entropy: soft ones in [0, 1], or labels 0 and 1."""
    if d.boolean(label="labels"):
        return d.rng.integers(0, 2, shape).astype(float)
    return d.rng.random(shape)


def labels(d, shape):
    return d.rng.integers(0, 2, shape).astype(float)


def draw_weighted_bce(d):
    """binary_cross_entropy_with_logits with torch's constants: `pos_weight` (one per class, the
    last axis, as torch's docs give it, or one per element) and `weight`, either or both."""
    shape = d.shape(min_dims=1)
    x, y = d.normal(shape, 3.0), probabilities_or_labels(d, shape)
    params = {"reduction": d.sample(["mean", "sum", "none"], label="reduction")}
    for name in ("pos_weight", "weight"):
        which = d.sample([None, "class", "element"], label=name)
        params[name] = (None if which is None
                        else 3 * d.rng.random(shape[-1:] if which == "class" else shape))
    return [x, y], params


def torch_weighted_bce(x, y, pos_weight, weight, reduction):
    return TF.binary_cross_entropy_with_logits(
        x, y, None if weight is None else torch.as_tensor(weight, dtype=x.dtype),
        reduction=reduction,
        pos_weight=None if pos_weight is None else torch.as_tensor(pos_weight, dtype=x.dtype))


def draw_layer_norm(affine):
    def draw(d):
        shape = d.shape(min_dims=1)
        size = shape[-1]
        x = d.normal(shape, 3.0) + d.normal(shape[:-1] + (1,))
        if d.boolean(label="a constant row"):    # variance 0: x_hat is 0, eps alone divides
            # A value of few bits, whose sum over the row and mean are exact as torch's are:
            # else x - mean is a rounding error, which 1 / sqrt(eps) and the second
            # derivative's 1 / (var + eps) make into 1e-10 where torch's is 0.
            x[(0,) * (len(shape) - 1)] = np.round(x.flat[0] * 8) / 8
        arrays = [x]
        if affine:
            arrays += [d.normal((size,)), d.normal((size,))]
        return arrays, {"eps": d.sample([1e-5, 1e-3])}
    return draw


def draw_layer_norm_weight_only(d):
    """A weight and no bias (a model built with bias=False)."""
    (x, weight, _), params = draw_layer_norm(affine=True)(d)
    return [x, weight], params


def draw_rms_norm(affine):
    def draw(d):
        shape = d.shape(min_dims=1)
        x = d.normal(shape, 3.0)
        if d.boolean(label="a row of zeros"):    # padding: mean(x^2) is 0, eps alone divides
            x[(0,) * (len(shape) - 1)] = 0.0
        arrays = [x]
        if affine:
            arrays.append(d.normal(shape[-1:]))
        return arrays, {"eps": d.sample([1e-6, 1e-3])}
    return draw


def draw_swiglu(d):
    """The gate and the values side by side: an even last axis."""
    shape = d.shape(min_dims=1, max_side=MAX_SIDE // 2)
    return [d.normal(shape[:-1] + (2 * shape[-1],), 2.0)], {}


def draw_softcap(d):
    # A cap of 0.5 squashes values of size 2 hard; 30 (Gemma's) leaves them nearly as they are.
    return [d.normal(d.shape(), 2.0)], {"cap": d.sample([0.5, 2, 30.0])}


def draw_dropout(d):
    shape = d.shape()
    return [d.normal(shape)], {"p": d.sample([0.1, 0.5]), "seed": d.integer(0, 100)}


def draw_attention(d):
    """q (..., T_q, d), k (..., T_k, d), v (..., T_k, d_v) whose batch axes broadcast, as
    grouped-query attention's (B, n_kv, group) queries against (B, n_kv, 1) keys; maybe a
    boolean mask that broadcasts to the scores (..., T_q, T_k), leaving each query a key."""
    batch_q, batch_kv = d(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2,
                                                            max_side=3),
                          label="batch").input_shapes
    t_q, t_k, dim, dim_v = (d.integer(1, 3) for _ in range(4))
    scores = np.broadcast_shapes(batch_q, batch_kv) + (t_q, t_k)
    mask = None
    if d.boolean(label="mask"):
        # Each axis of the scores, or 1 to broadcast; leading axes maybe left out.
        shape = tuple(size if d.boolean() else 1 for size in scores)
        mask = d.rng.random(shape[d.integer(0, len(scores) - 2, label="dropped axes"):]) < 0.6
        mask[..., 0] = True
    return [d.normal(batch_q + (t_q, dim), 2.0), d.normal(batch_kv + (t_k, dim), 2.0),
            d.normal(batch_kv + (t_k, dim_v))], {"mask": mask}


def draw_attention_bias(d):
    """draw_attention's q, k, v and mask, with a bias (ALiBi's, T5's) as a fourth input: any
    shape that broadcasts to the scores (..., T_q, T_k), a heads axis alone, a row of keys."""
    (q, k, v), params = draw_attention(d)
    scores = np.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2], k.shape[-2])
    shape = tuple(size if d.boolean() else 1 for size in scores)
    bias = d.normal(shape[d.integer(0, len(scores), label="bias's dropped axes"):], 2.0)
    return [q, k, v, bias], params


def torch_attention(q, k, v, attn_mask):
    """torch's attention by its math backend: the fused kernel it picks on the CPU for 4-D
    inputs without a mask has no double backward ("derivative ... not implemented")."""
    with sdpa_kernel(SDPBackend.MATH):
        return TF.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


def torch_attention_bias(q, k, v, bias, mask):
    """torch takes one attn_mask: the bias, with -inf where the boolean mask blocks."""
    if mask is not None:
        bias = torch.where(torch.as_tensor(mask), bias, -math.inf)
    return torch_attention(q, k, v, bias)


def draw_attention_dropout(d):
    """draw_attention_bias's q, k, v, bias and mask, and dropout: its p and the seed that fixes
    which weights it drops (the same at every call, as gradcheck needs)."""
    arrays, params = draw_attention_bias(d)
    return arrays, {**params, "p": d.sample([0.2, 0.5], label="dropout_p"),
                    "seed": d.integer(0, 100, label="seed")}


def attention_dropped(q, k, v, bias, mask, p, seed):
    ta.manual_seed(seed)          # the op draws its mask from the engine's generator
    return scaled_dot_product_attention(q, k, v, mask, bias=bias, dropout_p=p, training=True)


def torch_attention_dropped(q, k, v, bias, mask, p, seed):
    """(softmax(q k^T / sqrt(d) + bias, blocked keys -inf) * D) v, D the mask ours draws for
    `seed` (torch's attention draws its own, from its generator)."""
    ta.manual_seed(seed)
    scores_shape = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]) + (q.shape[-2],
                                                                        k.shape[-2])
    drop = torch.as_tensor(F.dropout_mask(tuple(scores_shape), p, np.float64), dtype=q.dtype)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + bias
    if mask is not None:
        scores = torch.where(torch.as_tensor(mask), scores, -math.inf)
    return (torch.softmax(scores, dim=-1) * drop) @ v


def draw_embedding(d):
    num, dim = d.integer(1, 5), d.integer(1, 4)
    indices = d.rng.integers(0, num, d.shape(0, 2))     # repeats: rows add up their gradients
    return [d.normal((num, dim))], {"indices": indices}


# --------------------------------------------------------------------------------- functions
# Functions that need more than a lambda.


def index_add_via_getitem_backward(g, index, shape):
    """d(sum(x[index] * g))/dx: GetItem's backward, which applies IndexAdd to g."""
    with ta.enable_grad():
        x = ta.Tensor(np.zeros(shape, g.dtype), requires_grad=True, dtype=g.dtype)
        (out,) = ta.grad(x[index], x, grad_outputs=g, create_graph=True)
        return out


def torch_index_add_via_getitem_backward(g, index, shape):
    x = torch.zeros(shape, dtype=g.dtype, requires_grad=True)
    (out,) = torch.autograd.grad(x[_torch_index(index)], x, grad_outputs=g, create_graph=True)
    return out


def draw_linear(d):
    """tinyautograd's Linear stores its weight as (in, out) and computes x @ weight + bias;
    torch's stores (out, in) and computes x @ weight.T + bias."""
    batch = d.shape(0, 2, max_side=3)
    n_in, n_out = d.integer(1, MAX_SIDE), d.integer(1, MAX_SIDE)
    return [d.normal(batch + (n_in,)), d.normal((n_in, n_out)), d.normal((n_out,))], {}


def draw_linear_without_bias(d):
    x, weight, _ = draw_linear(d)[0]
    return [x, weight], {}


def draw_rmatmul(d):
    a_shape, b_shape = matmul_shapes("batched")(d)
    return [d.normal(b_shape)], {"a": d.normal(a_shape)}


def torch_dropout(x, p, seed):
    """The same mask as tinyautograd's dropout draws from a generator seeded with `seed`: an
    element is kept where rng.random(shape) >= p, and scaled by 1/(1-p)."""
    keep = np.random.default_rng(seed).random(tuple(x.shape)) >= p
    return x * torch.as_tensor(keep) / (1 - p)


def torch_cross_entropy(logits, targets, ignore_index, label_smoothing, reduction, weight):
    """torch wants the classes on axis 1."""
    return TF.cross_entropy(logits.movedim(-1, 1) if logits.ndim > 2 else logits,
                            torch.as_tensor(targets),
                            None if weight is None else torch.as_tensor(weight, dtype=logits.dtype),
                            ignore_index=-100 if ignore_index is None else ignore_index,
                            label_smoothing=label_smoothing, reduction=reduction)


def torch_layer_norm(x, weight=None, bias=None, eps=1e-5):
    return TF.layer_norm(x, (x.shape[-1],), weight, bias, eps)


def torch_rms_norm(x, weight=None, eps=1e-6):
    return TF.rms_norm(x, (x.shape[-1],), weight, eps)


def torch_swiglu(x):
    gate, up = x.chunk(2, dim=-1)
    return TF.silu(gate) * up


def torch_var(x, axis, keepdims, ddof):
    return torch.var(x, dim=_dims(axis, x.ndim), correction=ddof, keepdim=keepdims)


# --------------------------------------------------------------------------------- the table

CASES = [
    # -- arithmetic, broadcasting: (3, 1, 4) with (5, 4), 0-d with anything, size-1 axes
    OpCase("add", (ops.Add,), lambda a, b: a + b, lambda a, b: a + b,
           two_that_broadcast(normal, normal)),
    OpCase("sub", (ops.Sub,), lambda a, b: a - b, lambda a, b: a - b,
           two_that_broadcast(normal, normal)),
    OpCase("neg", (ops.Neg,), lambda x: -x, lambda x: -x, one(normal)),
    OpCase("mul", (ops.Mul,), lambda a, b: a * b, lambda a, b: a * b,
           two_that_broadcast(normal, normal)),
    OpCase("div", (ops.Div,), lambda a, b: a / b, lambda a, b: a / b,
           two_that_broadcast(normal, away_from_zero)),
    # (a - b floor(a/b), the sign of b's; a // b is outside the graph, as a comparison)
    OpCase("remainder: tensor % tensor", (ops.Remainder,), lambda a, b: a % b,
           lambda a, b: a % b, draw_remainder),
    OpCase("remainder: tensor % number", (ops.Remainder,),
           lambda x, number: x % number, lambda x, number: x % number,
           draw_remainder_by_number),
    OpCase("pow: tensor ** tensor", (ops.Pow,), lambda a, b: a ** b, lambda a, b: a ** b,
           two_that_broadcast(positive, normal)),
    OpCase("pow: tensor ** number", (ops.Pow,),
           lambda x, exponent: x ** exponent, lambda x, exponent: x ** exponent,
           draw_pow_scalar_exponent),

    # -- a Python number or a numpy array on the left: __radd__, __rsub__, __rmul__, ...
    OpCase("radd: number or ndarray + tensor", (ops.Add,),
           lambda x, left: left + x, lambda x, left: _torch(left) + x, draw_left_operand()),
    OpCase("rsub: number or ndarray - tensor", (ops.Sub,),
           lambda x, left: left - x, lambda x, left: _torch(left) - x, draw_left_operand()),
    OpCase("rmul: number or ndarray * tensor", (ops.Mul,),
           lambda x, left: left * x, lambda x, left: _torch(left) * x, draw_left_operand()),
    OpCase("rtruediv: number or ndarray / tensor", (ops.Div,),
           lambda x, left: left / x, lambda x, left: _torch(left) / x, draw_left_operand()),
    OpCase("rpow: number or ndarray ** tensor", (ops.Pow,),
           lambda x, left: left ** x, lambda x, left: _torch(left) ** x,
           draw_left_operand(positive_left=True)),
    # (torch's number % tensor has no derivative for the tensor: its tensor % tensor does)
    OpCase("rmod: number % tensor", (ops.Remainder,), lambda x, number: number % x,
           lambda x, number: torch.tensor(number, dtype=x.dtype) % x, draw_number_remainder),
    OpCase("mul: numpy integers (array or np.int64) * tensor", (ops.Mul,),
           lambda x, ints: ints * x, lambda x, ints: _torch(ints) * x, draw_numpy_integers),

    # -- matmul, every way numpy reads its operands
    *[OpCase(f"matmul: {kind}", (ops.MatMul,), lambda a, b: a @ b, lambda a, b: a @ b,
             draw_matmul_case(kind))
      for kind in ["1-D @ 1-D", "1-D @ N-D", "N-D @ 1-D", "batched", "N-D @ 2-D"]],
    OpCase("linear: x @ weight + bias, weight (in, out)", (ops.MatMul, ops.Add),
           lambda x, weight, bias: x @ weight + bias,
           lambda x, weight, bias: TF.linear(x, weight.T, bias), draw_linear),
    OpCase("linear: F.linear, one fused op (nn.Linear's)", (ops.Linear,), F.linear,
           lambda x, weight, bias: TF.linear(x, weight.T, bias), draw_linear),
    OpCase("linear: F.linear without a bias", (ops.MatMul,),
           lambda x, weight: F.linear(x, weight), lambda x, weight: TF.linear(x, weight.T),
           draw_linear_without_bias),
    OpCase("rmatmul: ndarray @ tensor", (ops.MatMul,),
           lambda b, a: a @ b, lambda b, a: torch.as_tensor(a) @ b, draw_rmatmul),

    # -- elementwise functions
    OpCase("exp", (ops.Exp,), lambda x: x.exp(), torch.exp, one(normal)),
    OpCase("log", (ops.Log,), lambda x: x.log(), torch.log, one(positive)),
    OpCase("sqrt", (ops.Sqrt,), lambda x: x.sqrt(), torch.sqrt, one(positive)),
    OpCase("tanh", (ops.Tanh,), lambda x: x.tanh(), torch.tanh, one(normal)),
    OpCase("sigmoid", (ops.Sigmoid,), lambda x: x.sigmoid(), torch.sigmoid,
           one(lambda d, shape: d.normal(shape, 3.0))),
    OpCase("sigmoid: large |x|", (ops.Sigmoid,), lambda x: x.sigmoid(), torch.sigmoid,
           one(large)),
    OpCase("softplus", (ops.Softplus,), F.softplus, TF.softplus,
           one(lambda d, shape: d.normal(shape, 3.0))),
    # (torch's softplus is x itself above 20, so its second derivative there is 0, and its
    # logaddexp's is NaN below -700: the exact formula, written with torch's own ops)
    OpCase("softplus: large |x|", (ops.Softplus,), F.softplus,
           lambda x: torch.relu(x) + torch.log1p(torch.exp(-x.abs())), one(large)),
    OpCase("relu", (ops.Relu,), lambda x: x.relu(), torch.relu, one(away_from_zero)),
    OpCase("abs", (ops.Abs,), lambda x: x.abs(), torch.abs, one(away_from_zero)),
    OpCase("relu at 0: gradient 0, as torch", (ops.Relu,), lambda x: x.relu(), torch.relu,
           one(at_kinks), finite_differences=False),
    OpCase("abs at 0: gradient 0, as torch", (ops.Abs,), lambda x: x.abs(), torch.abs,
           one(at_kinks), finite_differences=False),
    OpCase("gelu (tanh approximation)", (ops.Gelu,), lambda x: x.gelu(),
           lambda x: TF.gelu(x, approximate="tanh"), one(lambda d, shape: d.normal(shape, 2.0))),
    # (its far tails: y = 0 and dy/dx = 0 past its cap on -2u, y = x and dy/dx = 1 above 10)
    OpCase("gelu: large |x|", (ops.Gelu,), lambda x: x.gelu(),
           lambda x: TF.gelu(x, approximate="tanh"), one(large)),

    # -- reductions: axis None, int, negative, tuple; keepdims
    OpCase("sum", (ops.Sum,), lambda x, axis, keepdims: x.sum(axis, keepdims),
           lambda x, axis, keepdims: x.sum(dim=_dims(axis, x.ndim), keepdim=keepdims),
           draw_reduction(normal)),
    OpCase("mean", (ops.Sum, ops.Div), lambda x, axis, keepdims: x.mean(axis, keepdims),
           lambda x, axis, keepdims: x.mean(dim=_dims(axis, x.ndim), keepdim=keepdims),
           draw_reduction(normal)),
    OpCase("var (ddof 0 or 1)", (ops.Var,),
           lambda x, axis, keepdims, ddof: x.var(axis, keepdims, ddof=ddof), torch_var,
           draw_reduction(normal, ddof=True)),
    OpCase("max (no ties)", (ops.Max,), lambda x, axis, keepdims: x.max(axis, keepdims),
           lambda x, axis, keepdims: torch.amax(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
           draw_reduction(Draw.distinct)),
    OpCase("max with ties: shared like torch.amax", (ops.Max,),
           lambda x, axis, keepdims: x.max(axis, keepdims),
           lambda x, axis, keepdims: torch.amax(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
           draw_ties, finite_differences=False),
    OpCase("min (no ties)", (ops.Min,), lambda x, axis, keepdims: x.min(axis, keepdims),
           lambda x, axis, keepdims: torch.amin(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
           draw_reduction(Draw.distinct)),
    OpCase("min with ties: shared like torch.amin", (ops.Min,),
           lambda x, axis, keepdims: x.min(axis, keepdims),
           lambda x, axis, keepdims: torch.amin(x, dim=_dims(axis, x.ndim), keepdim=keepdims),
           draw_ties, finite_differences=False),
    OpCase("softmax", (ops.Softmax,), lambda x, axis: x.softmax(axis),
           lambda x, axis: torch.softmax(x, dim=axis), draw_along_axis()),
    OpCase("log_softmax", (ops.LogSoftmax,), lambda x, axis: x.log_softmax(axis),
           lambda x, axis: torch.log_softmax(x, dim=axis), draw_along_axis()),
    OpCase("softmax: logits of size 1e4", (ops.Softmax,), lambda x, axis: x.softmax(axis),
           lambda x, axis: torch.softmax(x, dim=axis), draw_along_axis(1e4)),
    OpCase("log_softmax: logits of size 1e4", (ops.LogSoftmax,),
           lambda x, axis: x.log_softmax(axis),
           lambda x, axis: torch.log_softmax(x, dim=axis), draw_along_axis(1e4)),

    # -- shapes
    OpCase("reshape (with -1)", (ops.Reshape,), lambda x, shape: x.reshape(*shape),
           lambda x, shape: x.reshape(shape), draw_reshape),
    OpCase("transpose: a permutation (none: reversed)", (ops.Transpose,),
           # (a tuple: given one by one, a 2-D tensor's (0, 1) is refused as torch's swap)
           lambda x, axes: x.transpose(axes),
           lambda x, axes: x.permute(axes) if axes else _reversed_axes(x),
           draw_permutation()),
    OpCase("transpose: negative axes", (ops.Transpose,), lambda x, axes: x.transpose(axes),
           lambda x, axes: x.permute(axes), draw_permutation(negative=True)),
    OpCase("T", (ops.Transpose,), lambda x: x.T, _reversed_axes, one(normal)),
    OpCase("swapaxes", (ops.Transpose,), lambda x, a, b: x.swapaxes(a, b),
           lambda x, a, b: x.swapaxes(a, b), draw_swapaxes),
    OpCase("broadcast_to", (ops.BroadcastTo,), lambda x, shape: x.broadcast_to(shape),
           lambda x, shape: x.broadcast_to(shape), draw_broadcast_to),

    # -- dtypes: the gradient cast back to the input's (float32 goes through float64 here)
    OpCase("astype: to float64 and back", (ops.AsType,),
           lambda x: x.astype(np.float64).astype(x.dtype),
           lambda x: x.to(torch.float64).to(x.dtype), one(normal)),

    # -- indexing: the gradient is scattered back, adding up where an index repeats
    OpCase("getitem: basic (slices, negative steps, None, ...)", (ops.GetItem,),
           lambda x, index: x[index], _torch_getitem_by_positions, draw_basic_index),
    OpCase("getitem: integer arrays, repeated indices", (ops.GetItem,),
           lambda x, index: x[index], lambda x, index: x[_torch_index(index)],
           draw_integer_array_index),
    OpCase("getitem: boolean mask", (ops.GetItem,), lambda x, mask: x[mask],
           lambda x, mask: x[torch.as_tensor(np.asarray(mask))], draw_mask_index),
    OpCase("index_add: the backward of getitem", (ops.IndexAdd,),
           index_add_via_getitem_backward, torch_index_add_via_getitem_backward,
           draw_index_add),

    # -- several tensors
    OpCase("concat", (ops.Concat,), lambda *xs, axis: ta.concat(xs, axis=axis),
           lambda *xs, axis: torch.cat(xs, dim=axis), draw_joined()),
    OpCase("concat: axis None flattens first", (ops.Concat, ops.Reshape),
           lambda *xs: ta.concat(xs, axis=None),
           lambda *xs: torch.cat([x.reshape(-1) for x in xs]), draw_flattened),
    OpCase("stack", (ops.Stack,), lambda *xs, axis: ta.stack(xs, axis=axis),
           lambda *xs, axis: torch.stack(xs, dim=axis), draw_joined(stack=True)),
    OpCase("where", (ops.Where,), lambda a, b, cond: ta.where(cond, a, b),
           lambda a, b, cond: torch.where(torch.as_tensor(cond), a, b), draw_where),
    OpCase("masked_fill", (ops.Where,), lambda x, mask, value: x.masked_fill(mask, value),
           lambda x, mask, value: x.masked_fill(torch.as_tensor(mask), value),
           draw_masked_fill),

    # -- tinyautograd.functional
    OpCase("cross_entropy: (N, V)", (CrossEntropy,),
           lambda logits, **kw: F.cross_entropy(logits, **kw), torch_cross_entropy,
           draw_cross_entropy(1)),
    OpCase("cross_entropy: (B, T, V)", (CrossEntropy,),
           lambda logits, **kw: F.cross_entropy(logits, **kw), torch_cross_entropy,
           draw_cross_entropy(2)),
    OpCase("mse_loss", (ops.Sub, ops.Mul), F.mse_loss, TF.mse_loss, draw_loss(normal, normal)),
    OpCase("binary_cross_entropy_with_logits", (ops.Softplus, ops.Where),
           F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
           draw_loss(lambda d, shape: d.normal(shape, 3.0), probabilities_or_labels)),
    # (where e^x overflows and 1 - sigmoid(x) rounds to 0: finite, and torch's to 1e-12)
    OpCase("binary_cross_entropy_with_logits: large |x|", (ops.Softplus, ops.Where),
           F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits,
           draw_loss(large, labels)),
    OpCase("binary_cross_entropy_with_logits: pos_weight and weight", (ops.Softplus, ops.Where),
           F.binary_cross_entropy_with_logits, torch_weighted_bce, draw_weighted_bce),
    OpCase("layer_norm: weight and bias", (LayerNorm,),
           lambda x, w, b, eps: F.layer_norm(x, w, b, eps=eps), torch_layer_norm,
           draw_layer_norm(affine=True)),
    OpCase("layer_norm: weight, no bias", (LayerNorm,),
           lambda x, w, eps: F.layer_norm(x, w, eps=eps),
           lambda x, w, eps: torch_layer_norm(x, w, eps=eps), draw_layer_norm_weight_only),
    OpCase("layer_norm: no weight or bias", (LayerNorm,),
           lambda x, eps: F.layer_norm(x, eps=eps), lambda x, eps: torch_layer_norm(x, eps=eps),
           draw_layer_norm(affine=False)),
    OpCase("rms_norm: weight", (RMSNorm,),
           lambda x, w, eps: F.rms_norm(x, w, eps=eps), torch_rms_norm, draw_rms_norm(True)),
    OpCase("rms_norm: no weight", (RMSNorm,),
           lambda x, eps: F.rms_norm(x, eps=eps), lambda x, eps: torch_rms_norm(x, eps=eps),
           draw_rms_norm(False)),
    OpCase("swiglu: silu(gate) * up, side by side on the last axis", (SwiGLU,), F.swiglu,
           torch_swiglu, draw_swiglu),
    OpCase("silu: x * sigmoid(x)", (ops.Mul, ops.Sigmoid), F.silu, TF.silu,
           one(lambda d, shape: d.normal(shape, 3.0))),
    OpCase("silu: large |x|", (ops.Mul, ops.Sigmoid), F.silu, TF.silu, one(large)),
    OpCase("relu_squared", (ReluSquared,), F.relu_squared, lambda x: torch.relu(x) ** 2,
           one(away_from_zero)),
    OpCase("softcap: cap * tanh(x / cap)", (SoftCap,), lambda x, cap: F.softcap(x, cap),
           lambda x, cap: cap * torch.tanh(x / cap), draw_softcap),
    OpCase("dropout (seeded)", (ops.Mul,),
           lambda x, p, seed: F.dropout(x, p, generator=np.random.default_rng(seed)),
           torch_dropout, draw_dropout),
    OpCase("embedding (repeated rows)", (ops.GetItem,),
           lambda weight, indices: F.embedding(indices, weight),
           lambda weight, indices: TF.embedding(torch.as_tensor(indices), weight),
           draw_embedding),

    # -- tinyformer's fused op
    OpCase("attention: softmax(q k^T / sqrt(d)) v, a mask, broadcast batch axes", (Attention,),
           lambda q, k, v, mask: scaled_dot_product_attention(q, k, v, mask),
           lambda q, k, v, mask: torch_attention(
               q, k, v, None if mask is None else torch.as_tensor(mask)),
           draw_attention),
    OpCase("attention: softmax(q k^T / sqrt(d) + bias) v, a broadcast bias and a mask",
           (Attention,),
           lambda q, k, v, bias, mask: scaled_dot_product_attention(q, k, v, mask, bias=bias),
           torch_attention_bias, draw_attention_bias),
    OpCase("attention: dropout (seeded: a fixed mask of dropped weights), a bias and a mask",
           (Attention,), attention_dropped, torch_attention_dropped, draw_attention_dropout),
]
