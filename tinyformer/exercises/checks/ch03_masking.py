"""Checkers for chapter 3: masking as attention (a selective mask over the skip features of
chapter 2, then the same lookup written as Q K^T)."""

import numpy as np

from ..catalogue import exercise
from ..checking import expect_array
from .ch02_counting import (LONG_CORPUS, best_word, expect_table, expect_word, random_corpus,
                            reference_skip_weights, vocabulary)


def reference_mask(weights):
    return (weights.max(axis=-1) > 0.999).astype(float).T        # [current x, earlier w]


def reference_masked_vote(context, weights, mask_table, vocab):
    x = vocab.index(context[-1])
    earlier = np.zeros(len(vocab))
    earlier[[vocab.index(w) for w in context[:-1]]] = 1.0
    return (earlier * mask_table[x]) @ weights[:, x, :]


def one_hot(ids, vocab_size):
    return np.eye(vocab_size)[np.asarray(ids)]


def reference_scores(ids, mask_table):
    T = len(ids)
    return mask_table[np.ix_(ids, ids)] * np.tril(np.ones((T, T)), k=-1)


@exercise("selective_mask", "A selective mask: let only the informative features vote", hints=[
    "informative_mask: weights.max(axis=-1) has shape (V, V) and is indexed [w, x]; the mask "
    "table is indexed [x, w], so transpose it (.T) at the end.",
    "(weights.max(axis=-1) == 1.0).astype(float).T is the whole mask table. masked_vote: "
    "x = vocab.index(context[-1]); earlier = np.zeros(len(vocab)).",
    "Set earlier[vocab.index(w)] = 1.0 for each w in context[:-1] (set, don't add: a word seen "
    "twice still votes once), then return (earlier * mask_table[x]) @ weights[:, x, :].",
])
def check_selective_mask(learner):
    informative_mask = learner.function("informative_mask")
    for sentences in (LONG_CORPUS, random_corpus(np.random.default_rng(9))):
        vocab = vocabulary(sentences)
        weights = reference_skip_weights(sentences, vocab)
        expect_table(informative_mask(weights), reference_mask(weights),
                     informative_mask.last_call,
                     lambda i, v=vocab: f"[{i[0]}, {i[1]}] is the mask entry for the earlier "
                     f"word {v[i[1]]!r} when {v[i[0]]!r} is the current word")

    masked_vote = learner.function("masked_vote")
    predict_next = learner.function("predict_next")
    vocab = vocabulary(LONG_CORPUS)
    weights = reference_skip_weights(LONG_CORPUS, vocab)
    mask_table = reference_mask(weights)
    contexts = [sentence.split()[:10] for sentence in LONG_CORPUS]      # ends at "ran"
    contexts += [["check", "the"], ["check", "the", "battery", "log"],
                 ["check", "battery", "the", "battery", "it", "ran"]]
    for context in contexts:
        expect_table(masked_vote(context, weights, mask_table, vocab),
                     reference_masked_vote(context, weights, mask_table, vocab),
                     masked_vote.last_call, lambda i, v=vocab: f"[{i[0]}] is the vote for "
                                                               f"{v[i[0]]!r}")
    # The battery sentence, wrong without the mask, is now right by a whole vote to none.
    for context, expected in zip(contexts, ["please", "please", "down", None, "and", "down"]):
        expect_word(predict_next(context, weights, mask_table, vocab), expected,
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
            expect_array(masked_vote(context, weights, mask_table, vocab), votes,
                         masked_vote.last_call, tensor=False)
            expect_word(predict_next(context, weights, mask_table, vocab),
                         best_word(votes, vocab), predict_next.last_call)


@exercise("attention_as_matmul", "Attention as matrix multiplication: masks by Q K^T", hints=[
    "V = mask_table.shape[0] and T = len(ids). lookup_masks is one_hot(ids, V) @ mask_table: "
    "(T, V) @ (V, V).",
    "attention_scores: Q @ K.T is (T, V) @ (V, T) -> (T, T). Keep only s < t with "
    "np.tril(np.ones((T, T)), k=-1): k=-1 drops the diagonal too.",
    "attend: attention_scores(ids, mask_table) @ one_hot(ids, V), (T, T) @ (T, V) -> (T, V).",
])
def check_attention_as_matmul(learner):
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
        expect_array(lookup_masks(ids, mask_table), mask_table[ids], lookup_masks.last_call,
                     tensor=False)

    attention_scores = learner.function("attention_scores")
    for ids, mask_table, words in cases:
        expect_table(attention_scores(ids, mask_table), reference_scores(ids, mask_table),
                     attention_scores.last_call,
                     lambda i, ids=ids, w=words: f"[{i[0]}, {i[1]}] is position {i[0]} (word "
                     f"{w[ids[i[0]]]!r}) attending to position {i[1]} (word {w[ids[i[1]]]!r})"
                     + ("; only earlier positions (s < t) count" if i[1] >= i[0] else ""))

    attend = learner.function("attend")
    for ids, mask_table, words in cases:
        expected = reference_scores(ids, mask_table) @ one_hot(ids, len(mask_table))
        expect_table(attend(ids, mask_table), expected, attend.last_call,
                     lambda i, ids=ids, w=words: f"[{i[0]}, {i[1]}] counts the word "
                     f"{w[i[1]]!r} among the words that position {i[0]} (word "
                     f"{w[ids[i[0]]]!r}) attends to")
