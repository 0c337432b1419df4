"""Checkers for chapter 7: the feed-forward network with GELU, pre-LN and post-LN blocks.

Outputs and gradients are compared, in float64, with tinyautograd's `Tensor.gelu` and with
tinyformer's own layers (`FeedForward`, `DecoderLayer`) holding the same weights.
"""

from __future__ import annotations

import numpy as np

from tinyautograd import ShapeError, Tensor, no_grad

from ..catalogue import Question, exercise
from ..checking import CheckFailure, Learner, expect_array, expect_gradients
from .ch06_attention import backward_through, expect_output, tensor64

# The chapter's "predict, then run" question (`tinyformer exercises predict 7`).
QUESTION = Question(code="""\
import numpy as np

def layer_norm(x):
    return (x - x.mean()) / x.std()

x = np.array([1.0, 2.0, 3.0])
print(layer_norm(x).round(3))
print(layer_norm(100 * x + 7).round(3))
""", output="""\
[-1.225  0.     1.225]
[-1.225  0.     1.225]
""", why=(
    'Layer norm removes the mean and divides by the spread, so scaling by 100 and shifting by 7 '
    "change nothing. That is why a norm keeps a sub-layer's input on one scale, however large the "
    'residual stream grows.'))

# ---------------------------------------------------------------------------------------------
# 1. The feed-forward network and GELU


def _gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _gelu_mistakes(x):
    return [
        ("with ReLU, max(x, 0), instead of GELU", np.maximum(x, 0)),
        ("without the factor 0.5 in front", 2 * _gelu(x)),
        ("with sqrt(2 * pi) instead of sqrt(2 / pi) in front of the bracket",
         0.5 * x * (1 + np.tanh(np.sqrt(2 * np.pi) * (x + 0.044715 * x ** 3)))),
        ("with sqrt(pi / 2) instead of sqrt(2 / pi) in front of the bracket",
         0.5 * x * (1 + np.tanh(np.sqrt(np.pi / 2) * (x + 0.044715 * x ** 3)))),
        ("with 2 / pi in front of the bracket, without its square root: sqrt(2 / pi)",
         0.5 * x * (1 + np.tanh(2 / np.pi * (x + 0.044715 * x ** 3)))),
        ("with x^2 instead of x^3 inside the tanh",
         0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 2)))),
        ("with the sigmoid approximation x * sigmoid(1.702 x); here use the tanh one",
         x / (1 + np.exp(-1.702 * x))),
    ]


def _check_gelu(fn, x):
    upstream = np.random.default_rng(3).standard_normal(x.shape)
    reference = tensor64(x)
    out = reference.gelu()
    backward_through(out, upstream)
    inputs = {"x": tensor64(x)}
    got = fn(inputs["x"])
    expect_output(got, out.data, fn.last_call, _gelu_mistakes(x))
    backward_through(got, upstream)
    try:
        expect_gradients(inputs, {"x": reference.grad}, fn.last_call)
    except CheckFailure as failure:
        grad = inputs["x"].grad
        if grad is None:
            raise
        # tanh computed outside the graph (np.tanh of .data, wrapped in a new Tensor): the
        # values are right, and backward treats tanh(...) as a constant.
        inner = np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)
        if np.allclose(grad, upstream * 0.5 * (1 + np.tanh(inner)), atol=1e-5, rtol=1e-4):
            raise CheckFailure(f"{failure}\n    That is the gradient with tanh(...) taken as a "
                               f"constant: it was computed with numpy on .data, outside the "
                               f"Tensor operations, so backward does not go through it. Use "
                               f"the Tensor's own inner.tanh().") from None
        if got.dtype != np.float64:
            raise       # float32's rounding, not the constants, is what the values differ by
        # Values a little off pass the comparison above and show in the gradient, where the
        # learner wrote no code of their own: say it of the values.
        try:
            expect_array(got, out.data, fn.last_call, atol=1e-9, rtol=1e-7)
        except CheckFailure as slightly:
            raise CheckFailure(f"{slightly}\n    Slightly off, and its gradient more so: "
                               f"compare your constants with the formula's, 0.044715 and "
                               f"sqrt(2 / pi).") from None
        raise


def _ffn_mistakes(x, w1, b1, w2, b2):
    h = x @ w1 + b1
    return [
        ("with ReLU instead of GELU", np.maximum(h, 0) @ w2 + b2),
        ("without the activation between the two layers", h @ w2 + b2),
        ("without the biases", _gelu(x @ w1) @ w2),
        ("without b1, the first layer's bias", _gelu(x @ w1) @ w2 + b2),
        ("without b2, the second layer's bias", _gelu(h) @ w2),
        ("with GELU after the second layer: it goes between the two, on the d_ff features",
         _gelu(h @ w2 + b2)),
    ]


@exercise("feed_forward", "The feed-forward network and GELU", hints=[
    "gelu is one line of Tensor arithmetic: a plain number times a Tensor is a Tensor, and "
    "x.tanh() is tanh elementwise. Write the cube as x * x * x.",
    "gelu(x) = 0.5 * x * (1 + tanh(c * (x + 0.044715 * x^3))) with c = sqrt(2 / pi): "
    "math.sqrt and math.pi give the constant.",
    "feed_forward widens each position with the first layer, applies gelu to every element, "
    "and narrows back with the second: (B, T, C) -> (B, T, d_ff) -> (B, T, C).",
], forbid=["tinyformer.layers", "tinyformer.blocks", "tinyautograd.functional"],
   forbid_methods=["gelu"])
def check_feed_forward(learner: Learner) -> None:
    gelu = learner.function("gelu")
    _check_gelu(gelu, np.array([-2.0, -1.0, 0.0, 1.0, 2.0]))
    rng = np.random.default_rng(0)
    _check_gelu(gelu, rng.standard_normal((2, 3, 4)) * 2)

    fn = learner.function("feed_forward")
    from tinyformer.layers import FeedForward
    for B, T, C, d_ff in ((1, 2, 2, 3), (2, 3, 4, 16)):
        x = rng.standard_normal((B, T, C))
        weights = {"w1": rng.standard_normal((C, d_ff)) / np.sqrt(C),
                   "b1": rng.standard_normal(d_ff) * 0.5,
                   "w2": rng.standard_normal((d_ff, C)) / np.sqrt(d_ff),
                   "b2": rng.standard_normal(C) * 0.5}
        # tinyformer's FeedForward, holding the same weights (in float64).
        ffn = FeedForward(C, d_ff, activation="gelu")
        params = dict(ffn.named_parameters())
        layer_of = {"w1": "fc1.weight", "b1": "fc1.bias", "w2": "fc2.weight",
                    "b2": "fc2.bias"}
        for name, layer in layer_of.items():
            params[layer].data = weights[name].copy()
        upstream = rng.standard_normal((B, T, C))
        x_ref = tensor64(x)
        expected = ffn(x_ref)
        backward_through(expected, upstream)
        expected_grads = {"x": x_ref.grad,
                          **{name: params[layer].grad for name, layer in layer_of.items()}}

        inputs = {"x": tensor64(x), **{name: tensor64(w) for name, w in weights.items()}}
        try:
            got = fn(inputs["x"], inputs["w1"], inputs["b1"], inputs["w2"], inputs["b2"])
        except CheckFailure as failure:
            if not isinstance(failure.raised, ShapeError):
                raise
            # A product whose sizes do not meet: most often a weight transposed, as for
            # PyTorch's nn.Linear, whose weight is (out, in).
            raise CheckFailure(
                f"{failure}\n    The weights are (in, out), used as they are (not transposed, "
                f"as PyTorch's nn.Linear weight (out, in) would be): w1 is (C, d_ff) = "
                f"{(C, d_ff)}, so x @ w1 is (B, T, d_ff); w2 is (d_ff, C) = {(d_ff, C)}, so "
                f"h @ w2 is (B, T, C).",
                raised=failure.raised) from None
        expect_output(got, expected.data, fn.last_call, _ffn_mistakes(x, **weights))
        backward_through(got, upstream)
        expect_gradients(inputs, expected_grads, fn.last_call)


# ---------------------------------------------------------------------------------------------
# 2. Pre-LN and post-LN blocks


class _Named:
    """A sub-layer handed to the learner: calls `fn`, and shows as `name` in messages."""

    def __init__(self, fn, name):
        self.fn, self.name = fn, name

    def __call__(self, x):
        return self.fn(x)

    def __repr__(self):
        return self.name


def _zeros(x):
    return x * 0.0                 # zeros, still connected to x


def _decoder_layer(placement, rng, C=8, n_head=2, d_ff=16):
    """tinyformer's GPT block (a DecoderLayer without cross-attention), with random float64
    weights; its layer norms get random gains and biases, so that swapping them shows."""
    from tinyformer.blocks import DecoderLayer
    layer = DecoderLayer(C, n_head, d_ff, norm=placement, activation="gelu",
                         cross_attention=False)
    for name, p in layer.named_parameters():
        if name.endswith("weight") and p.ndim == 1:            # a LayerNorm gain
            p.data = 1 + 0.3 * rng.standard_normal(p.shape)
        elif p.ndim == 1:                                     # a bias
            p.data = 0.2 * rng.standard_normal(p.shape)
        else:
            p.data = rng.standard_normal(p.shape) / np.sqrt(p.shape[0])
    return layer


def _sublayers(layer, mask):
    """attn, ffn, ln1, ln2 of a DecoderLayer (its attn, ffn, attn_norm and ffn_norm), named
    for the messages."""
    return (_Named(lambda h: layer.attn(h, mask=mask), "attn"),
            _Named(layer.ffn, "ffn"), _Named(layer.attn_norm, "ln1"),
            _Named(layer.ffn_norm, "ln2"))


# The gradients the checker compares, by the name a learner knows them by.
_CHECKED_PARAMS = {"ln1.weight": "attn_norm.weight", "ln2.bias": "ffn_norm.bias",
                   "attn's W_q": "attn.q.weight", "ffn's W1": "ffn.fc1.weight"}


def _add_normed(y, sublayer, norm):
    return y + norm(sublayer(y))


def _norm_then_add(y, sublayer, norm):
    return norm(y) + sublayer(y)


def _block_mistakes(x, placement, attn, ffn, ln1, ln2):
    """What the usual wrong wirings give (no gradients needed)."""
    def pre(x, attn, ffn, ln1, ln2):
        x = x + attn(ln1(x))
        return x + ffn(ln2(x))

    def post(x, attn, ffn, ln1, ln2):
        x = ln1(x + attn(x))
        return ln2(x + ffn(x))

    right, other = (pre, post) if placement == "pre" else (post, pre)
    with no_grad():
        x = Tensor(x, dtype=np.float64)
        mistakes = [
            (f"with the {'post' if placement == 'pre' else 'pre'}-LN order: this is "
             f"{'post' if placement == 'pre' else 'pre'}_ln_block's job",
             other(x, attn, ffn, ln1, ln2)),
            ("with ln1 and ln2 swapped: ln1 belongs to attention, ln2 to the feed-forward "
             "network", right(x, attn, ffn, ln2, ln1)),
            ("with ln1 for both sub-layers: the feed-forward network's norm is ln2",
             right(x, attn, ffn, ln1, ln1)),
            ("with ln2 for both sub-layers: attention's norm is ln1",
             right(x, attn, ffn, ln2, ln2)),
            ("with the feed-forward network first: attention comes first",
             right(x, ffn, attn, ln1, ln2)),
            ("leaving out ln1: each sub-layer has its own norm, ln1 for attention",
             right(x, attn, ffn, lambda y: y, ln2)),
            ("leaving out ln2: each sub-layer has its own norm, ln2 for the feed-forward "
             "network", right(x, attn, ffn, ln1, lambda y: y)),
        ]
        if placement == "pre":
            y = ln1(x) + attn(ln1(x))
            mistakes += [
                ("with both sub-layers reading the block's input: the feed-forward network "
                 "reads x after attention has added to it, so reassign x on the first line",
                 x + attn(ln1(x)) + ffn(ln2(x))),
                ("without the residual connections: add each sub-layer's output to x",
                 ffn(ln2(attn(ln1(x))))),
                ("adding the normalised x instead of x itself: the residual stream carries x "
                 "un-normalised", ln2(y) + ffn(ln2(y))),
            ]
        else:
            mistakes += [
                ("normalising the sub-layer's output before adding it: post-LN normalises "
                 "the sum, ln1(x + attn(x))",
                 _add_normed(x + ln1(attn(x)), ffn, ln2)),
                ("normalising x before adding the sub-layer's output, ln2(x) + ffn(x): "
                 "post-LN normalises the sum, ln2(x + ffn(x))",
                 ln2(ln1(x + attn(x))) + ffn(ln1(x + attn(x)))),
                ("normalising x before adding the sub-layer's output, ln1(x) + attn(x) and "
                 "ln2(x) + ffn(x): post-LN normalises the sum, ln1(x + attn(x))",
                 _norm_then_add(_norm_then_add(x, attn, ln1), ffn, ln2)),
                ("with both sub-layers reading the block's input: the feed-forward network "
                 "reads x after the first line has changed it, so reassign x there",
                 ln2(ln1(x + attn(x)) + ffn(x))),
                ("without the residual connections: add x to each sub-layer's output",
                 ln2(ffn(ln1(attn(x))))),
            ]
    return [(description, wrong.data) for description, wrong in mistakes]


def _check_zero_sublayers(fn, placement, x, rng):
    """With attn and ffn giving zeros: pre-LN is the identity, post-LN is ln2(ln1(x))."""
    from tinyautograd import functional
    gains = [1 + 0.3 * rng.standard_normal(x.shape[-1]) for _ in range(2)]
    ln1 = _Named(lambda h: functional.layer_norm(h, Tensor(gains[0], dtype=np.float64)), "ln1")
    ln2 = _Named(lambda h: functional.layer_norm(h, Tensor(gains[1], dtype=np.float64)), "ln2")
    zeros_attn = _Named(_zeros, "attn giving zeros")
    zeros_ffn = _Named(_zeros, "ffn giving zeros")
    with no_grad():
        expected = x if placement == "pre" else ln2(ln1(Tensor(x, dtype=np.float64))).data
    inputs = {"x": tensor64(x)}
    got = fn(inputs["x"], zeros_attn, zeros_ffn, ln1, ln2)
    why = ("With both sub-layers giving zeros a pre-LN block must return x unchanged: "
           "x + 0 + 0. The residual stream is x itself, never normalised."
           if placement == "pre" else
           "With both sub-layers giving zeros a post-LN block returns ln2(ln1(x)): each "
           "line normalises x + 0.")
    try:
        expect_array(got, expected, fn.last_call, tensor=True)
    except CheckFailure as failure:
        if (placement == "post" and isinstance(got, Tensor) and got.shape == x.shape
                and np.allclose(got.data, x)):
            why += " Yours returned x unchanged, which is what a pre-LN block does."
        raise CheckFailure(f"{failure}\n    {why}") from None
    if placement == "pre":
        # The identity path: the gradient reaching x is the upstream gradient, unchanged.
        upstream = rng.standard_normal(x.shape)
        backward_through(got, upstream)
        expect_gradients(inputs, {"x": upstream}, fn.last_call)


def _check_block(fn, placement, rng):
    from tinyformer.attention import causal_mask
    B, T, C = 2, 4, 8
    x = rng.standard_normal((B, T, C))
    _check_zero_sublayers(fn, placement, x[:1, :2, :4], rng)

    # The real thing: GPT's block, its pieces handed to the learner, against its own forward.
    mask = causal_mask(T)
    seed = int(rng.integers(1 << 30))
    reference, layer = (_decoder_layer(placement, np.random.default_rng(seed)) for _ in "ab")
    upstream = rng.standard_normal((B, T, C))
    x_ref = tensor64(x)
    expected = reference(x_ref, mask=mask)
    backward_through(expected, upstream)
    ref_params = dict(reference.named_parameters())
    expected_grads = {"x": x_ref.grad, **{name: ref_params[param].grad
                                          for name, param in _CHECKED_PARAMS.items()}}

    pieces = _sublayers(layer, mask)
    params = dict(layer.named_parameters())
    inputs = {"x": tensor64(x), **{name: params[param]
                                   for name, param in _CHECKED_PARAMS.items()}}
    got = fn(inputs["x"], *pieces)
    expect_output(got, expected.data, fn.last_call, _block_mistakes(x, placement, *pieces))
    backward_through(got, upstream)
    expect_gradients(inputs, expected_grads, fn.last_call)


@exercise("residual_blocks", "Pre-LN and post-LN blocks", hints=[
    "Each block is two lines, one per sub-layer, attention first. Reassign x on each line: "
    "the second sub-layer works on the result of the first.",
    "Pre-LN: the norm is applied to the sub-layer's INPUT, and x itself is added back "
    "un-normalised: x = x + sublayer(norm(x)).",
    "Post-LN: the norm is applied to the SUM: x = norm(x + sublayer(x)). ln1 goes with attn, "
    "ln2 with ffn, in both blocks.",
], forbid=["tinyformer.blocks"])
def check_residual_blocks(learner: Learner) -> None:
    rng = np.random.default_rng(0)
    _check_block(learner.function("pre_ln_block"), "pre", rng)
    _check_block(learner.function("post_ln_block"), "post", rng)
