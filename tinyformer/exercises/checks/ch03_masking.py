"""Checkers for chapter 3: masking as attention (a selective mask over the skip features of
chapter 2, then the same lookup written as Q K^T), and the bridge to a Transformer's layers:
chapter 2's second-order model as a ReLU feature layer and a matrix product."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..catalogue import Question, exercise
from ..checking import Learner, describe, expect, expect_array, on_copies
from .ch02_counting import (LONG_CORPUS, SHORT_CORPUS, best_word, expect_table, expect_word,
                            normalise, random_corpus, reference_pair_counts,
                            reference_skip_weights, vocabulary)
from .ch08_training import _expect_numpy as expect_numpy

# The chapter's "predict, then run" question (`tinyformer exercises predict 3`).
QUESTION = Question(code="""\
import numpy as np

ids = np.array([0, 1, 0, 2])            # the tokens a, b, a, c
Q = np.eye(3)[ids]                      # (4, 3): one-hot queries
K = np.eye(3)[ids]                      # (4, 3): one-hot keys
print(np.tril(Q @ K.T, k=-1))           # query t against every earlier key s < t
""", output="""\
[[0. 0. 0. 0.]
 [0. 0. 0. 0.]
 [1. 0. 0. 0.]
 [0. 0. 0. 0.]]
""", why=(
    "Q @ K.T is 1 where a query and a key are the same token, and np.tril(..., k=-1) keeps only "
    "the earlier keys: position 2 (the second a) finds the first a, and no other position has an "
    'earlier copy of itself. A lookup done by a matrix product is what attention is.'))


def reference_mask(weights: np.ndarray) -> np.ndarray:
    return (weights.max(axis=-1) > 0.999).astype(float).T        # [current x, earlier w]


def reference_masked_vote(context: Sequence[str], weights: np.ndarray, mask_table: np.ndarray,
                          vocab: Sequence[str]) -> np.ndarray:
    x = vocab.index(context[-1])
    earlier = np.zeros(len(vocab))
    earlier[[vocab.index(w) for w in context[:-1]]] = 1.0
    return (earlier * mask_table[x]) @ weights[:, x, :]


def _masked_vote_mistakes(context: Sequence[str], weights: np.ndarray, mask_table: np.ndarray,
                          vocab: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """(description, the votes that mistake gives) for the usual slips of masked_vote."""
    x = vocab.index(context[-1])
    repeated = np.zeros(len(vocab))
    np.add.at(repeated, [vocab.index(w) for w in context[:-1]], 1.0)
    with_current = np.zeros(len(vocab))
    with_current[[vocab.index(w) for w in context]] = 1.0
    return [("adding 1 for each time an earlier word appears: a word seen twice still votes "
             "once, so set its 1.0 rather than add it",
             (repeated * mask_table[x]) @ weights[:, x, :]),
            ("letting the current word vote as an earlier word too: the earlier words are "
             "context[:-1]", (with_current * mask_table[x]) @ weights[:, x, :])]


def one_hot(ids: ArrayLike, vocab_size: int) -> np.ndarray:
    return np.eye(vocab_size)[np.asarray(ids)]


def reference_scores(ids: np.ndarray, mask_table: np.ndarray) -> np.ndarray:
    T = len(ids)
    return mask_table[np.ix_(ids, ids)] * np.tril(np.ones((T, T)), k=-1)


@exercise("selective_mask", "A selective mask: let only the informative features vote", hints=[
    "informative_mask: weights.max(axis=-1) has shape (V, V) and is indexed [w, x]; the mask "
    "table is indexed [x, w], so transpose it (.T) at the end.",
    "A feature is informative when it decides the next word: the largest of its weights over "
    "the next words is exactly 1.0. masked_vote: x is the current word's index, and the "
    "earlier words become a 0/1 vector of length V.",
    "Set (don't add) a 1.0 for each earlier word: a word seen twice still votes once. The "
    "current word's row of the mask table switches off the useless earlier words, and what is "
    "left weighs the rows of weights[:, x, :]: one vector-matrix product.",
])
def check_selective_mask(learner: Learner) -> None:
    informative_mask = learner.function("informative_mask")
    for sentences in (LONG_CORPUS, random_corpus(np.random.default_rng(9))):
        vocab = vocabulary(sentences)
        weights = reference_skip_weights(sentences, vocab)
        expected = reference_mask(weights)
        got = on_copies(informative_mask, weights)
        expect_table(got, expected, informative_mask.last_call,
                     lambda i, v=vocab: f"[{i[0]}, {i[1]}] is the mask entry for the earlier "
                     f"word {v[i[1]]!r} when {v[i[0]]!r} is the current word",
                     [("without the transpose (.T): the max over the last axis gives one row "
                       "per earlier word, and the mask has one row per current word",
                       expected.T)])
        # The right entries as booleans: numpy would mostly take them for 0 and 1, but the
        # docstring promises numbers, and `1 - mask` or `-mask` on booleans is an error.
        dtype = np.asarray(got).dtype
        what_to_do = ("turn the comparison's True and False into 1.0 and 0.0" if dtype.kind == "b"
                      else "make its entries floats")
        expect(dtype.kind == "f",
               f"{informative_mask.last_call} returned the right entries as an array of "
               f"dtype {dtype}; the mask is a float array of 0.0 and 1.0, as the docstring "
               f"says: {what_to_do}.")

    masked_vote = learner.function("masked_vote")
    predict_next = learner.function("predict_next")
    vocab = vocabulary(LONG_CORPUS)
    weights = reference_skip_weights(LONG_CORPUS, vocab)
    mask_table = reference_mask(weights)
    contexts = [sentence.split()[:10] for sentence in LONG_CORPUS]      # ends at "ran"
    contexts += [["check", "the"], ["check", "the", "battery", "log"],
                 ["check", "battery", "the", "battery", "it", "ran"]]
    for context in contexts:
        expect_table(on_copies(masked_vote, context, weights, mask_table, vocab),
                     reference_masked_vote(context, weights, mask_table, vocab),
                     masked_vote.last_call, lambda i, v=vocab: f"[{i[0]}] is the vote for "
                                                               f"{v[i[0]]!r}",
                     _masked_vote_mistakes(context, weights, mask_table, vocab))
    # The battery sentence, wrong without the mask, is now right by a whole vote to none.
    for context, expected in zip(contexts, ["please", "please", "down", None, "and", "down"]):
        expect_word(on_copies(predict_next, context, weights, mask_table, vocab), expected,
                     predict_next.last_call)

    rng = np.random.default_rng(10)
    sentences = random_corpus(rng)
    vocab = vocabulary(sentences)
    weights = reference_skip_weights(sentences, vocab)
    mask_table = reference_mask(weights)
    for sentence in sentences:
        for t in range(2, len(sentence.split()) + 1):
            context = sentence.split()[:t]
            votes = reference_masked_vote(context, weights, mask_table, vocab)
            expect_table(on_copies(masked_vote, context, weights, mask_table, vocab), votes,
                         masked_vote.last_call, None,
                         _masked_vote_mistakes(context, weights, mask_table, vocab))
            expect_word(on_copies(predict_next, context, weights, mask_table, vocab),
                         best_word(votes, vocab), predict_next.last_call)


@exercise("attention_as_matmul", "Attention as matrix multiplication: masks by Q K^T", hints=[
    "V = mask_table.shape[0] and T = len(ids). lookup_masks looks up one row of the mask "
    "table per token: chapter 1's table lookup by a one-hot product, (T, V) @ (V, V).",
    "attention_scores: Q @ K.T is (T, V) @ (V, T) -> (T, T). Keep only s < t with "
    "np.tril(np.ones((T, T)), k=-1): k=-1 drops the diagonal too.",
    "attend: each position adds up the tokens of the positions its scores let through: the "
    "(T, T) scores times a (T, V) matrix that holds one token per row.",
])
def check_attention_as_matmul(learner: Learner) -> None:
    # A hand-made table (not symmetric, so that a transpose shows): word 0 listens for word 1,
    # word 1 for word 2, word 2 for every word, itself included.
    table = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    small_ids = np.array([0, 1, 2, 2, 0])
    vocab = vocabulary(LONG_CORPUS)
    corpus_table = reference_mask(reference_skip_weights(LONG_CORPUS, vocab))
    corpus_ids = np.array([vocab.index(w) for w in LONG_CORPUS[2].split()])
    rng = np.random.default_rng(11)
    random_table = (rng.random((7, 7)) < 0.4).astype(float)
    random_ids = rng.integers(0, 7, size=12)
    cases = [(small_ids, table, [str(i) for i in range(3)]),
             (corpus_ids, corpus_table, vocab),
             (random_ids, random_table, [str(i) for i in range(7)])]

    lookup_masks = learner.function("lookup_masks")
    for ids, mask_table, _ in cases:
        expect_array(on_copies(lookup_masks, ids, mask_table), mask_table[ids],
                     lookup_masks.last_call, tensor=False)

    attention_scores = learner.function("attention_scores")
    for ids, mask_table, words in cases:
        expect_table(on_copies(attention_scores, ids, mask_table),
                     reference_scores(ids, mask_table),
                     attention_scores.last_call,
                     lambda i, ids=ids, w=words: f"[{i[0]}, {i[1]}] is position {i[0]} (word "
                     f"{w[ids[i[0]]]!r}) attending to position {i[1]} (word {w[ids[i[1]]]!r})"
                     + ("; only earlier positions (s < t) count" if i[1] >= i[0] else ""),
                     [("with the queries and the keys swapped: [t, s] is query t against key s, "
                       "so the queries are the left factor of the product",
                       reference_scores(ids, mask_table.T))])

    attend = learner.function("attend")
    for ids, mask_table, words in cases:
        expected = reference_scores(ids, mask_table) @ one_hot(ids, len(mask_table))
        expect_table(on_copies(attend, ids, mask_table), expected, attend.last_call,
                     lambda i, ids=ids, w=words: f"[{i[0]}, {i[1]}] counts the word "
                     f"{w[i[1]]!r} among the words that position {i[0]} (word "
                     f"{w[ids[i[0]]]!r}) attends to")


# ---------------------------------------------------------------------------------------------
# The bridge: second order as matrix products, with a ReLU feature layer


def reference_feature_weights(V: int, pairs: Sequence[tuple[int, int]], first: int = 0,
                              second: int = 1, bias: float = -1.0) -> tuple[np.ndarray, np.ndarray]:
    """W (2V, P) and bias; `first`/`second` say which half holds the previous word (a mistake
    swaps them), `bias` what the bias is."""
    W = np.zeros((2 * V, len(pairs)))
    for p, pair in enumerate(pairs):
        W[pair[0] + first * V, p] = 1.0
        W[pair[1] + second * V, p] = 1.0
    return W, np.full(len(pairs), bias)


def reference_pair_inputs(ids: np.ndarray, V: int, swapped: bool = False) -> np.ndarray:
    previous, current = one_hot(ids[:-1], V), one_hot(ids[1:], V)
    return np.concatenate([current, previous] if swapped else [previous, current], axis=1)


def _feature_mistakes(ids, W, bias):
    V = W.shape[0] // 2
    X = reference_pair_inputs(ids, V)
    return [
        ("without the ReLU: a pair with neither word in place votes -1; np.maximum(..., 0) "
         "keeps only the full matches", X @ W + bias),
        ("without the bias: a half match (one of the two words) then fires too",
         np.maximum(X @ W, 0.0)),
        ("with the current word's one-hot first: x_t is [one_hot(previous), one_hot(current)]",
         np.maximum(reference_pair_inputs(ids, V, swapped=True) @ W + bias, 0.0)),
    ]


@exercise("pair_features", "The bridge: second order as matrix products with a ReLU", hints=[
    "feature_weights: one column per pair. The first V rows stand for the previous word, the "
    "next V rows for the current word, so a pair (a, b) touches row a and row V + b.",
    "pair_inputs: ids[:-1] are the previous words and ids[1:] the current ones; "
    "np.concatenate([..., ...], axis=1) puts two (T - 1, V) matrices side by side.",
    "detect_pairs is one layer of a neural network: a matrix product, the bias added (it "
    "broadcasts over the rows), then the ReLU. Work out x_t . W[:, p] for a full match, a half "
    "match and no match: the bias must turn exactly the full match into the only positive one.",
], forbid=["tinyformer"])
def check_pair_features(learner: Learner) -> None:
    feature_weights = learner.function("feature_weights")
    worked = [(0, 2), (1, 2)]
    rng = np.random.default_rng(12)
    random_pairs = [tuple(int(i) for i in rng.integers(0, 6, size=2)) for _ in range(7)]
    for V, pairs in ((3, worked), (6, random_pairs)):
        result = on_copies(feature_weights, V, pairs)
        expect(isinstance(result, tuple) and len(result) == 2,
               f"{feature_weights.last_call} returned {describe(result)}; return two arrays, "
               f"(W, bias).")
        W, bias = reference_feature_weights(V, pairs)
        swapped, _ = reference_feature_weights(V, pairs, first=1, second=0)
        expect_numpy(result[0], W, feature_weights.last_call, what="returned, as W,",
                     mistakes=[("with the halves swapped: rows 0..V-1 are the previous word, "
                                "rows V..2V-1 the current one", swapped)])
        expect_numpy(result[1], bias, feature_weights.last_call, what="returned, as bias,",
                     mistakes=[("with a bias of 0: then a half match fires too; -1 leaves "
                                "only the full match positive", np.zeros(len(pairs))),
                               ("with a bias of -2: then even the full match, 1 + 1 - 2 = 0, "
                                "stays at zero; -1 leaves it at 1 and everything else at 0 "
                                "or below", np.full(len(pairs), -2.0))])

    pair_inputs = learner.function("pair_inputs")
    for ids, V in ((np.array([0, 2]), 3), (np.array([0, 2, 1, 2, 2]), 3),
                   (rng.integers(0, 6, size=9), 6)):
        expect_numpy(on_copies(pair_inputs, ids, V), reference_pair_inputs(ids, V),
                     pair_inputs.last_call,
                     mistakes=[("with the current word first: x_t is [one_hot(ids[t - 1]), "
                                "one_hot(ids[t])]", reference_pair_inputs(ids, V, True)),
                               ("with the previous word in both halves: the second half is "
                                "the current word, ids[1:]",
                                np.concatenate([one_hot(ids[:-1], V)] * 2, axis=1)),
                               ("with the current word in both halves: the first half is the "
                                "previous word, ids[:-1]",
                                np.concatenate([one_hot(ids[1:], V)] * 2, axis=1))])

    # Every kind of position: the pair itself, the pair reversed, each half on its own.
    detect_pairs = learner.function("detect_pairs")
    W, bias = reference_feature_weights(3, worked)
    cases = [(np.array([0, 2]), W, bias), (np.array([2, 0, 2, 1, 2, 1, 1]), W, bias)]
    W6, bias6 = reference_feature_weights(6, random_pairs)
    cases.append((np.array([a for pair in random_pairs for a in pair]), W6, bias6))
    for ids, W, bias in cases:
        expect_numpy(on_copies(detect_pairs, ids, W, bias), np.maximum(
            reference_pair_inputs(ids, W.shape[0] // 2) @ W + bias, 0.0),
            detect_pairs.last_call, mistakes=_feature_mistakes(ids, W, bias))

    # Chapter 2's second-order table, as features and a second matrix product: the same votes.
    next_scores = learner.function("next_scores")
    for sentences in (SHORT_CORPUS, random_corpus(np.random.default_rng(13))):
        vocab = vocabulary(sentences)
        V = len(vocab)
        probs = normalise(reference_pair_counts(sentences, vocab))
        pairs = [(row // V, row % V) for row in np.flatnonzero(probs.sum(axis=1))]
        W, bias = reference_feature_weights(V, pairs)
        W_out = probs[[a * V + b for a, b in pairs]]
        for sentence in sentences:
            ids = np.array([vocab.index(w) for w in sentence.split()])
            expected = probs[ids[:-1] * V + ids[1:]]
            expect_numpy(on_copies(next_scores, ids, W, bias, W_out), expected,
                         next_scores.last_call,
                         mistakes=[("from the features without the ReLU",
                                    (reference_pair_inputs(ids, V) @ W + bias) @ W_out)])
