"""Checkers for chapter 2: sequence models by counting (first order, second order, second
order with skips).

The checkers carry their own small numpy versions of the counting (the `_reference_*`
functions) and compare the learner's tables with them on the course corpus, then on random
corpora from a fixed seed. Where a table is wrong, the message also says which words the wrong
element stands for.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..catalogue import Question, exercise
from ..checking import (CheckFailure, Learner, a_kind, as_array, describe, expect,
                        expect_array, on_copies)

# The chapter's "predict, then run" question (`tinyformer exercises predict 2`).
QUESTION = Question(code="""\
words = "the dog ran down the hill and the dog ran home".split()
follows = {}
for word, following in zip(words, words[1:]):
    follows.setdefault(word, []).append(following)
print(follows["ran"])
print(follows["the"])
""", output="""\
['down', 'home']
['dog', 'hill', 'dog']
""", why=(
    'After "ran" the counts hold "down" and "home" once each: a first-order model sees only the '
    'current word and cannot choose between them. After "the" it has seen "dog" twice, so it '
    'predicts "dog" even where "hill" was meant.'))

SHORT_CORPUS = [
    "show me my directories please",
    "show me my files please",
    "show me my photos please",
    "check whether the battery ran down please",
    "check whether the program ran please",
]

LONG_CORPUS = [
    "check the program log and find out whether it ran please",
    "check the server log and find out whether it ran please",
    "check the battery log and find out whether it ran down please",
]

# A wrong prediction: (the words so far, the word that came next, the word predicted or None).
Mistake = tuple[str, str, str | None]

# ---------------------------------------------------------------------------------------------
# The reference computations, and random corpora
# ---------------------------------------------------------------------------------------------

def vocabulary(sentences: Iterable[str]) -> list[str]:
    words = []
    for sentence in sentences:
        for word in sentence.split():
            if word not in words:
                words.append(word)
    return words


def normalise(counts: np.ndarray) -> np.ndarray:
    sums = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts, dtype=float), where=sums > 0)


def reference_transition_counts(sentences: Iterable[str], vocab: Sequence[str]) -> np.ndarray:
    counts = np.zeros((len(vocab), len(vocab)))
    for sentence in sentences:
        words = sentence.split()
        for word, following in zip(words, words[1:]):
            counts[vocab.index(word), vocab.index(following)] += 1
    return counts


def reference_pair_counts(sentences: Iterable[str], vocab: Sequence[str]) -> np.ndarray:
    V = len(vocab)
    counts = np.zeros((V * V, V))
    for sentence in sentences:
        words = sentence.split()
        for a, b, c in zip(words, words[1:], words[2:]):
            counts[vocab.index(a) * V + vocab.index(b), vocab.index(c)] += 1
    return counts


def reference_skip_weights(sentences: Iterable[str], vocab: Sequence[str]) -> np.ndarray:
    V = len(vocab)
    counts = np.zeros((V, V, V))
    for sentence in sentences:
        words = sentence.split()
        for t in range(len(words) - 1):
            x, c = vocab.index(words[t]), vocab.index(words[t + 1])
            for w in set(words[:t]):
                counts[vocab.index(w), x, c] += 1
    return normalise(counts)


def reference_vote(context: Sequence[str], weights: np.ndarray,
                   vocab: Sequence[str]) -> np.ndarray:
    x = vocab.index(context[-1])
    votes = np.zeros(len(vocab))
    for w in set(context[:-1]):
        votes += weights[vocab.index(w), x]
    return votes


def best_word(scores: np.ndarray, vocab: Sequence[str]) -> str | None:
    return vocab[int(np.argmax(scores))] if np.any(scores) else None


def reference_mistakes(sentences: Iterable[str], weights: np.ndarray,
                       vocab: Sequence[str]) -> list[Mistake]:
    wrong = []
    for sentence in sentences:
        words = sentence.split()
        for t in range(2, len(words)):
            predicted = best_word(reference_vote(words[:t], weights, vocab), vocab)
            if predicted != words[t]:
                wrong.append((" ".join(words[:t]), words[t], predicted))
    return wrong


def random_corpus(rng: np.random.Generator, n_sentences: int = 6,
                  n_words: int = 7) -> list[str]:
    """Sentences of 3 to 8 words drawn from a few made-up words."""
    pool = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu"][:n_words]
    return [" ".join(rng.choice(pool, size=rng.integers(3, 9)))
            for _ in range(n_sentences)]


# ---------------------------------------------------------------------------------------------
# Messages that say which words a wrong element stands for
# ---------------------------------------------------------------------------------------------

def expect_table(got: Any, expected: np.ndarray, call: str,
                 explain: Callable[[tuple[int, ...]], str] | None,
                 mistakes: Sequence[tuple[str, np.ndarray]] = ()) -> None:
    """expect_array, and on a wrong value, a line saying which known mistake (a description
    and the table it gives) the table is exactly, or else from `explain(index)`, where given,
    which words the worst element's index stands for."""
    # A list of the right numbers would pass expect_array, then break the code that uses the
    # table: normalise_rows calls counts.sum(...), predict_next row.any(). A dict of counts
    # (word -> next word -> count) is the other natural way to count.
    expect(not isinstance(got, (list, tuple, dict)),
           f"{call} returned {a_kind(got)}; return a numpy array (start from np.zeros and "
           f"fill it in): the functions that use it call numpy's methods on it.")
    try:
        expect_array(got, expected, call, tensor=False)
    except CheckFailure as failure:
        try:
            got = as_array(got).astype(float)
        except (TypeError, ValueError):     # not numbers at all (a dict, a text): said so
            raise failure from None
        if got.shape != np.shape(expected):
            raise
        for description, wrong in mistakes:
            if _same_table(got, wrong):
                raise CheckFailure(f"{failure}\n    That is exactly what you get "
                                   f"{description}.") from None
        if explain is None:
            raise
        error = np.abs(np.nan_to_num(got - expected, nan=np.inf))
        worst = np.unravel_index(np.argmax(error), got.shape)
        raise CheckFailure(f"{failure}\n    {explain(tuple(int(i) for i in worst))}") from None


def _same_table(got: np.ndarray, wrong: np.ndarray) -> bool:
    """Whether `got` is the table of a mistake: the same numbers, with its nan where it has
    them."""
    return got.shape == wrong.shape and np.allclose(got, wrong, atol=1e-5, rtol=1e-4,
                                                    equal_nan=True)


def expect_word(got: Any, expected: str | None, call: str) -> None:
    """A predicted word (or None, which here is an answer: "no evidence"), compared exactly.
    checking.expect_equal would read a None as a forgotten `return`."""
    if isinstance(got, np.str_):
        got = str(got)
    if got is not None and not isinstance(got, str):
        raise CheckFailure(f"{call} returned {describe(got)}; it should return a word from vocab "
                           f"(a str), or None.")
    if got != expected:
        raise CheckFailure(f"{call} returned {got!r}; expected {expected!r}.")


# ---------------------------------------------------------------------------------------------
# 1. First order
# ---------------------------------------------------------------------------------------------

@exercise("markov_first_order", "A first-order model: the next word from the current word",
          hints=[
    "transition_counts: split each sentence into words; `zip(words, words[1:])` gives every "
    "(word, next word) pair of neighbours.",
    "Each pair adds 1 in the word's row and the next word's column (vocab.index gives both). "
    "normalise_rows: divide each row by its own sum, kept as a (V, 1) column (keepdims=True) "
    "so that it broadcasts along the row.",
    "A word never followed by anything has a row of zeros, which must stay zeros rather than "
    "become nan: np.divide can divide only `where` the sum is positive, into an `out` array "
    "of zeros. predict_next reads the word's row: nothing in it means None, else the word of "
    "its largest column.",
])
def check_markov_first_order(learner: Learner) -> None:
    transition_counts = learner.function("transition_counts")
    small = ["show me my files please", "show me my photos please"]
    for sentences in (small, SHORT_CORPUS, random_corpus(np.random.default_rng(3))):
        vocab = vocabulary(sentences)
        expected = reference_transition_counts(sentences, vocab)
        expect_table(on_copies(transition_counts, sentences, vocab), expected,
                     transition_counts.last_call,
                     lambda i, v=vocab: f"[{i[0]}, {i[1]}] counts {v[i[1]]!r} right after "
                                        f"{v[i[0]]!r}",
                     [("counting [next word, word], the table transposed: the row is the "
                       "current word and the column the word that follows it", expected.T)])

    normalise_rows = learner.function("normalise_rows")
    counts = np.array([[1.0, 3.0], [0.0, 0.0], [2.0, 2.0]])
    expect_table(on_copies(normalise_rows, counts, advice="The counts must stay counts: "
                           "divide into a new array and return that."),
                 normalise(counts), normalise_rows.last_call, None, _normalising_mistakes(counts))
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 4, size=(9, 9)).astype(float)
    counts[[2, 7]] = 0.0                                 # words never followed by anything
    expect_table(normalise_rows(counts.copy()), normalise(counts), normalise_rows.last_call,
                 None, _normalising_mistakes(counts))

    predict_next = learner.function("predict_next")
    vocab = vocabulary(SHORT_CORPUS)
    probs = normalise(reference_transition_counts(SHORT_CORPUS, vocab))
    for word, expected in [("show", "me"), ("whether", "the"),
                           ("my", "directories"),      # a three-way tie: the first in vocab
                           ("please", None)]:          # never followed by anything
        expect_word(on_copies(predict_next, word, probs, vocab), expected, predict_next.last_call)
    for _ in range(3):
        sentences = random_corpus(rng)
        vocab = vocabulary(sentences)
        probs = normalise(reference_transition_counts(sentences, vocab))
        for word in vocab:
            expect_word(on_copies(predict_next, word, probs, vocab),
                        best_word(probs[vocab.index(word)], vocab), predict_next.last_call)


def _normalising_mistakes(counts: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(description, the table it gives) for the usual mistakes of normalise_rows."""
    sums = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [
            ("dividing a row of zeros by its sum, 0, which gives nan: a row of zeros stays "
             "zeros. np.divide can divide only `where` the sum is positive, into an `out` "
             "array of zeros", np.where(sums > 0, normalise(counts), np.nan)),
            ("normalising the columns: each ROW, the word before, must sum to 1",
             counts / counts.sum(axis=0, keepdims=True))]


# ---------------------------------------------------------------------------------------------
# 2. Second order
# ---------------------------------------------------------------------------------------------

@exercise("markov_second_order", "A second-order model: the next word from the last two",
          hints=[
    "zip(words, words[1:], words[2:]) gives every three neighbouring words (first, second, "
    "next).",
    "The row of the pair is vocab.index(first) * V + vocab.index(second), with V = "
    "len(vocab); the column is vocab.index(next).",
    "predict_after_pair is the first-order predict_next again, reading the pair's row instead "
    "of the word's: the same two cases.",
])
def check_markov_second_order(learner: Learner) -> None:
    pair_counts = learner.function("pair_counts")
    small = SHORT_CORPUS[3:]
    for sentences in (small, SHORT_CORPUS, random_corpus(np.random.default_rng(5))):
        vocab = vocabulary(sentences)
        V = len(vocab)
        expected = reference_pair_counts(sentences, vocab)
        # The pair (first, second) in the row of (second, first): second * V + first.
        swapped = expected.reshape(V, V, V).transpose(1, 0, 2).reshape(V * V, V)
        expect_table(on_copies(pair_counts, sentences, vocab), expected,
                     pair_counts.last_call,
                     lambda i, v=vocab, V=V: f"[{i[0]}, {i[1]}] is row {i[0]} = "
                     f"{i[0] // V} * {V} + {i[0] % V}, the pair ({v[i[0] // V]!r}, "
                     f"{v[i[0] % V]!r}), followed by {v[i[1]]!r}",
                     [("with the pair's two indices swapped: the pair (first, second) is row "
                       "first * V + second, the first word's index times V", swapped)])

    predict_after_pair = learner.function("predict_after_pair")
    vocab = vocabulary(SHORT_CORPUS)
    probs = normalise(reference_pair_counts(SHORT_CORPUS, vocab))
    for first, second, expected in [("battery", "ran", "down"), ("program", "ran", "please"),
                                    ("show", "me", "my"),
                                    ("me", "my", "directories"),   # a real three-way tie
                                    ("ran", "me", None)]:          # a pair never seen
        expect_word(on_copies(predict_after_pair, first, second, probs, vocab), expected,
                     predict_after_pair.last_call)
    rng = np.random.default_rng(6)
    sentences = random_corpus(rng)
    vocab = vocabulary(sentences)
    V = len(vocab)
    probs = normalise(reference_pair_counts(sentences, vocab))
    for a in range(V):
        for b in range(V):
            expect_word(on_copies(predict_after_pair, vocab[a], vocab[b], probs, vocab),
                         best_word(probs[a * V + b], vocab), predict_after_pair.last_call)


# ---------------------------------------------------------------------------------------------
# 3. Second order with skips
# ---------------------------------------------------------------------------------------------

def expect_mistakes(got: Any, expected: list[Mistake], call: str) -> None:
    """The learner's list of (context, expected, predicted) against ours, entry by entry."""
    expect(isinstance(got, (list, tuple)),
           f"{call} returned {describe(got)}; it should return a list of "
           f"(context, expected, predicted) tuples.")
    got = [tuple(entry) if isinstance(entry, (list, tuple)) else entry for entry in got]
    for number, (mine, theirs) in enumerate(zip(expected, got)):
        expect(mine == theirs,
               f"{call} returned a wrong list: entry {number} should be\n"
               f"        {mine!r}\n    but is\n        {theirs!r}")
    if len(got) < len(expected):
        raise CheckFailure(f"{call} returned {len(got)} mistakes; there are {len(expected)}. "
                           f"Missing:\n        {expected[len(got)]!r}")
    if len(got) > len(expected):
        raise CheckFailure(f"{call} returned {len(got)} mistakes; there are only "
                           f"{len(expected)}. This one is not a mistake:\n"
                           f"        {got[len(expected)]!r}")


@exercise("second_order_skips", "Second order with skips: every earlier word votes", hints=[
    "skip_weights: for t in range(len(words) - 1), the current word is words[t] and the next "
    "words[t + 1]; the features are the words in set(words[:t]) (empty at t = 0).",
    "After counting, normalise over the last axis: normalise_rows(counts) does it for a 3-D "
    "array too. vote: each distinct earlier word w adds its row for the current word x, "
    "weights[w, x] (a vector over the next words), to a running total that starts at zeros.",
    "mistakes: every position t from 2 on is one prediction from the words before it. Compare "
    "it with the word really at t, and keep (the context joined by spaces, the right word, "
    "the prediction) when they differ.",
])
def check_second_order_skips(learner: Learner) -> None:
    skip_weights = learner.function("skip_weights")
    for sentences in (LONG_CORPUS[2:], LONG_CORPUS, random_corpus(np.random.default_rng(7))):
        vocab = vocabulary(sentences)
        expect_table(on_copies(skip_weights, sentences, vocab),
                     reference_skip_weights(sentences, vocab),
                     skip_weights.last_call,
                     lambda i, v=vocab: f"[{i[0]}, {i[1]}, {i[2]}] is the share of "
                     f"{v[i[2]]!r} after {v[i[1]]!r} with {v[i[0]]!r} somewhere before it")

    vote = learner.function("vote")
    vocab = vocabulary(LONG_CORPUS)
    weights = reference_skip_weights(LONG_CORPUS, vocab)
    contexts = [sentence.split()[:10] for sentence in LONG_CORPUS]     # ends at "ran"
    contexts += [["check", "the"], ["check", "the", "the", "battery"], ["it", "check"]]
    for context in contexts:
        expect_table(on_copies(vote, context, weights, vocab),
                     reference_vote(context, weights, vocab),
                     vote.last_call, lambda i, v=vocab: f"[{i[0]}] is the vote for {v[i[0]]!r}")
    rng = np.random.default_rng(8)
    sentences = random_corpus(rng)
    random_vocab = vocabulary(sentences)
    random_weights = reference_skip_weights(sentences, random_vocab)
    for sentence in sentences:
        context = sentence.split()
        expect_array(on_copies(vote, context, random_weights, random_vocab),
                     reference_vote(context, random_weights, random_vocab), vote.last_call,
                     tensor=False)

    predict_next = learner.function("predict_next")
    for context, expected in zip(contexts, ["please", "please", "please",    # the third: wrong
                                            "program", "log", None]):
        expect_word(on_copies(predict_next, context, weights, vocab), expected,
                    predict_next.last_call)

    mistakes = learner.function("mistakes")
    for sentences in (LONG_CORPUS, LONG_CORPUS[1:], random_corpus(rng, n_sentences=4)):
        vocab = vocabulary(sentences)
        weights = reference_skip_weights(sentences, vocab)
        expect_mistakes(on_copies(mistakes, sentences, weights, vocab),
                        reference_mistakes(sentences, weights, vocab), mistakes.last_call)
    # A sentence the weights were not counted from, wrong at its last word: on the corpora
    # above no sentence is, so a loop that stops one word early would pass them.
    vocab = vocabulary(LONG_CORPUS)
    weights = reference_skip_weights(LONG_CORPUS, vocab)
    held_out = ["check the server log and find out whether it ran down"]
    expect_mistakes(on_copies(mistakes, held_out, weights, vocab),
                    reference_mistakes(held_out, weights, vocab), mistakes.last_call)
