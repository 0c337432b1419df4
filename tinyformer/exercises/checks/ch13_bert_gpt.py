"""Checkers for chapter 13: GPT, BERT and the encoder-decoder (the masked-language-model loss,
and what each family's attention masks allow).

The references are the formulas of the exercise texts, in numpy: nothing here depends on how
tinyformer's models are written. A mask is judged by what it allows once broadcast against the
scores (B, n_head, T_q, T_k), as attention uses it, so any shape that broadcasts right is
right. Every wrong answer that matches a known mistake is named.
"""

from __future__ import annotations

import numpy as np

from tinyautograd import Tensor

from ..catalogue import Question, exercise
from ..checking import (CheckFailure, Learner, describe, expect, expect_equal, expect_gradients,
                        on_copies)

# The chapter's "predict, then run" question (`tinyformer exercises predict 13`).
QUESTION = Question(code="""\
import numpy as np

p_right = np.array([0.9, 0.5, 0.9, 0.25])      # the model's probability of the right token
hidden = np.array([False, True, False, True])  # BERT hid only positions 1 and 3
loss = -np.log(p_right[hidden])
print(round(loss.mean(), 3))
print(round(loss.sum() / len(p_right), 3))
""", output="""\
1.04
0.52
""", why=(
    'The masked LM loss averages over the hidden positions only: (-ln 0.5 - ln 0.25) / 2 = 1.04. '
    'Dividing by all four positions would halve it, and the loss would shrink whenever fewer '
    'tokens are hidden, which says nothing about the model.'))

# ---------------------------------------------------------------------------------------------
# 1. The masked-language-model loss


def _log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def reference_mlm_loss(logits: np.ndarray, targets: np.ndarray,
                       ignore_index: int) -> tuple[float, np.ndarray]:
    """(loss, d loss / d logits) of the mean cross-entropy over the counted positions."""
    log_probs = _log_softmax(logits)
    counted = targets != ignore_index
    rows, cols = np.nonzero(counted)
    loss = -log_probs[rows, cols, targets[rows, cols]].mean()
    grad = np.exp(log_probs)
    grad[rows, cols, targets[rows, cols]] -= 1.0
    grad *= counted[..., None] / counted.sum()
    return loss, grad


def _mlm_mistakes(logits, targets, ignore_index):
    """(description, the loss that mistake gives) for the usual mistakes of the loss."""
    log_probs = _log_softmax(logits)
    counted = targets != ignore_index
    rows, cols = np.nonzero(counted)
    picked = log_probs[rows, cols, targets[rows, cols]]
    every = np.take_along_axis(log_probs, np.where(counted, targets, -1)[..., None],
                               axis=-1)[..., 0]
    # Counting the ignored positions with target -1, the last token. In the worked example
    # their logits are equal, so any target gives that loss; elsewhere it is what an
    # ignore_index of -1 gives when used as an index.
    last = " (as an index, -1 is the last token)" if ignore_index == -1 else ""
    mistakes = [
        ("dividing by every position, B * T, instead of by the number of hidden ones",
         -picked.sum() / targets.size),
        ("summing instead of averaging over the hidden positions", -picked.sum()),
        ("without the minus sign: the loss is MINUS the mean log-probability", picked.mean()),
        (f"counting the positions whose target is ignore_index ({ignore_index} here) too, "
         f"whatever target they were given{last}: the counted positions are only those with "
         f"targets != ignore_index", -every.mean()),
    ]
    # The log-probabilities are each position's, over the vocabulary: the last axis.
    for wrong, axis in [(_log_softmax(logits, axis=1), "over the positions (axis 1)"),
                        (_log_softmax(logits, axis=0), "over the batch (axis 0)")]:
        mistakes.append((f"taking the log_softmax {axis} instead of over the vocabulary, the "
                         f"last axis (axis=-1): each position's own V scores make its "
                         f"probabilities", -wrong[rows, cols, targets[rows, cols]].mean()))
    mistakes.append(("picking the raw logits, without a log_softmax: the loss is minus the "
                     "mean LOG-PROBABILITY of the targets", -logits[rows, cols,
                                                                   targets[rows, cols]].mean()))
    per_row = [-log_probs[b, counted[b], targets[b, counted[b]]].mean()
               for b in range(len(targets)) if counted[b].any()]
    if len(per_row) > 1:
        mistakes.append(("averaging each sequence's hidden positions, then the sequences: a "
                         "sequence with fewer hidden tokens then weighs more; average over all "
                         "the hidden positions of the batch at once", float(np.mean(per_row))))
    zero = counted & (targets == 0)
    if zero.any() and (counted & ~zero).any():
        keep = counted & ~zero
        r, c = np.nonzero(keep)
        mistakes.append(("skipping the hidden positions whose target is token 0: 0 is a token "
                         "id like any other; only ignore_index marks a position to skip",
                         -log_probs[r, c, targets[r, c]].mean()))
    return mistakes


def _check_mask_tokens(mask_tokens, ids, hidden, mask_id, ignore_index):
    got = on_copies(mask_tokens, ids, hidden, mask_id, ignore_index,
                    advice="Build new arrays for the inputs and the targets: np.where "
                           "makes one.")
    call = mask_tokens.last_call
    expect(isinstance(got, tuple) and len(got) == 2,
           f"{call} returned {describe(got)}; return the pair (inputs, targets).")
    inputs, targets = got
    for name, value in (("inputs", inputs), ("targets", targets)):
        expect(isinstance(value, np.ndarray) and value.dtype.kind in "iu",
               f"{call} returned {name} = {describe(value)}; return an integer numpy array "
               f"(dtype np.int64): they are token ids.")
    want_inputs = np.where(hidden, mask_id, ids)
    want_targets = np.where(hidden, ids, ignore_index)
    if inputs.shape == ids.shape:
        if np.array_equal(inputs, ids):
            raise CheckFailure(f"{call} returned inputs equal to ids: the hidden tokens must be "
                               f"replaced by mask_id, or the model reads the answer.")
        if np.array_equal(inputs, np.where(hidden, ids, mask_id)):
            raise CheckFailure(f"{call} returned inputs masked the wrong way round: mask_id "
                               f"goes where `hidden` is True.")
    expect_equal(inputs.tolist(), want_inputs.tolist(), call, what="returned inputs that are")
    if targets.shape == ids.shape and np.array_equal(targets, ids):
        raise CheckFailure(f"{call} returned targets equal to ids: every position not hidden "
                           f"must hold ignore_index ({ignore_index}), so that the loss skips it.")
    expect_equal(targets.tolist(), want_targets.tolist(), call,
                 what="returned targets that are")


def _check_mlm_loss(masked_lm_loss, logits, targets, ignore_index):
    tensor = Tensor(logits, requires_grad=True, dtype=np.float64)
    got = masked_lm_loss(tensor, targets, ignore_index)
    call = masked_lm_loss.last_call
    expected, grad = reference_mlm_loss(logits, targets, ignore_index)
    expect(isinstance(got, Tensor), f"{call} returned {describe(got)}; return a Tensor, "
                                    f"computed with Tensor operations so that gradients flow "
                                    f"back to the logits.")
    expect(got.size == 1, f"{call} returned a Tensor of shape {got.shape}; the loss is one "
                          f"number (shape ()).")
    value = float(got.data.reshape(()))
    if not np.isclose(value, expected, rtol=1e-5, atol=1e-7):
        for description, wrong in _mlm_mistakes(logits, targets, ignore_index):
            if np.isclose(value, wrong, rtol=1e-5, atol=1e-7):
                raise CheckFailure(f"{call} returned {value:.6g}, expected {expected:.6g}: "
                                   f"that is what you get {description}.")
        raise CheckFailure(f"{call} returned {value:.6g}, expected {expected:.6g}.")
    if not got.requires_grad:
        raise CheckFailure(f"{call} returned a loss that is cut off from the logits (it does "
                           f"not require grad): stay with Tensor operations, not .data or "
                           f"numpy.")
    got.reshape(()).backward()
    expect_gradients({"logits": tensor}, {"logits": grad}, call)


@exercise("masked_lm_loss", "The masked-language-model loss", hints=[
    "mask_tokens: np.where picks, position by position, one of two values by `hidden`: the "
    "inputs take mask_id where hidden and the id elsewhere, the targets the id where hidden "
    "and ignore_index elsewhere. Give both dtype np.int64.",
    "masked_lm_loss: the log-probabilities, a log_softmax along the last axis, are (B, T, V). "
    "np.nonzero of the (B, T) booleans that say which positions count gives two index "
    "arrays, the b and the t of every counted position.",
    "Indexing a Tensor with three index arrays (the b's, the t's, and the target at each of "
    "those positions) picks one number per counted position, and gradients flow through it. "
    "Which count divides their sum?",
], forbid=["tinyautograd.functional", "tinyformer.bert", "tinyformer.jobs"])
def check_masked_lm_loss(learner: Learner) -> None:
    mask_tokens = learner.function("mask_tokens")
    rng = np.random.default_rng(0)
    # The worked example, then token 0 hidden and another ignore_index, then a random batch
    # with a row where nothing is hidden.
    random_ids = rng.integers(0, 9, size=(3, 7))
    random_hidden = rng.random((3, 7)) < 0.3
    random_hidden[0] = False
    random_hidden[1, 2] = True
    for ids, hidden, mask_id, ignore_index in (
            (np.array([[1, 0, 0, 1]]), np.array([[False, True, False, True]]), 2, -100),
            (np.array([[0, 3, 0], [2, 0, 1]]), np.array([[True, True, False],
                                                         [False, False, True]]), 4, -1),
            (random_ids, random_hidden, 9, -100)):
        _check_mask_tokens(mask_tokens, ids, hidden, mask_id, ignore_index)

    masked_lm_loss = learner.function("masked_lm_loss")
    example = np.array([[[0, 0], [np.log(3), 0], [0, 0], [0, np.log(7)]]])
    _check_mlm_loss(masked_lm_loss, example, np.array([[-100, 0, -100, 1]]), -100)
    for B, T, V, ignore_index in ((2, 5, 6, -100), (3, 4, 5, -1), (1, 6, 4, -100)):
        logits = 2 * rng.standard_normal((B, T, V))
        targets = rng.integers(0, V, size=(B, T))
        counted = rng.random((B, T)) < 0.4
        counted[0, 0] = True                 # at least one hidden position ...
        targets[0, 0] = 0                    # ... with the target token 0
        counted[-1, -1] = False              # and at least one ignored one
        if counted.sum() < 2:
            counted[-1, 0] = True
        _check_mlm_loss(masked_lm_loss, logits, np.where(counted, targets, ignore_index),
                        ignore_index)
    everything = rng.integers(0, 5, size=(2, 3))        # every position hidden: plain CE
    _check_mlm_loss(masked_lm_loss, rng.standard_normal((2, 3, 5)), everything, -100)
    # An ignore_index that is a token id, as a pad id is (torch's may be any id, not only a
    # negative one): the last of the vocabulary, never a hidden position's target.
    V = 5
    targets = rng.integers(0, V - 1, size=(2, 4))
    counted = rng.random((2, 4)) < 0.5
    counted[0, 0], counted[-1, -1] = True, False
    _check_mlm_loss(masked_lm_loss, 2 * rng.standard_normal((2, 4, V)),
                    np.where(counted, targets, V - 1), V - 1)
    _check_mlm_loss_far_apart(masked_lm_loss)


def _check_mlm_loss_far_apart(masked_lm_loss):
    """Logits 1000 apart, as a sure model gives: the probability of the target at [0, 0] is
    exp(-1000), 0 in float64, yet its log-probability, -1000, is an ordinary number."""
    logits = np.array([[[0.0, 1000.0, 0.0], [-500.0, 0.0, 500.0]]])
    targets = np.array([[0, 2]])
    got = masked_lm_loss(Tensor(logits, requires_grad=True, dtype=np.float64), targets, -100)
    if isinstance(got, Tensor) and got.size == 1 and not np.isfinite(got.data).all():
        raise CheckFailure(f"{masked_lm_loss.last_call} (logits far apart, as a model sure of "
                           f"itself gives) returned {float(got.data.reshape(()))}, expected "
                           f"500: the probability of the target at [0, 0] rounds to 0, and its "
                           f"log to -inf. Compute the log-probabilities without going through "
                           f"probabilities that can round to 0.")
    _check_mlm_loss(masked_lm_loss, logits, targets, -100)


# ---------------------------------------------------------------------------------------------
# 2. What each mask allows


def _allowed(got, scores_shape, call, mistakes, misfit=None):
    """What a mask allows at every (b, 0, q, k) of the scores, or a CheckFailure saying why
    it cannot be a mask for them: a mask that does not broadcast but is exactly a known
    mistake is named by that mistake, since its axes are right and what it holds is wrong;
    `misfit`, where given, says what else is wrong with one that does not broadcast."""
    if got is None:
        raise CheckFailure(f"{call} returned None. Did you forget a `return`?")
    expect(isinstance(got, np.ndarray), f"{call} returned {describe(got)}; return a numpy "
                                        f"array of dtype bool.")
    expect(got.dtype == bool, f"{call} returned an array of dtype {got.dtype}; a mask is "
                              f"boolean (True = may attend).")
    try:
        return np.broadcast_to(got, scores_shape)
    except ValueError:
        for description, wrong in mistakes:
            if got.shape == np.shape(wrong) and np.array_equal(got, wrong):
                raise CheckFailure(f"{call} returned a wrong mask of shape {got.shape}: it is "
                                   f"exactly what you get {description}.") from None
        if misfit:
            raise CheckFailure(f"{call} returned a mask of shape {got.shape}, {misfit}.") \
                from None
        raise CheckFailure(f"{call} returned a mask of shape {got.shape}, which does not "
                           f"broadcast against scores of shape (B, n_head, T_q, T_k) = "
                           f"{scores_shape[:1] + ('n_head',) + scores_shape[2:]}: numpy lines "
                           f"shapes up from the right, so the keys are the last axis and the "
                           f"queries the one before.") from None


def _expect_allows(got, expected, call, mistakes, misfit=None):
    """The mask `got` must allow exactly what `expected` (B, 1, T_q, T_k) allows; a wrong one
    that matches a known mistake is named, any other by its first wrong query and key."""
    allowed = _allowed(got, expected.shape, call, mistakes, misfit)
    if np.array_equal(allowed, expected):
        return
    for description, wrong in mistakes:
        if (_broadcasts(wrong, expected.shape)
                and np.array_equal(allowed, np.broadcast_to(wrong, expected.shape))):
            raise CheckFailure(f"{call} returned a wrong mask: it is exactly what you get "
                               f"{description}.")
    b, _, q, k = (int(i) for i in np.argwhere(allowed != expected)[0])
    verb = "lets" if allowed[b, 0, q, k] else "stops"
    should = "must not" if allowed[b, 0, q, k] else "must"
    raise CheckFailure(f"{call} returned a wrong mask: it {verb} query {q} of sequence {b} "
                       f"read key {k}, which it {should} ({int((allowed != expected).sum())} "
                       f"wrong of {expected.size}).")


def _causal(T):
    return np.tril(np.ones((T, T), dtype=bool))[None, None]


def _keys(ids, pad_id):
    return (ids != pad_id)[:, None, None, :]


def _queries(ids, pad_id):
    return (ids != pad_id)[:, None, :, None]


@exercise("attention_masks", "What each mask allows: GPT, BERT, the encoder-decoder", hints=[
    "The causal pattern is chapter 6's causal mask, the lower triangle with its diagonal "
    "(np.tril, of booleans); ids != pad_id marks the real tokens. Indexing with None adds an "
    "axis of size 1 where you put it.",
    "A mask broadcasts against the scores (B, n_head, T_q, T_k): put the padding on the key "
    "axis, the last one. `&` combines two masks into what both allow.",
    "For each family ask two questions: may a query read what comes after it, and which "
    "sequence's padding can its keys hold?",
], forbid=["tinyformer.attention", "tinyformer.gpt", "tinyformer.bert",
           "tinyformer.transformer"])
def check_attention_masks(learner: Learner) -> None:
    rng = np.random.default_rng(0)
    # (source, target, pad_id) batches: the worked example; B != T and T_src != T_tgt, with
    # padding of different lengths; random ones of equal lengths, where a causal cross mask
    # broadcasts, padded with 9 and holding the token 0.
    cases = [(np.array([[7, 0]]), np.array([[5, 6, 0]]), 0),
             (np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 2]]), np.array([[1, 2, 0], [3, 4, 5]]), 0),
             (np.array([[4, 4, 0, 0], [1, 2, 3, 0], [5, 6, 7, 8]]),
              np.array([[1, 0, 0, 0], [2, 3, 0, 0], [4, 5, 6, 0]]), 0)]
    random_src = rng.integers(0, 9, size=(2, 6))
    random_src[0, 4:] = 9
    random_src[1, 0] = 0
    random_tgt = rng.integers(0, 9, size=(2, 6))
    random_tgt[1, 3:] = 9
    random_tgt[0, 1] = 0
    cases.append((random_src, random_tgt, 9))

    gpt_mask = learner.function("gpt_mask")
    for _, ids, pad_id in cases:
        B, T = ids.shape
        expected = np.broadcast_to(_causal(T), (B, 1, T, T))
        _expect_allows(gpt_mask(ids), expected, gpt_mask.last_call, [
            ("the wrong way round: True must mark the keys at or before the query (np.tril), "
             "the ones GPT may read", ~_causal(T)),
            ("without the diagonal: a token may read itself (k = 0 in np.tril)",
             np.tril(np.ones((T, T), dtype=bool), k=-1)[None, None]),
            ("with the padding hidden too: GPT's windows are never padded, so its mask is "
             "causal only (here a pad id is just a token)", _causal(T) & _keys(ids, pad_id)),
        ])

    bert_mask = learner.function("bert_mask")
    for ids, pad_id in ([(tgt, pad_id) for _, tgt, pad_id in cases]
                        + [(src, pad_id) for src, _, pad_id in cases]):
        B, T = ids.shape
        expected = np.broadcast_to(_keys(ids, pad_id), (B, 1, T, T))
        _expect_allows(bert_mask(ids, pad_id), expected, bert_mask.last_call, [
            ("with a causal mask: BERT reads both sides of every token; only the padding is "
             "hidden", _causal(T) & _keys(ids, pad_id)),
            ("the wrong way round: True must mark the real tokens (ids != pad_id)",
             ~_keys(ids, pad_id)),
            ("with the padding on the query axis, (B, 1, T, 1): then real tokens still read "
             "the padding; the keys are the last axis", _queries(ids, pad_id)),
            ("without hiding the padding", np.ones((B, 1, T, T), dtype=bool)),
            *_zero_for_pad_id(pad_id, _keys(ids, 0)),
        ])

    decoder_self_mask = learner.function("decoder_self_mask")
    for _, ids, pad_id in cases:
        B, T = ids.shape
        expected = np.broadcast_to(_causal(T) & _keys(ids, pad_id), (B, 1, T, T))
        _expect_allows(decoder_self_mask(ids, pad_id), expected, decoder_self_mask.last_call, [
            ("with the causal mask only: a batch of targets is padded, so hide the padding "
             "keys too", _causal(T)),
            ("with the padding mask only: the decoder predicts the next target token, so it "
             "must not read it; make it causal too", _keys(ids, pad_id)),
            ("with the padding on the query axis, (B, 1, T, 1)",
             _causal(T) & _queries(ids, pad_id)),
            ("with `|` instead of `&`: a key must be allowed by both masks",
             _causal(T) | _keys(ids, pad_id)),
        ])

    cross_mask = learner.function("cross_mask")
    for src, tgt, pad_id in cases:
        B, T_src, T_tgt = len(src), src.shape[1], tgt.shape[1]
        expected = np.broadcast_to(_keys(src, pad_id), (B, 1, T_tgt, T_src))
        mistakes = [
            ("from the target's padding: the keys of cross-attention are the SOURCE's tokens",
             _keys(tgt, pad_id)),
            ("with the source's padding on the query axis: the queries are the target's",
             _queries(src, pad_id)),
            ("without hiding the source's padding", np.ones((B, 1, T_tgt, T_src), dtype=bool)),
            ("with a causal mask: the whole source is known before the decoder starts, so "
             "every target position may read all of it",
             np.tril(np.ones((T_tgt, T_src), dtype=bool))[None, None] & _keys(src, pad_id)),
            *_zero_for_pad_id(pad_id, _keys(src, 0)),
        ]
        got = cross_mask(src, tgt, pad_id)
        # A mask whose keys have the target's length was built from the target: its axes may
        # well be right, so the note is about which sequence the keys are.
        from_target = (isinstance(got, np.ndarray) and got.ndim > 0
                       and got.shape[-1] == T_tgt != T_src)
        misfit = (f"whose last axis, the keys, has the target's length {T_tgt}: the keys of "
                  f"cross-attention are the SOURCE's tokens ({T_src} here), so build it from "
                  f"src_ids" if from_target else None)
        _expect_allows(got, expected, cross_mask.last_call, mistakes, misfit)


def _zero_for_pad_id(pad_id, wrong):
    """The mistake of a mask that takes 0 for the padding id, where pad_id is another one."""
    return [] if pad_id == 0 else [(f"with 0 written in for the padding id: compare with "
                                    f"pad_id, {pad_id} here", wrong)]


def _broadcasts(array, shape):
    try:
        np.broadcast_to(array, shape)
        return True
    except ValueError:
        return False
