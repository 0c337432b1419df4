"""Checker for chapter 15: a learned induction head, found by its attention scores.

First the learner's two scores are compared with their definitions on made-up patterns whose
sequences reach every edge (a token seen four times, a token repeated at once, no repeat at
all); a wrong answer that matches a known mistake (the wrong offset, the first occurrence for
the last, position 0 counted...) is named. Then the model of the exercise file, as shipped
(the learner's copy may be edited), is trained, and the learner's scores must tell its two
layers apart: layer 1 a previous-token head, layer 2 an induction head.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

import numpy as np
from threadpoolctl import threadpool_limits

from tinyautograd import no_grad

from ..catalogue import COURSE_DIR, Question, exercise
from ..checking import CheckFailure, Learner, a_kind, describe, expect, on_copies

# The chapter's "predict, then run" question (`tinyformer exercises predict 15`).
QUESTION = Question(code="""\
tokens = ["a", "b", "c", "a", "b", "c", "a"]
t = 6                                            # the last "a"
earlier = [s for s in range(t) if tokens[s] == tokens[t]]
print(earlier)
print(tokens[earlier[-1] + 1])                   # what came after its last occurrence
""", output="""\
[0, 3]
b
""", why=(
    "An induction head finds the earlier places where the current token appeared (positions 0 and "
    '3) and copies what came after the last one: "b". Chapter 11 builds it from two heads by '
    'hand; chapter 15 watches training find it.'))

# ---------------------------------------------------------------------------------------------
# The definitions, and the usual mistakes


def _last_earlier(ids):
    """(t, j) for every position t whose token occurred before, j its last earlier position."""
    pairs = []
    for t in range(len(ids)):
        earlier = np.flatnonzero(ids[:t] == ids[t])
        if len(earlier):
            pairs.append((t, int(earlier[-1])))
    return pairs


def _mean(values):
    return float(np.mean(values)) if len(values) else 0.0


def reference_previous(pattern: np.ndarray) -> float:
    return _mean([pattern[t, t - 1] for t in range(1, len(pattern))])


def reference_induction(pattern: np.ndarray, ids: np.ndarray) -> float:
    return _mean([pattern[t, j + 1] for t, j in _last_earlier(ids)])


def _previous_mistakes(pattern):
    T = len(pattern)
    return [
        ("reading A[t, t], each token's attention to itself: the previous token is the key "
         "t - 1", _mean([pattern[t, t] for t in range(1, T)])),
        ("reading the main diagonal, A[t, t] for every t (np.diagonal with offset 0): that is "
         "each token's attention to itself; the previous token is the key t - 1, on the "
         "diagonal just below (offset=-1), from t = 1", float(np.mean(np.diagonal(pattern)))),
        ("reading A[t - 1, t]: rows are queries, so row t and column t - 1",
         _mean([pattern[t - 1, t] for t in range(1, T)])),
        ("counting position 0 too: it has no previous token, so the mean is over t = 1 .. T-1",
         sum(pattern[t, t - 1] for t in range(1, T)) / T),
    ]


def _induction_mistakes(pattern, ids):
    pairs = _last_earlier(ids)
    first = [(t, int(np.flatnonzero(ids[:t] == ids[t])[0])) for t, _ in pairs]
    mistakes = [
        ("reading A[t, j], the earlier occurrence itself: an induction head looks one further, "
         "at the token that came AFTER it (j + 1)", _mean([pattern[t, j] for t, j in pairs])),
        ("reading A[t, t - 1], the previous token: that is layer 1's job; the induction head "
         "reads the position after the earlier occurrence", _mean([pattern[t, t - 1]
                                                                    for t, _ in pairs])),
        ("using the FIRST earlier occurrence: take the last one, the most recent time the "
         "token appeared", _mean([pattern[t, j + 1] for t, j in first])),
        ("averaging over every position: only the positions whose token occurred before "
         "count", sum(pattern[t, j + 1] for t, j in pairs) / len(ids)),
    ]
    if not pairs:
        mistakes.append(("taking the mean of no values at all (np.mean([]) is nan): where no "
                         "token repeats there is nothing to copy, and the score is 0.0", np.nan))
    return mistakes


def _expect_score(got, expected, call, mistakes):
    expect(got is not None, f"{call} returned None. Did you forget a `return`?")
    # One number, not one in a list or array: the scores of the trained model are summed.
    expect(np.ndim(got) == 0, f"{call} returned {a_kind(got)}, {describe(got)}; return one "
                              f"number, a float.")
    try:
        value = float(np.asarray(got).reshape(()))
    except (TypeError, ValueError):
        raise CheckFailure(f"{call} returned {describe(got)}; return one number.") from None
    if np.isclose(value, expected, rtol=1e-6, atol=1e-9):
        return
    for description, wrong in mistakes:
        if np.isclose(value, wrong, rtol=1e-6, atol=1e-9, equal_nan=True):
            raise CheckFailure(f"{call} returned {value:.4f}, expected {expected:.4f}: that is "
                               f"what you get {description}.")
    raise CheckFailure(f"{call} returned {value:.4f}, expected {expected:.4f}.")


def _random_pattern(rng, T):
    """Causal attention rows of random sharpness, summing to 1."""
    scores = rng.standard_normal((T, T)) * rng.uniform(0.5, 3.0, size=(T, 1))
    scores[np.triu(np.ones((T, T), dtype=bool), k=1)] = -np.inf
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Training the shipped model


def shipped_model() -> ModuleType:
    """The exercise file as shipped, for its model and training loop."""
    spec = importlib.util.spec_from_file_location(
        "shipped_induction_scores", COURSE_DIR / "15_learned_induction" / "induction_scores.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FOUND = 0.5      # a head's own score must reach this, and beat the other layer's


@exercise("induction_scores", "A learned induction head, and how to find it", hints=[
    "previous_token_score: the entries A[1, 0], A[2, 1], ... are a diagonal just below the "
    "main one; np.diagonal(pattern, offset=-1) gives them all.",
    "induction_score: for each position t, the earlier positions holding the same token are "
    "where ids[:t] equals ids[t] (np.flatnonzero lists them in order); the last of them is "
    "the latest occurrence.",
    "Which key holds what the induction head wants to copy: the earlier occurrence of the "
    "token, or what came right after it? And which positions have anything to copy at all?",
])
def check_induction_scores(learner: Learner) -> None:
    previous = learner.function("previous_token_score")
    induction = learner.function("induction_score")
    rng = np.random.default_rng(0)
    example = np.array([0, 3, 1, 4, 3, 1, 4])
    recent = np.tril(np.arange(1, 8) * np.ones((7, 1)))        # the lesson's worked example
    cases = [(example, recent / recent.sum(axis=1, keepdims=True)),
             (np.array([0, 5, 2, 5, 5, 3, 2, 5]), _random_pattern(rng, 8)),   # 5 four times
             (np.array([0, 1, 2, 3]), _random_pattern(rng, 4)),               # nothing repeats
             (np.array([6, 6]), _random_pattern(rng, 2))]                     # at once
    for _ in range(3):
        n = int(rng.integers(2, 6))
        half = rng.choice(np.arange(1, 8), size=n, replace=False)
        ids = np.concatenate([[0], half, half, half[:2]])
        cases.append((ids, _random_pattern(rng, len(ids))))
    for _, pattern in cases:
        _expect_score(on_copies(previous, pattern), reference_previous(pattern), previous.last_call,
                      _previous_mistakes(pattern))
    for ids, pattern in cases:
        _expect_score(on_copies(induction, pattern, ids), reference_induction(pattern, ids),
                      induction.last_call, _induction_mistakes(pattern, ids))

    shipped = shipped_model()
    with threadpool_limits(1):
        learned = shipped.train(steps=300, seed=0)
    held_out = np.random.default_rng(1)
    scores = np.zeros((2, 2))               # [layer, (previous-token, induction)]
    for _ in range(8):
        ids = shipped.repeated_patterns(held_out, 1)
        with no_grad():
            _, patterns = shipped.run_model(learned, ids)
        for layer, pattern in enumerate(patterns):
            scores[layer] += [previous(pattern.data[0]), induction(pattern.data[0], ids[0])]
    scores /= 8
    table = (f"layer 1: previous-token {scores[0, 0]:.2f}, induction {scores[0, 1]:.2f}; "
             f"layer 2: previous-token {scores[1, 0]:.2f}, induction {scores[1, 1]:.2f}")
    expect(scores[0, 0] >= FOUND and scores[0, 0] > scores[1, 0]
           and scores[1, 1] >= FOUND and scores[1, 1] > scores[0, 1],
           f"your scores of the trained model do not find the heads ({table}): layer 1 should "
           f"score at least {FOUND} as a previous-token head and layer 2 at least {FOUND} as "
           f"an induction head, each more than the other layer.")
