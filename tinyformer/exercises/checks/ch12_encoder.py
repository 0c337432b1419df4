"""Checkers for chapter 12: the encoder and cross-attention (padding, the padding mask,
cross-attention with T_q != T_k, the encoder and decoder layers).

The references are the formulas of the exercise texts, computed with tinyformer's own attention
op (`scaled_dot_product_attention`) and tinyautograd's layer norm, from the weights handed to
the learner as arrays: they depend on what tinyformer's layers compute, never on how their
modules name their parts. Every wrong answer that matches a known mistake (a mask the wrong
way round or on the wrong axis, keys from the decoder, a causal encoder...) is named.
"""

from __future__ import annotations

import copy
from typing import Mapping

import numpy as np

from tinyautograd import ShapeError, Tensor, functional, no_grad

from ..catalogue import Question, exercise
from ..checking import (CheckFailure, Learner, a_kind, describe, expect, expect_equal,
                        expect_gradients, expect_left_as_they_were, on_copies)
from .ch06_attention import backward_through, expect_output, tensor64, transposed

# The chapter's "predict, then run" question (`tinyformer exercises predict 12`).
QUESTION = Question(code="""\
import numpy as np

ids = np.array([[5, 6, 0],
                [7, 0, 0]])                    # two sources, padded with id 0
mask = (ids != 0)[:, None, None, :]            # True on real tokens
scores = np.zeros((2, 4, 3, 3))                # (B, n_head, T_q, T_k)
print(mask.shape)
print(np.broadcast_shapes(mask.shape, scores.shape))
print(mask[1, 0, 0])
""", output="""\
(2, 1, 1, 3)
(2, 4, 3, 3)
[ True False False]
""", why=(
    'Indexing with None inserts axes of size 1: the mask is (B, 1, 1, T_k) and broadcasts over '
    'the heads and the queries, so no query of any head reads a padding key. The second source '
    'has one real token, so only its first key is allowed.'))

# ---------------------------------------------------------------------------------------------
# 1. Padding and the padding mask


def _expect_mask(got, expected, call, mistakes):
    """A boolean mask compared exactly; a wrong one that matches a known mistake is named."""
    if got is None:
        raise CheckFailure(f"{call} returned None. Did you forget a `return`?")
    expect(isinstance(got, np.ndarray), f"{call} returned {a_kind(got)}; return a "
                                        f"numpy array of dtype bool.")
    for description, wrong in mistakes:
        if got.shape == wrong.shape and got.dtype == bool and np.array_equal(got, wrong):
            raise CheckFailure(f"{call} returned a wrong mask: it is exactly what you get "
                               f"{description}.")
    expect(got.shape == expected.shape, f"{call} returned an array of shape {got.shape}; "
                                        f"expected {expected.shape} (B, 1, 1, T): one axis of "
                                        f"size 1 for the heads and one for the queries.")
    expect(got.dtype == bool, f"{call} returned an array of dtype {got.dtype}; a mask is "
                              f"boolean (`~` of an integer 1 is -2, not False).")
    wrong = np.argwhere(got != expected)
    if len(wrong):
        index = ", ".join(str(int(i)) for i in wrong[0])
        raise CheckFailure(f"{call} returned a wrong mask.\n    at [{index}]: expected "
                           f"{expected[tuple(wrong[0])]}, got {got[tuple(wrong[0])]}  "
                           f"({len(wrong)} wrong elements out of {got.size})")


@exercise("padding_mask", "Padding and the padding mask", hints=[
    "pad_batch: np.full makes the rectangle, B rows as long as the longest sequence, all "
    "pad_id (dtype np.int64); then each sequence is copied into the beginning of its row.",
    "padding_mask: ids != pad_id is (B, T), True on real tokens. Indexing with None adds an "
    "axis of size 1 where you put it.",
    "The mask must broadcast against scores of shape (B, n_head, T_q, T_k): line the shapes "
    "up from the right. Which axis of the scores stands for the keys?",
], forbid=["tinyformer.attention", "tinyformer.transformer", "tinyformer.bert"])
def check_padding_mask(learner: Learner) -> None:
    pad_batch = learner.function("pad_batch")
    for sequences, pad_id in (([[5, 6, 7], [8, 9]], 0), ([[1], [2, 3, 4, 5], [6, 7]], 9),
                              ([[4, 4], [4, 4]], 0)):
        got = on_copies(pad_batch, sequences, pad_id, advice=(
            "Copy each sequence into the new array rather than padding the lists themselves."))
        expected = np.full((len(sequences), max(map(len, sequences))), pad_id)
        for row, sequence in enumerate(sequences):
            expected[row, :len(sequence)] = sequence
        expect(isinstance(got, np.ndarray), f"{pad_batch.last_call} returned "
                                            f"{describe(got)}; return a numpy array.")
        expect(got.dtype.kind in "iu", f"{pad_batch.last_call} returned an array of dtype "
                                       f"{got.dtype}; ids are integers (dtype=np.int64).")
        at_start = np.full_like(expected, pad_id)
        for row, sequence in enumerate(sequences):
            at_start[row, at_start.shape[1] - len(sequence):] = sequence
        if not np.array_equal(at_start, expected) and np.array_equal(got, at_start):
            raise CheckFailure(f"{pad_batch.last_call} put the padding at the beginning of "
                               f"the short rows. Fill each row up at the end: every sequence "
                               f"starts at position 0, so its tokens keep their positions, "
                               f"and pad_id follows them.\n"
                               f"    expected: {describe(expected.tolist(), limit=40)}\n"
                               f"    got:      {describe(got.tolist(), limit=40)}")
        expect_equal(got.tolist(), expected.tolist(), pad_batch.last_call)

    padding_mask = learner.function("padding_mask")
    rng = np.random.default_rng(0)
    random_ids = rng.integers(0, 4, size=(3, 6))
    for ids, pad_id in ((np.array([[5, 6, 7], [8, 9, 0]]), 0),
                        (np.array([[2, 9, 9, 9], [1, 2, 3, 4], [9, 3, 9, 5]]), 9),
                        (random_ids, 2)):
        is_token = ids != pad_id
        B, T = ids.shape
        mistakes = [
            ("the wrong way round: True must mark the real tokens (ids != pad_id), the keys "
             "that may be attended", ~is_token[:, None, None, :]),
            ("with the tokens on the query axis, (B, 1, T, 1): then every real token may still "
             "attend the padding; the keys are the last axis", is_token[:, None, :, None]),
        ]
        if T > 1:
            mistakes.append(("without the two axes of size 1: a (B, T) mask does not line up "
                             "with scores (B, n_head, T_q, T_k)", is_token))
        if pad_id != 0:
            mistakes.append((f"with 0 written in for the padding id: compare with pad_id, "
                             f"{pad_id} here", (ids != 0)[:, None, None, :]))
        _expect_mask(padding_mask(ids, pad_id), is_token[:, None, None, :],
                     padding_mask.last_call, mistakes)


# ---------------------------------------------------------------------------------------------
# 2. Cross-attention: the reference, with the knobs of the usual mistakes


def reference_mha(x: Tensor, context: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, w_o: Tensor,
                  n_head: int, mask: np.ndarray | None = None,
                  values: Tensor | None = None) -> Tensor:
    """Multi-head attention, queries from x, keys and values from `context` (the values from
    `values` where given, a mistake to reproduce); Tensors in, Tensor out, through tinyformer's
    attention op."""
    from tinyformer.attention import scaled_dot_product_attention
    B, T, C = x.shape
    values = context if values is None else values

    def split(t):
        return t.reshape(B, t.shape[1], n_head, C // n_head).swapaxes(1, 2)

    heads = scaled_dot_product_attention(split(x @ w_q), split(context @ w_k),
                                         split(values @ w_v), mask)
    return heads.swapaxes(1, 2).reshape(B, T, C) @ w_o


def _as_tensors(*arrays):
    return [Tensor(a, dtype=np.float64) for a in arrays]


def _check_cross_attention(fn, B, T_q, T_k, C, n_head, with_mask, rng):
    x, memory = rng.standard_normal((B, T_q, C)), rng.standard_normal((B, T_k, C))
    weights = [rng.standard_normal((C, C)) / np.sqrt(C) for _ in range(4)]
    mask = None
    if with_mask:                               # the last keys of each sequence are padding
        lengths = rng.integers(1, T_k + 1, size=B)
        lengths[0] = T_k - 1
        mask = (np.arange(T_k)[None, :] < lengths[:, None])[:, None, None, :]
    upstream = rng.standard_normal((B, T_q, C))
    inputs = {"x": tensor64(x), "memory": tensor64(memory),
              **{name: tensor64(w) for name, w in zip(("w_q", "w_k", "w_v", "w_o"), weights)}}
    ref = {name: tensor64(t.data) for name, t in inputs.items()}
    expected = reference_mha(ref["x"], ref["memory"], ref["w_q"], ref["w_k"], ref["w_v"],
                             ref["w_o"], n_head, mask)
    backward_through(expected, upstream)
    with no_grad():
        X, M, *W = _as_tensors(x, memory, *weights)
        mistakes = [
            ("with the keys and values from x (the decoder) instead of from memory: "
             "cross-attention reads the encoder's output", reference_mha(X, X, *W, n_head)),
        ]
        if mask is not None:
            mistakes.append(("ignoring the mask: the memory's padding must get no weight",
                             reference_mha(X, M, *W, n_head)))
        # The weights are square, so a transposed one runs: PyTorch's habit, x @ weight.T.
        for i, name in enumerate(("w_q", "w_k", "w_v", "w_o")):
            swapped = _as_tensors(*(w.T if j == i else w for j, w in enumerate(weights)))
            mistakes.append((transposed(name), reference_mha(X, M, *swapped, n_head, mask)))
    mistakes = [(d, wrong.data) for d, wrong in mistakes]
    got = fn(inputs["x"], inputs["memory"], inputs["w_q"], inputs["w_k"], inputs["w_v"],
             inputs["w_o"], n_head, mask)
    if isinstance(got, Tensor) and got.shape == (B, T_k, C) and T_k != T_q:
        raise CheckFailure(f"{fn.last_call} returned a Tensor of shape {got.shape}: one row "
                           f"per memory position. The queries come from x, so the output has "
                           f"x's shape {(B, T_q, C)}.")
    expect_output(got, expected.data, fn.last_call, mistakes)
    backward_through(got, upstream)
    expect_gradients(inputs, {name: t.grad for name, t in ref.items()}, fn.last_call)


def _keys_and_values_apart(fn):
    """The next step when `fn` takes its keys and values from different sequences, which
    raises only where x and memory differ in length: run it where they do not, and compare
    with both ways of mixing them. Empty when it is neither."""
    rng = np.random.default_rng(1)
    x, memory = rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 3, 4))
    weights = [rng.standard_normal((4, 4)) / 2 for _ in range(4)]
    try:
        with no_grad():
            got = fn(*_as_tensors(x, memory, *weights), 2, None)
    except CheckFailure:
        return ""
    if not isinstance(got, Tensor) or got.shape != x.shape:
        return ""
    with no_grad():
        X, M, *W = _as_tensors(x, memory, *weights)
        for keys, values, source in ((X, M, "the keys from x and the values from memory"),
                                     (M, X, "the keys from memory and the values from x")):
            if np.allclose(got.data, reference_mha(X, keys, *W, 2, values=values).data):
                return (f"\n    Where x and memory have the same length it runs, and gives "
                        f"exactly what you get with {source}: keys and values both come from "
                        f"memory, the encoder's output.")
    return ""


@exercise("cross_attention", "Cross-attention", hints=[
    "It is chapter 6's multi-head attention with two inputs: q from x, k and v from memory. "
    "split_heads reads T from its argument, so it handles T_q and T_k alike.",
    "Check the shapes as you go: scores are (B, n_head, T_q, T_k), the output (B, T_q, C). "
    "The mask (B, 1, 1, T_k) goes to `attention` unchanged.",
    "Which of the two sequences asks the questions, and which one holds the answers? The one "
    "that asks gives the output its length.",
], forbid=["tinyformer.attention", "tinyformer.blocks", "tinyformer.transformer"])
def check_cross_attention(learner: Learner) -> None:
    fn = learner.function("cross_attention")
    rng = np.random.default_rng(0)
    # Without a mask first: a wrong source of keys then shows as wrong numbers, not as a mask
    # that does not fit.
    try:
        _check_cross_attention(fn, 2, 3, 5, 4, 2, False, rng)
    except CheckFailure as failure:
        # Keys and values from different sequences do not fit together: an error, raised in
        # the given `attention`, that does not say whose slip it is.
        if failure.raised is None:
            raise
        raise CheckFailure(f"{failure}{_keys_and_values_apart(fn)}") from None
    # The lesson's worked example: one head, C = 1, every weight 1, source position 2 hidden.
    x, memory = np.array([[[1.0], [2.0]]]), np.array([[[0.0], [1.0], [5.0]]])
    ones = [tensor64([[1.0]]) for _ in range(4)]
    mask = np.array([True, True, False])[None, None, None, :]
    got = on_copies(fn, tensor64(x), tensor64(memory), *ones, 1, mask)   # the mask is reused
    with no_grad():
        expected = reference_mha(*_as_tensors(x, memory), *_as_tensors(*[[[1.0]]] * 4), 1, mask)
        keys_from_x = reference_mha(*_as_tensors(x, x), *_as_tensors(*[[[1.0]]] * 4), 1)
        unmasked = reference_mha(*_as_tensors(x, memory), *_as_tensors(*[[[1.0]]] * 4), 1)
    expect_output(got, expected.data, fn.last_call, [
        ("with the keys and values from x (the decoder) instead of from memory",
         keys_from_x.data),
        ("ignoring the mask: the memory's padding must get no weight", unmasked.data)])
    for B, T_q, T_k, C, n_head, with_mask in ((2, 4, 3, 6, 3, True),
                                              (3, 1, 6, 8, 2, True)):
        _check_cross_attention(fn, B, T_q, T_k, C, n_head, with_mask, rng)


# ---------------------------------------------------------------------------------------------
# 3. The encoder and decoder layers


def _layer_weights(rng, C, d_ff, cross):
    w = {}
    for name in ("self",) + (("cross",) if cross else ()):
        for part in "qkvo":
            w[f"{name}_{part}"] = rng.standard_normal((C, C)) / np.sqrt(C)
    w.update(ff_w1=rng.standard_normal((C, d_ff)) / np.sqrt(C),
             ff_b1=0.3 * rng.standard_normal(d_ff),
             ff_w2=rng.standard_normal((d_ff, C)) / np.sqrt(d_ff),
             ff_b2=0.3 * rng.standard_normal(C))
    for number in (1, 2, 3) if cross else (1, 2):
        w[f"norm{number}_g"] = 1 + 0.3 * rng.standard_normal(C)
        w[f"norm{number}_b"] = 0.2 * rng.standard_normal(C)
    return w


def _sublayers(w, n_head):
    def attend(x, context, name, mask):
        return reference_mha(x, context, w[name + "_q"], w[name + "_k"], w[name + "_v"],
                             w[name + "_o"], n_head, mask)

    def ffn(x):
        return (x @ w["ff_w1"] + w["ff_b1"]).relu() @ w["ff_w2"] + w["ff_b2"]

    def norm(x, number):
        return functional.layer_norm(x, w[f"norm{number}_g"], w[f"norm{number}_b"])
    return attend, ffn, norm


def reference_encoder_layer(x: Tensor, w: Mapping[str, Tensor], n_head: int,
                            mask: np.ndarray | None, variant: str | None = None) -> Tensor:
    """The encoder layer; `variant` names a known mistake to reproduce instead."""
    from tinyformer.attention import causal_mask
    attend, ffn, norm = _sublayers(w, n_head)
    if variant == "causal":
        mask = mask & causal_mask(x.shape[1])
    elif variant == "no mask":
        mask = None
    if variant in ("pre", "pre first"):
        x = x + attend(norm(x, 1), norm(x, 1), "self", mask)
        return x + ffn(norm(x, 2)) if variant == "pre" else norm(x + ffn(x), 2)
    x = norm(x + attend(x, x, "self", mask), 1)
    return norm(x + ffn(x), 2)


def reference_decoder_layer(y: Tensor, memory: Tensor, w: Mapping[str, Tensor], n_head: int,
                            self_mask: np.ndarray | None, memory_mask: np.ndarray | None,
                            variant: str | None = None) -> Tensor:
    """The decoder layer; `variant` names a known mistake to reproduce instead."""
    attend, ffn, norm = _sublayers(w, n_head)

    def self_attention(y, number):
        mask = {"no causal": None, "masks swapped": memory_mask}.get(variant, self_mask)
        return norm(y + attend(y, y, "self", mask), number)

    def cross_attention(y, number):
        keys = y if variant == "cross keys from y" else memory
        mask = {"no memory mask": None, "cross self mask": self_mask,
                "masks swapped": self_mask}.get(variant, memory_mask)
        return norm(y + attend(y, keys, "cross", mask), number)

    if variant == "cross first":
        y = self_attention(cross_attention(y, 1), 2)
    else:
        y = cross_attention(self_attention(y, 1), 2)
    return norm(y + ffn(y), 3)


def _tensors(w):
    return {name: tensor64(a) for name, a in w.items()}


def _padded_mask(rng, B, T):
    lengths = rng.integers(2, T + 1, size=B)
    lengths[0] = T - 1
    is_token = np.arange(T)[None, :] < lengths[:, None]
    return is_token[:, None, None, :]


def _check_layer(fn, args, reference, variants, inputs, upstream, call_args, if_it_fails=None):
    """Compare output and gradients with the reference; name a mistake from `variants`.
    `if_it_fails`: a line added to the message when the call itself raises."""
    ref_inputs = {name: tensor64(t.data) for name, t in inputs.items()}
    expected = reference(*call_args(ref_inputs))
    backward_through(expected, upstream)
    with no_grad():
        plain = {name: Tensor(t.data, dtype=np.float64) for name, t in inputs.items()}
        mistakes = []
        for description, variant in variants:
            try:
                mistakes.append((description, reference(*call_args(plain), variant=variant).data))
            except ValueError:          # a mistake whose mask cannot fit these shapes
                pass
    # The very Tensors whose gradients are read, so not copies; they (and the masks) are used
    # again by the next check, so they must come back as they went in.
    before = copy.deepcopy(args)
    try:
        got = fn(*args)
    except CheckFailure as failure:
        if if_it_fails is None:
            raise
        raise CheckFailure(f"{failure}\n    {if_it_fails}") from None
    expect_left_as_they_were(fn, (before, {}), args, {})
    expect_output(got, expected.data, fn.last_call, mistakes)
    backward_through(got, upstream)
    checked = {name: t for name, t in inputs.items() if name in ("x", "y", "memory",
                                                                  "self_q", "cross_k")}
    expect_gradients(checked, {name: ref_inputs[name].grad for name in checked}, fn.last_call)


@exercise("encoder_decoder_layers", "The encoder layer and the decoder layer", hints=[
    "Each sub-layer is one line of the form x = norm(x + sublayer(x), w, number). The "
    "encoder has two such lines, the decoder three.",
    "multi_head_attention(x, context, w, name, n_head, mask): for self-attention the context "
    "is the stream itself; for cross-attention it is the encoder's memory.",
    "Match each attention with its mask by asking what it must not see: the encoder hides "
    "only the source padding, the decoder's self-attention also the future, its "
    "cross-attention the source padding.",
], forbid=["tinyformer.blocks", "tinyformer.attention", "tinyformer.transformer",
           "tinyformer.bert", "tinyformer.layers"])
def check_encoder_decoder_layers(learner: Learner) -> None:
    from tinyformer.attention import causal_mask
    rng = np.random.default_rng(0)
    B, T_src, T_tgt, C, n_head, d_ff = 2, 5, 4, 8, 2, 16

    encoder_layer = learner.function("encoder_layer")
    w = _tensors(_layer_weights(rng, C, d_ff, cross=False))
    x = tensor64(rng.standard_normal((B, T_src, C)))
    src_mask = _padded_mask(rng, B, T_src)
    inputs = {"x": x, **w}
    _check_layer(encoder_layer, (x, w, n_head, src_mask),
                 lambda x, w, variant=None: reference_encoder_layer(x, w, n_head, src_mask,
                                                                    variant),
                 [("with the pre-LN order: this exercise follows the paper, "
                   "x = norm(x + sublayer(x))", "pre"),
                  ("with the first sub-layer in the pre-LN order, x + attention(norm(x)), "
                   "and the second post-LN: here both are post-LN, x = norm(x + sublayer(x))",
                   "pre first"),
                  ("with a causal mask: the encoder reads the whole source at once, so only "
                   "the padding is hidden", "causal"),
                  ("ignoring the padding mask: pass it to the self-attention", "no mask")],
                 inputs, rng.standard_normal((B, T_src, C)),
                 lambda t: (t["x"], {k: v for k, v in t.items() if k != "x"}))
    # Behaviour the numbers above may not show: the encoder sees the whole (unpadded) source,
    # later positions included, and never the padding.
    with no_grad():
        xs = rng.standard_normal((1, T_src, C))
        mask = np.array([[[[True] * (T_src - 1) + [False]]]])
        plain = {k: Tensor(v.data, dtype=np.float64) for k, v in w.items()}
        base = encoder_layer(Tensor(xs, dtype=np.float64), plain, n_head, mask).data
        later = xs.copy()
        later[0, T_src - 2] += 3.0                  # the last real token changes
        moved = encoder_layer(Tensor(later, dtype=np.float64), plain, n_head, mask).data
        expect(not np.allclose(base[0, 0], moved[0, 0]),
               f"{encoder_layer.last_call}: changing the last real source token left the "
               f"output at position 0 unchanged: the encoder must see the whole source, later "
               f"positions too. Is a causal mask hiding them? Only the padding is hidden.")
        padded = xs.copy()
        padded[0, T_src - 1] += 3.0                 # the padding changes
        moved = encoder_layer(Tensor(padded, dtype=np.float64), plain, n_head, mask).data
        expect(np.allclose(base[0, :T_src - 1], moved[0, :T_src - 1]),
               f"{encoder_layer.last_call}: changing a padding position changed the outputs "
               f"of the real tokens: pass the mask to the self-attention.")

    decoder_layer = learner.function("decoder_layer")
    w = _tensors(_layer_weights(rng, C, d_ff, cross=True))
    y = tensor64(rng.standard_normal((B, T_tgt, C)))
    memory = tensor64(rng.standard_normal((B, T_src, C)))
    memory_mask = _padded_mask(rng, B, T_src)
    self_mask = causal_mask(T_tgt) & _padded_mask(rng, B, T_tgt)
    inputs = {"y": y, "memory": memory, **w}
    # First with no padding in the source (memory_mask None), so that cross-attention keys
    # taken from the wrong stream show as wrong numbers, then with it.
    for source_mask in (None, memory_mask):
        _check_decoder_layer(decoder_layer, y, memory, w, n_head, self_mask, source_mask,
                             inputs, rng)


def _check_decoder_layer(decoder_layer, y, memory, w, n_head, self_mask, memory_mask, inputs,
                         rng):
    for t in inputs.values():
        t.grad = None
    try:
        _check_decoder_layer_numbers(decoder_layer, y, memory, w, n_head, self_mask,
                                     memory_mask, inputs, rng)
    except CheckFailure as failure:
        if not isinstance(failure.raised, ShapeError):
            raise
        named = _self_mask_in_the_cross_attention(decoder_layer, y, memory, w, n_head,
                                                  self_mask)
        if named is None:
            raise
        T, T_src = y.shape[1], memory.shape[1]
        raise CheckFailure(
            f"{failure}\n    With a source as long as the target it runs, and gives exactly "
            f"what {named}. self_mask fits the self-attention's (T, T) = {(T, T)} scores, not "
            f"the cross-attention's (T, T_src) = {(T, T_src)}.", raised=failure.raised) from None


def _self_mask_in_the_cross_attention(decoder_layer, y, memory, w, n_head, self_mask):
    """What the learner's decoder_layer does with the masks, where a memory cut to the
    target's length (which self_mask then fits as well) shows it: a sentence saying so, or
    None."""
    T = y.shape[1]
    named = {"cross self mask": "a cross-attention under self_mask gives: the cross-attention's "
                                "mask is memory_mask",
             "masks swapped": "the two masks swapped give: the self-attention's mask is "
                              "self_mask, the cross-attention's memory_mask"}
    with no_grad():
        plain = {name: Tensor(t.data, dtype=np.float64) for name, t in w.items()}
        args = (Tensor(y.data, dtype=np.float64), Tensor(memory.data[:, :T], dtype=np.float64),
                plain, n_head, self_mask, None)
        right = reference_decoder_layer(*args).data
        try:
            got = decoder_layer(*args)
        except CheckFailure:
            return None
        if not (isinstance(got, Tensor) and got.shape == right.shape):
            return None
        for variant, sentence in named.items():
            wrong = reference_decoder_layer(*args, variant=variant).data
            if np.allclose(got.data, wrong, atol=1e-6) and not np.allclose(wrong, right):
                return sentence
    return None


def _check_decoder_layer_numbers(decoder_layer, y, memory, w, n_head, self_mask, memory_mask,
                                 inputs, rng):
    _check_layer(decoder_layer, (y, memory, w, n_head, self_mask, memory_mask),
                 lambda y, memory, w, variant=None: reference_decoder_layer(
                     y, memory, w, n_head, self_mask, memory_mask, variant),
                 [("with the cross-attention's keys and values from y, the decoder's own "
                   "stream: cross-attention reads the encoder's memory", "cross keys from y"),
                  ("with the cross-attention first: the decoder attends to itself first, "
                   "then to the source", "cross first"),
                  ("without the causal mask in the self-attention: position t would read the "
                   "token it must predict", "no causal"),
                  ("without the memory's padding mask in the cross-attention",
                   "no memory mask")],
                 inputs, rng.standard_normal(y.shape),
                 lambda t: (t["y"], t["memory"],
                            {k: v for k, v in t.items() if k not in ("y", "memory")}),
                 if_it_fails=None if memory_mask is None else (
                     "It ran with memory_mask=None and fails with the source's padding mask: "
                     "the self-attention's scores are (B, n_head, T, T), the "
                     "cross-attention's (B, n_head, T, T_src). Is each attention given its own "
                     "mask?"))
