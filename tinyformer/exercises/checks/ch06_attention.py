"""Checkers for chapter 6: scaled dot-product attention, the causal mask, multi-head attention.

The learner works with tinyautograd Tensors, so each checker compares the output and, after a
backward pass, the gradient of every input against tinyformer's own attention (in float64).
Where a wrong answer matches a well-known mistake (no 1/sqrt(d_k), softmax over the wrong axis,
the mask the wrong way round), the message says so.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import Tensor

from ..catalogue import Question, exercise
from ..checking import (CheckFailure, Learner, a_kind, as_array, expect, expect_array,
                        expect_gradients, on_copies)

# The chapter's "predict, then run" question (`tinyformer exercises predict 6`).
QUESTION = Question(code="""\
import numpy as np

scores = np.array([[0.0, 5.0, 1.0],
                   [0.0, 5.0, 1.0],
                   [0.0, 5.0, 1.0]])            # every query scores the keys alike
allowed = np.tril(np.ones((3, 3), dtype=bool))  # causal: query t sees keys 0..t
scores = np.where(allowed, scores, -1e9)
weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
weights = weights / weights.sum(axis=-1, keepdims=True)
print(weights.round(2))
""", output="""\
[[1.   0.   0.  ]
 [0.01 0.99 0.  ]
 [0.01 0.98 0.02]]
""", why=(
    'The first query may see only key 0, so all its weight goes there, whatever the scores. The '
    "later rows spread over more keys, but key 1's score of 5 takes almost everything: softmax "
    'turns a gap of 4 into a factor of e^4, about 55.'))

# ---------------------------------------------------------------------------------------------
# Helpers, shared with chapter 7's checkers


def tensor64(array: ArrayLike) -> Tensor:
    """A float64 leaf Tensor that collects a gradient."""
    return Tensor(np.array(array, dtype=np.float64), requires_grad=True, dtype=np.float64)


def backward_through(out: Any, upstream: ArrayLike) -> None:
    """loss = sum(out * upstream), then backward: every input's .grad becomes d loss / d input.
    A random `upstream` (not all ones) lets no gradient cancel out by accident. A result that is
    cut off from the inputs is left alone: expect_gradients then says which input it lost."""
    if isinstance(out, Tensor) and out.requires_grad:
        (out * Tensor(upstream, dtype=np.float64)).sum().backward()


def expect_output(got: Any, expected: ArrayLike, call: str,
                  mistakes: Iterable[tuple[str, ArrayLike]] = (), what: str = "returned") -> None:
    """expect_array(tensor=True), and when the answer is wrong but equals one of `mistakes`
    ((description, array) pairs), say which mistake it looks like."""
    try:
        expect_array(got, expected, call, what=what, tensor=True)
    except CheckFailure as failure:
        data = as_array(got) if isinstance(got, (Tensor, np.ndarray)) else None
        for description, wrong in mistakes:
            # A mistake that gives the right answer on these inputs (dividing by sqrt(T)
            # where T == d_k) names nothing: the failure is then another one, an ndarray
            # where a Tensor was due, say, and the answer's values are right.
            if data is not None and _close(data, wrong) and not _close(wrong, expected):
                raise CheckFailure(f"{failure}\n    Your result is exactly what you get "
                                   f"{description}.") from None
        raise


def _close(a: ArrayLike, b: ArrayLike) -> bool:
    return np.shape(a) == np.shape(b) and np.allclose(a, b, atol=1e-5, rtol=1e-4)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def numpy_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
                    scale: float | None = None, axis: int = -1,
                    mask_after: bool = False, blocked: float = -1e9,
                    values_first: bool = False) -> np.ndarray:
    """Attention in numpy, with knobs to reproduce the usual mistakes."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -2, -1) * scale
    if mask is not None and not mask_after:
        scores = np.where(mask, scores, blocked)
    weights = _softmax(scores, axis)
    if mask is not None and mask_after:
        weights = np.where(mask, weights, 0.0)
    return v @ weights if values_first else weights @ v


def _attention_mistakes(q, k, v, mask=None):
    """(description, wrong output) for the classic mistakes of attention."""
    d = q.shape[-1]
    mistakes = [
        ("without dividing the scores by sqrt(d_k)", numpy_attention(q, k, v, mask, scale=1.0)),
        ("dividing the scores by d_k instead of sqrt(d_k)",
         numpy_attention(q, k, v, mask, scale=1 / d)),
        ("dividing the scores by the square root of the sequence length, q.shape[-2], "
         "instead of d_k, the size of each query and key: q.shape[-1]",
         numpy_attention(q, k, v, mask, scale=1 / np.sqrt(q.shape[-2]))),
        ("multiplying the scores by sqrt(d_k) instead of dividing by it",
         numpy_attention(q, k, v, mask, scale=np.sqrt(d))),
        ("taking the softmax over the queries (axis -2) instead of the keys (axis -1)",
         numpy_attention(q, k, v, mask, axis=-2)),
        ("taking the softmax over the batch (axis 0) instead of the keys (axis -1)",
         numpy_attention(q, k, v, mask, axis=0)),
        # Self-attention's scores are square, so both orders of the product run.
        ("with the scores k @ q^T, the transpose of q @ k^T: row t of the scores must be "
         "query t's, q @ k.swapaxes(-2, -1)", numpy_attention(k, q, v, mask)),
    ]
    if k.shape[-1] == k.shape[-2]:          # d_k == T: q @ k, k not transposed, runs too
        mistakes.append(("with the scores q @ k, k not transposed: they are "
                         "q @ k.swapaxes(-2, -1)",
                         numpy_attention(q, np.swapaxes(k, -2, -1), v, mask)))
    if v.shape[-1] == v.shape[-2]:          # d_v == T: v @ weights runs too
        mistakes.append(("with v @ weights: the output is weights @ v, row t of the weights "
                         "(query t's) averaging the rows of v",
                         numpy_attention(q, k, v, mask, values_first=True)))
    if mask is not None:
        mistakes += [
            ("ignoring the mask", numpy_attention(q, k, v)),
            ("with the mask the wrong way round: here True means 'may attend', so block the "
             "scores where the mask is False (~mask)", numpy_attention(q, k, v, ~mask)),
            ("zeroing blocked weights after the softmax: the rest then no longer sum to 1; "
             "block the scores before the softmax instead",
             numpy_attention(q, k, v, mask, mask_after=True)),
            ("setting the blocked scores to 0: a score of 0 still gets weight (exp(0) = 1); "
             "a very negative score, -1e9, is what gets none",
             numpy_attention(q, k, v, mask, blocked=0.0)),
        ]
    return mistakes


def _reference_attention(q, k, v, mask, upstream):
    """tinyformer's attention (the fused kernel the models run): output and gradients."""
    from tinyformer.attention import scaled_dot_product_attention
    tensors = {name: tensor64(a) for name, a in (("q", q), ("k", k), ("v", v))}
    out = scaled_dot_product_attention(tensors["q"], tensors["k"], tensors["v"], mask)
    backward_through(out, upstream)
    return out.data, {name: t.grad for name, t in tensors.items()}


def _check_attention_call(fn, q, k, v, mask=None, call_with_mask=True):
    """Call fn on float64 Tensors made from q, k, v; compare output and gradients with
    tinyformer's attention."""
    upstream = np.random.default_rng(1).standard_normal(q.shape[:-1] + v.shape[-1:])
    expected, expected_grads = _reference_attention(q, k, v, mask, upstream)
    inputs = {"q": tensor64(q), "k": tensor64(k), "v": tensor64(v)}
    if call_with_mask:
        got = fn(inputs["q"], inputs["k"], inputs["v"], mask)
    else:
        got = fn(inputs["q"], inputs["k"], inputs["v"])
    expect_output(got, expected, fn.last_call, _attention_mistakes(q, k, v, mask))
    backward_through(got, upstream)
    expect_gradients(inputs, expected_grads, fn.last_call)


# ---------------------------------------------------------------------------------------------
# 1. Scaled dot-product attention


@exercise("scaled_dot_product", "Scaled dot-product attention", hints=[
    "Three steps: scores = q @ k^T / sqrt(d_k), weights = softmax(scores) over the keys, out "
    "= weights @ v. Stay with Tensor operations so that gradients reach q, k and v.",
    "k^T of a (B, T, d) Tensor is k.swapaxes(-2, -1), (B, d, T); d_k is q.shape[-1]. The "
    "softmax runs along the last axis: scores.softmax(axis=-1).",
    "The mask is True where a query may attend. A blocked key must get no weight after the "
    "softmax, so give its score a very negative number before it (Tensor.masked_fill, with "
    "the mask inverted): its exp is then 0.",
], forbid=["tinyformer.attention"])
def check_scaled_dot_product(learner: Learner) -> None:
    fn = learner.function("scaled_dot_product")
    # By hand: one sequence of two positions, d_k = 2.
    q = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    k = np.array([[[1.0, 0.0], [1.0, 2.0]]])
    v = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    _check_attention_call(fn, q, k, v)

    rng = np.random.default_rng(0)
    B, T, d_k, d_v = 2, 5, 4, 3
    q, k = rng.standard_normal((B, T, d_k)), rng.standard_normal((B, T, d_k))
    v = rng.standard_normal((B, T, d_v))
    _check_attention_call(fn, q, k, v)

    # A mask: every query keeps at least one key (position 0), the rest at random.
    mask = rng.random((T, T)) < 0.6
    mask[:, 0] = True
    _check_attention_call(fn, q, k, v, mask)
    # A mask with a batch axis, different for each sequence.
    mask = rng.random((B, T, T)) < 0.5
    mask[:, :, 1] = True
    _check_attention_call(fn, q, k, v, mask)


# ---------------------------------------------------------------------------------------------
# 2. The causal mask


def expect_boolean_mask(got: Any, call: str) -> None:
    """CheckFailure unless `got`, what `call` returned, is a numpy array of dtype bool, as
    attention's `~mask` needs (the check and `draw` say the same)."""
    expect(isinstance(got, np.ndarray), f"{call} returned {a_kind(got)}; return a numpy array "
                                        f"of dtype bool.")
    if got.dtype != bool:
        raise CheckFailure(f"{call} returned an array of dtype {got.dtype}; a mask must be "
                           f"boolean (dtype bool): `~mask` of the integer 1 is -2, not False. "
                           f"Use np.ones((T, T), dtype=bool), or .astype(bool).")


def _check_causal_mask(fn, T):
    got = fn(T)
    expected = np.tril(np.ones((T, T), dtype=bool))
    # (expect_array cannot compare two boolean arrays: numpy refuses to subtract them.)
    if got is None:
        raise CheckFailure(f"{fn.last_call} returned None. Did you forget a `return`?")
    expect(isinstance(got, np.ndarray), f"{fn.last_call} returned {a_kind(got)}; "
                                        f"return a numpy array of dtype bool.")
    expect(got.shape == (T, T), f"{fn.last_call} returned an array of shape {got.shape}; "
                                f"expected shape {(T, T)}.")
    expect_boolean_mask(got, fn.last_call)
    if T > 1 and np.array_equal(got, ~expected):
        raise CheckFailure(f"{fn.last_call} returned the mask the other way round: True where "
                           f"a key is blocked. In tinyformer True means 'may attend', so the "
                           f"mask is the lower triangle, diagonal included.")
    wrong = np.argwhere(got != expected)
    if len(wrong):
        t, s = wrong[0]
        raise CheckFailure(f"{fn.last_call} returned a wrong mask.\n"
                           f"    at [{t}, {s}] (query {t}, key {s}): expected {expected[t, s]}, "
                           f"got {got[t, s]}  ({len(wrong)} wrong elements out of {got.size}); "
                           f"query t may attend key s exactly when s <= t.")


@exercise("causal_mask", "The causal mask", hints=[
    "Query t may attend key s exactly when s <= t: the lower triangle of a (T, T) matrix, "
    "diagonal included.",
    "np.tril(x) keeps the lower triangle of x and zeroes the rest. Start from np.ones((T, T), "
    "dtype=bool) so that the result is boolean.",
    "causal_attention needs no new maths: it is your attention with the mask for its sequence "
    "length. Which axis of q holds T?",
], forbid=["tinyformer.attention"])
def check_causal_mask(learner: Learner) -> None:
    mask_fn = learner.function("causal_mask")
    for T in (4, 1, 2, 7):
        _check_causal_mask(mask_fn, T)

    fn = learner.function("causal_attention")
    rng = np.random.default_rng(0)
    B, T, d = 2, 5, 4
    q, k, v = (rng.standard_normal((B, T, d)) for _ in range(3))
    # Behaviour first: changing position s (its query, key and value) must not move any
    # output before s.
    with_grad_off = [Tensor(a, dtype=np.float64) for a in (q, k, v)]
    before = as_array(_expect_tensor(on_copies(fn, *with_grad_off), fn, (B, T, d)))
    for s in range(1, T):
        changed = [a.copy() for a in (q, k, v)]
        for a in changed:
            a[:, s] += rng.standard_normal((B, d)) * 3
        after = as_array(_expect_tensor(
            on_copies(fn, *(Tensor(a, dtype=np.float64) for a in changed)), fn, (B, T, d)))
        moved = [t for t in range(s) if not np.allclose(before[:, t], after[:, t], atol=1e-7)]
        if moved:
            raise CheckFailure(f"{fn.last_call}: changing the token at position {s} (its q, k "
                               f"and v) changed the output at position {moved[0]}, which comes "
                               f"before it: position {moved[0]} can see its future. "
                               f"{_leak_cause(before, q, k, v)}")
    # Then the numbers and the gradients, against tinyformer's attention with its mask.
    from tinyformer.attention import causal_mask
    _check_attention_call(fn, q, k, v, causal_mask(T), call_with_mask=False)
    _check_attention_call(fn, q[:1, :1], k[:1, :1], v[:1, :1], causal_mask(1),
                          call_with_mask=False)


def _leak_cause(out, q, k, v):
    """What to do about a causal_attention whose output `out` (on q, k, v) sees the future:
    a mask passed the wrong way round is named as such, since "pass the mask" would send its
    writer looking for a call that is already there."""
    causal = np.tril(np.ones((q.shape[1],) * 2, dtype=bool))
    if _close(out, numpy_attention(q, k, v, ~causal)):
        return ("Your output is exactly attention with the mask the wrong way round (~ of the "
                "causal mask, or np.triu): True must mark the keys a query may attend, the lower "
                "triangle, as causal_mask returns it.")
    return "Pass the causal mask to `attention`."


def _expect_tensor(got, fn, shape):
    """The learner's result, if it is a Tensor of `shape`; else a CheckFailure saying what it
    is instead."""
    if got is None:
        raise CheckFailure(f"{fn.last_call} returned None. Did you forget a `return`?")
    expect(isinstance(got, Tensor), f"{fn.last_call} returned {a_kind(got)}; it "
                                    f"should be a Tensor, computed with Tensor operations.")
    expect(got.shape == shape, f"{fn.last_call} returned a Tensor of shape {got.shape}; "
                               f"expected shape {shape}.")
    return got


# ---------------------------------------------------------------------------------------------
# 3. Multi-head attention


def _numpy_split(x, n_head):
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).swapaxes(1, 2)


def _reference_mha(x, weights, n_head, mask, upstream):
    """tinyformer's MultiHeadAttention without biases, holding `weights` (float64): its output
    and the gradients of x and of each weight."""
    from tinyformer.attention import MultiHeadAttention
    mha = MultiHeadAttention(x.shape[-1], n_head, bias=False)
    params = dict(mha.named_parameters())
    layer_of = {"w_q": "q.weight", "w_k": "k.weight", "w_v": "v.weight", "w_o": "out.weight"}
    for name, layer in layer_of.items():
        params[layer].data = np.array(weights[name], dtype=np.float64)
    x_t = tensor64(x)
    out = mha(x_t, mask=mask)
    backward_through(out, upstream)
    grads = {"x": x_t.grad, **{name: params[layer].grad for name, layer in layer_of.items()}}
    return out.data, grads


def _numpy_mha(x, w, n_head, mask=None, project=True):
    q, k, v = (_numpy_split(x @ w[name], n_head) for name in ("w_q", "w_k", "w_v"))
    heads = numpy_attention(q, k, v, mask)                           # (B, n_head, T, d_head)
    B, _, T, _ = heads.shape
    merged = heads.swapaxes(1, 2).reshape(B, T, -1)                  # (B, T, C)
    return merged @ w["w_o"] if project else merged


def transposed(name: str) -> str:
    """The mistake of a weight `name` used transposed, as a mistakes entry describes it."""
    return (f"with {name} transposed: here a weight of shape (in, out) is used as it is, "
            f"x @ {name}, not transposed as PyTorch's nn.Linear weight (out, in) is")


def _mha_mistakes(x, w, n_head, mask):
    mistakes = [("without the output projection w_o", _numpy_mha(x, w, n_head, mask, False))]
    # The weights are square, so a transposed one runs: PyTorch's habit, x @ weight.T.
    mistakes += [(transposed(name), _numpy_mha(x, {**w, name: w[name].T}, n_head, mask))
                 for name in ("w_q", "w_k", "w_v", "w_o")]
    if n_head > 1:
        mistakes.append(("with a single head: split q, k and v into n_head heads",
                         _numpy_mha(x, w, 1, mask)))
    if mask is not None:
        mistakes.append(("ignoring the mask: pass it on to `attention`",
                         _numpy_mha(x, w, n_head)))
    return mistakes


def _check_mha(fn, x, weights, n_head, mask=None):
    upstream = np.random.default_rng(2).standard_normal(x.shape)
    expected, expected_grads = _reference_mha(x, weights, n_head, mask, upstream)
    inputs = {"x": tensor64(x), **{name: tensor64(w) for name, w in weights.items()}}
    got = fn(inputs["x"], inputs["w_q"], inputs["w_k"], inputs["w_v"], inputs["w_o"], n_head,
             mask)
    expect_output(got, expected, fn.last_call, _mha_mistakes(x, weights, n_head, mask))
    backward_through(got, upstream)
    expect_gradients(inputs, expected_grads, fn.last_call)


@exercise("multi_head_attention", "Multi-head attention", hints=[
    "split_heads: (B, T, C) -> (B, T, n_head, d_head) with reshape, then .swapaxes(1, 2) "
    "gives (B, n_head, T, d_head). A reshape straight to (B, n_head, T, d_head) has the right "
    "shape but puts the wrong numbers in each head.",
    "merge_heads is split_heads backwards: x.swapaxes(1, 2) is (B, T, n_head, d_head), then "
    "reshape to (B, T, n_head * d_head).",
    "multi_head_attention: project x into queries, keys and values with their weights, split "
    "each into heads, attend (every head on its own slice of the features), merge the heads "
    "back, and project with w_o.",
], forbid=["tinyformer.attention", "tinyformer.blocks"])
def check_multi_head_attention(learner: Learner) -> None:
    split = learner.function("split_heads")
    example = np.arange(8.0).reshape(1, 2, 4)             # the worked example of the lesson
    rng = np.random.default_rng(0)
    for x, n_head in ((example, 2), (rng.standard_normal((2, 3, 6)), 3),
                      (rng.standard_normal((2, 4, 8)), 2)):
        B, T, C = x.shape
        got = on_copies(split, Tensor(x, dtype=np.float64), n_head)
        d_head = C // n_head
        # (B, T, d_head, n_head) in place of (B, T, n_head, d_head): swapped as it is, or
        # moved on to the right shape, each "head" then holds every n_head-th feature.
        strided = x.reshape(B, T, d_head, n_head)
        features_apart = ("by reshaping to (B, T, d_head, n_head): the last two axes go the "
                          "other way round, (B, T, n_head, d_head), so that head h owns the "
                          "features h*d_head .. (h+1)*d_head - 1; then swap axes 1 and 2")
        expect_output(got, _numpy_split(x, n_head), split.last_call, [
            ("by reshaping straight to (B, n_head, T, d_head): reshape to (B, T, n_head, "
             "d_head) first, then swap axes 1 and 2", x.reshape(B, n_head, T, d_head)),
            (features_apart, strided.swapaxes(1, 2)),
            (features_apart, strided.transpose(0, 3, 1, 2))])

    merge = learner.function("merge_heads")
    for shape in ((1, 2, 2, 2), (2, 3, 4, 2), (2, 2, 3, 5)):
        heads = rng.standard_normal(shape)
        B, H, T, D = shape
        got = on_copies(merge, Tensor(heads, dtype=np.float64))
        expected = heads.swapaxes(1, 2).reshape(B, T, H * D)
        expect_output(got, expected, merge.last_call, [
            ("by reshaping straight to (B, T, C): swap axes 1 and 2 first, so that the heads "
             "of one position sit side by side", heads.reshape(B, T, H * D))])

    fn = learner.function("multi_head_attention")
    from tinyformer.attention import causal_mask
    for (B, T, C, n_head), mask in (((1, 2, 4, 2), None), ((2, 5, 8, 2), causal_mask(5)),
                                    ((2, 4, 8, 4), None)):
        x = rng.standard_normal((B, T, C))
        weights = {name: rng.standard_normal((C, C)) / np.sqrt(C)
                   for name in ("w_q", "w_k", "w_v", "w_o")}
        _check_mha(fn, x, weights, n_head, mask)
