"""Checkers for chapter 9: generation (greedy, temperature and top-k, top-p, beam search, the
key-value cache).

The models here are plain functions of the sequence so far. The random ones draw their logits
from a generator seeded by the sequence itself, so they are deterministic and depend on every
token, not only on the last one.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from tinyautograd import Tensor

from ..catalogue import Question, exercise
from ..checking import (Call, CheckFailure, Learner, as_array, describe, expect, expect_array,
                        expect_equal, on_copies)
from .ch08_training import _expect_numpy

# The chapter's "predict, then run" question (`tinyformer exercises predict 9`).
QUESTION = Question(code="""\
import numpy as np

logits = np.array([2.0, 1.0, 0.0])
for temperature in [1.0, 0.5, 100.0]:
    p = np.exp(logits / temperature)
    print(temperature, (p / p.sum()).round(2))
""", output="""\
1.0 [0.67 0.24 0.09]
0.5 [0.87 0.12 0.02]
100.0 [0.34 0.33 0.33]
""", why=(
    'Dividing the logits by a temperature below 1 widens their gaps and sharpens the distribution '
    '(0.87 for the best token); a large temperature flattens it towards uniform (a third each). '
    'Temperature 0 is the limit of sharpening: greedy decoding.'))

Ids = Union[Sequence[int], np.ndarray]      # a sequence so far: a list of ids, or an array
NextScores = Callable[[Ids], np.ndarray]    # a model: the sequence so far -> (V,) scores


class Model:
    """A model given to the learner's function: ids -> (V,) scores, shown by its name in
    messages (`greedy(next_logits=<random model, V=6>, ...)`)."""

    def __init__(self, next_scores: NextScores, name: str) -> None:
        self.next_scores, self.name = next_scores, name

    def __call__(self, ids: Ids) -> np.ndarray:
        return self.next_scores(ids)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def random_model(vocab_size: int, seed: int, log_probs: bool = False) -> Model:
    """A model ids -> (V,) logits (or log-probabilities), random but fixed for each sequence."""
    def next_scores(ids):
        rng = np.random.default_rng([seed, len(ids), *(int(i) for i in ids)])
        logits = 2.0 * rng.standard_normal(vocab_size)
        if not log_probs:
            return logits
        return logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    return Model(next_scores, f"random model, V={vocab_size}, reads every token of ids")


def table_model(table: ArrayLike, name: str, log: bool = False) -> Model:
    """A model that looks at the last token only: row ids[-1] of `table` (or its log)."""
    table = np.asarray(table, dtype=np.float64)

    def next_scores(ids):
        with np.errstate(divide="ignore"):
            return np.log(table[ids[-1]]) if log else table[ids[-1]]
    return Model(next_scores, name)


def step_model(rows: ArrayLike, name: str) -> Model:
    """A model of log-probabilities that depend on the step only: the log of row
    len(ids) - 1 of `rows` (for a prompt of one token)."""
    rows = np.asarray(rows, dtype=np.float64)

    def next_scores(ids):
        with np.errstate(divide="ignore"):
            return np.log(rows[len(ids) - 1])
    return Model(next_scores, name)


# ---------------------------------------------------------------------------------------------
# Greedy decoding
# ---------------------------------------------------------------------------------------------

def reference_greedy(next_logits: NextScores, prompt: Iterable[int], max_new_tokens: int,
                     end_id: int | None = None, keep_end: bool = True) -> list[int]:
    """Greedy decoding as the exercise asks; `keep_end=False` stops before appending the end
    id, the usual mistake of testing for it first."""
    ids = list(prompt)
    for _ in range(max_new_tokens):
        token = int(np.argmax(next_logits(list(ids))))
        if token == end_id and not keep_end:
            break
        ids.append(token)
        if token == end_id:
            break
    return ids


BIGRAM = [[0.0, 2.0, 1.0, -1.0],
          [0.5, 0.0, 3.0, 0.0],
          [1.0, 0.0, 0.0, 2.5],
          [1.0, 1.0, 1.0, 1.0]]


def _expect_sequence(got, expected, call, prompt, without_end=None):
    """The learner's generated sequence against the expected one, with a word on the common
    mistakes: dropping the prompt, stopping before appending the end id (`without_end`, what
    that gives)."""
    if isinstance(got, (np.ndarray, Tensor)):
        got = as_array(got).tolist()
    if isinstance(got, list) and got == expected[len(prompt):] and prompt:
        raise CheckFailure(f"{call} returned only the new tokens {describe(got, 40)}; return "
                           f"the prompt followed by them: {describe(expected, 40)}.")
    try:
        expect_equal(got, expected, call)
    except CheckFailure as failure:
        if without_end is None or got != without_end or without_end == expected:
            raise
        raise CheckFailure(f"{failure}\n    That is the sequence without its end id: the "
                           f"end id is appended too, and then the loop stops. Test for it "
                           f"after appending the token, not before.") from None


@exercise("greedy", "Greedy decoding", hints=[
    "Start from a list of the prompt's ids, then loop `for _ in range(max_new_tokens)`.",
    "Each step gives next_logits the whole list so far; the token is the index of the "
    "largest logit (np.argmax), as a plain int.",
    "The end id belongs to the result and nothing may follow it: decide whether to stop only "
    "after appending the token.",
], forbid=["tinyformer.decoding", "tinyformer.sampling"])
def check_greedy(learner: Learner) -> None:
    greedy = learner.function("greedy")
    bigram = table_model(BIGRAM, "the file's bigram_logits")
    for prompt, max_new, end_id in [([0], 10, 3), ([0], 2, 3), ([2, 0], 5, None), ([1], 0, 3)]:
        expected = reference_greedy(bigram, prompt, max_new, end_id)
        got = on_copies(greedy, bigram, prompt, max_new, end_id,
                        advice="Start from a copy: ids = list(prompt).")
        _expect_sequence(got, expected, greedy.last_call, prompt,
                         reference_greedy(bigram, prompt, max_new, end_id, keep_end=False))
    # Id 0 as the end id: a test of `if end_id and ...`, where 0 reads as no end id at all.
    expected = reference_greedy(bigram, [1], 6, 0)
    got = greedy(bigram, [1], 6, 0)
    if isinstance(got, list) and got == reference_greedy(bigram, [1], 6, None):
        raise CheckFailure(f"{greedy.last_call} went on past the end id 0: returned "
                           f"{describe(got, 40)}, expected {describe(expected, 40)}. Id 0 is a "
                           f"token like any other; only end_id=None means there is no end id.")
    _expect_sequence(got, expected, greedy.last_call, [1])
    # A model that reads the whole sequence, and ties (argmax takes the lowest id).
    ties = table_model([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [5.0, 5.0, 5.0]],
                       "a model with tied logits: the lowest id wins")
    expected = reference_greedy(ties, [2], 4, None)
    _expect_sequence(greedy(ties, [2], 4, None), expected, greedy.last_call, [2])
    for seed in range(3):
        model = random_model(6, seed)
        prompt = [1, 4, 2][:seed + 1]
        expected = reference_greedy(model, prompt, 8, end_id=5)
        got = greedy(model, list(prompt), 8, 5)
        _expect_sequence(got, expected, greedy.last_call, prompt,
                         reference_greedy(model, prompt, 8, 5, keep_end=False))


# ---------------------------------------------------------------------------------------------
# Temperature and top-k
# ---------------------------------------------------------------------------------------------

def reference_probs(logits: ArrayLike, temperature: float = 1.0,
                    top_k: int | None = None) -> np.ndarray:
    """What tinyformer/sampling.py's sample_next draws from, for one row of logits."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return np.eye(len(logits))[np.argmax(logits)]
    logits = logits / temperature
    if top_k is not None and top_k < len(logits):
        logits = np.where(logits < np.sort(logits)[-top_k], -np.inf, logits)
    return Tensor(logits, dtype=np.float64).softmax(axis=-1).data   # the engine's, as sample_next


@exercise("temperature_top_k", "Temperature and top-k", hints=[
    "Handle temperature == 0 first: a one-hot array at np.argmax(logits), no division by "
    "zero.",
    "Then divide the logits by the temperature and take the softmax; subtracting the largest "
    "logit first keeps exp from overflowing.",
    "Top-k keeps the tokens whose logit is at least the k-th largest (ties with it included) "
    "and gives every other one -inf before the softmax, so that its probability is exactly 0.",
], forbid=["tinyformer.sampling", "tinyformer.decoding"])
def check_temperature_top_k(learner: Learner) -> None:
    probs_of = learner.function("next_token_probs")

    def on_copy(logits, *args, **kwargs):
        """next_token_probs on a copy of `logits`: top-k that writes -inf into the caller's
        array (there is no copy to write into when the temperature is 1) would spoil the
        expected answer, computed from `logits` after it."""
        return on_copies(probs_of, logits, *args, **kwargs, advice=(
            "np.asarray(logits) is the caller's own array, not a copy: set the dropped tokens "
            "to -inf in a new array (np.where(...), or logits.copy())."))

    logits = np.array([2.0, 1.0, 0.0, 1.0])
    cases = [((), {}), ((0.5,), {}), ((2.0,), {}), ((0,), {}), ((1.0, 1), {}), ((1.0, 2), {}),
             ((0.7, 3), {}), ((1.0, 4), {}), ((1.0, 5), {}), ((1.0, None), {})]
    for args, kwargs in cases:
        got = on_copy(logits, *args, **kwargs)
        try:
            expect_array(got, reference_probs(logits, *args, **kwargs), probs_of.last_call,
                         tensor=False)
        except CheckFailure as failure:
            # Multiplied by the temperature: the distribution of its inverse.
            if args and args[0] not in (0, 1) and isinstance(got, np.ndarray) and np.allclose(
                    got, reference_probs(logits, 1 / args[0], *args[1:]), atol=1e-5):
                raise CheckFailure(f"{failure}\n    That is the distribution at temperature "
                                   f"1 / {args[0]:g}: divide the logits by the temperature, "
                                   f"not multiply.") from None
            why = _top_k_slip(got, reference_probs(logits, *args, **kwargs),
                              args[1] if len(args) > 1 else None)
            if why:
                raise CheckFailure(f"{failure}\n    {why}") from None
            raise
    tied = np.array([1.0, 3.0, 0.5, 3.0])           # two largest logits
    expect_array(on_copy(tied, 0), reference_probs(tied, 0), probs_of.last_call + "  (a tie "
                 "for the largest logit: temperature 0 gives all the probability to the lowest "
                 "id, as np.argmax)", tensor=False)
    rng = np.random.default_rng(9)
    for temperature, top_k in [(1.3, None), (0.4, 5), (0.0, None), (2.5, 1), (0.8, 12)]:
        logits = rng.standard_normal(12) * 3
        logits[3] = logits[7]                      # a tie, which top-k must keep together
        got = on_copy(logits, temperature, top_k)
        expect_array(got, reference_probs(logits, temperature, top_k), probs_of.last_call,
                     tensor=False, atol=1e-8)
    big = np.array([1000.0, 999.0, -1000.0])        # softmax overflows unless shifted by the max
    expect_array(on_copy(big, 1.0), reference_probs(big), probs_of.last_call + "  (large "
                 "logits: subtract the largest before np.exp)", tensor=False)


def _top_k_slip(got, expected, top_k):
    """What a wrong top-k distribution shows by its shape, or None: probabilities that do not
    add up to 1 (tokens zeroed after the softmax), or exactly k tokens where a tie at the k-th
    largest logit keeps more."""
    if not isinstance(got, np.ndarray) or got.shape != expected.shape or top_k is None:
        return None
    if np.issubdtype(got.dtype, np.floating) and np.isnan(got).all():
        return ("Your answer is all nan: it dropped every token, and the softmax of logits "
                "that are all -inf is 0 / 0. The k-th largest logit itself stays: drop only "
                "the logits below it (<, not <=).")
    total = got.sum()
    if np.isfinite(total) and not np.isclose(total, 1.0):
        return (f"Your probabilities add up to {total:.4g}, not 1: drop the tokens before the "
                f"softmax (a logit of -inf gets probability 0), so that the rest share all of "
                f"it.")
    kept, due = int(np.count_nonzero(got)), int(np.count_nonzero(expected))
    if kept == top_k < due:
        return (f"Your answer keeps exactly {top_k} tokens, where {due} are due: every token "
                f"whose logit EQUALS the k-th largest (k = {top_k}) stays, so a tie at the "
                f"border keeps more than k: compare with the k-th largest value, not with "
                f"positions in a sorted order.")
    if kept != due and np.isfinite(total):
        return (f"Your answer keeps {kept} tokens, where top_k = {top_k} keeps {due}: the "
                f"tokens whose logit is at least the k-th largest, np.sort(logits)[-top_k].")
    return None


# ---------------------------------------------------------------------------------------------
# Top-p
# ---------------------------------------------------------------------------------------------

def reference_top_p(probs: ArrayLike, top_p: float) -> np.ndarray:
    """sample_next's nucleus, with ties in probability ordered by the lower id."""
    probs = np.asarray(probs, dtype=np.float64)
    if top_p >= 1:
        return probs
    order = np.argsort(-probs, kind="stable")
    before = np.cumsum(probs[order]) - probs[order]
    keep = np.zeros(len(probs), dtype=bool)
    keep[order] = before < top_p
    kept = np.where(keep, probs, 0.0)
    return kept / kept.sum()


def _expect_nucleus(got, probs, top_p, call):
    """On a small hand-made input: if the learner keeps other tokens than the nucleus, say
    which, and why the nucleus is what it is."""
    if (isinstance(got, np.ndarray) and got.shape == probs.shape
            and np.issubdtype(got.dtype, np.floating) and np.isnan(got).all()):
        raise CheckFailure(f"{call} returned only nan: it kept no token, and renormalising "
                           f"divided 0 by 0. The likeliest token always stays (here "
                           f"{probs.max():g} alone reaches top_p = {top_p:g}): a token stays "
                           f"while the probability BEFORE it, likeliest first, is < top_p.")
    if not (isinstance(got, np.ndarray) and got.shape == probs.shape
            and np.issubdtype(got.dtype, np.number) and np.isfinite(got).all()):
        return                          # expect_array, called next, explains what is wrong
    kept = np.flatnonzero(got != 0).tolist()
    expected = reference_top_p(probs, top_p)
    nucleus = np.flatnonzero(expected).tolist()
    if kept != nucleus:
        order = np.argsort(-probs, kind="stable")
        before = np.cumsum(probs[order]) - probs[order]
        message = (f"{call} keeps the ids {kept} (nonzero); the nucleus is the ids {nucleus}. "
                   f"Likeliest first the ids are {order.tolist()}, the probability before "
                   f"each is {before.tolist()}, and a token stays while that is < top_p")
        if sorted(probs[kept]) == sorted(probs[nucleus]):   # other ids of equal probability
            message += f"; {EQUAL_PROBABILITIES}"
        raise CheckFailure(message + ".")
    total = float(got.sum())
    if not np.isclose(total, 1.0):
        raise CheckFailure(f"{call} keeps the right ids, {kept}, but their probabilities add "
                           f"up to {total:.4g}, not 1: divide the kept ones by their sum.")


# What a sort that reorders equal probabilities is told (an unstable sort, or an ascending one
# read backwards, which puts the higher id first).
EQUAL_PROBABILITIES = ("equal probabilities go lower id first, as a stable sort of the negated "
                       "probabilities keeps them: np.argsort(-probs, kind='stable')")


@exercise("top_p", "Top-p (nucleus) filtering", hints=[
    "List the ids likeliest first: a stable argsort of the negated probabilities "
    "(kind='stable') keeps ties in the order of their ids.",
    "The mass before each token in that order is the running total of the sorted "
    "probabilities (np.cumsum) less the token's own; a token stays when that is < top_p, so "
    "the first always stays.",
    "That decision is made in sorted order: carry it back to the ids' own order (a boolean "
    "array of length V, indexed by the sorted ids), zero the others, and renormalise so that "
    "the kept probabilities sum to 1.",
], forbid=["tinyformer.sampling", "tinyformer.decoding"])
def check_top_p(learner: Learner) -> None:
    top_p_filter = learner.function("top_p_filter")

    def filtered(probs, p):
        """top_p_filter on a copy of `probs`: a filter that zeroes the caller's array in place
        would spoil the expected answer, computed from `probs` after it."""
        return on_copies(top_p_filter, probs, p, advice=(
            "np.asarray(probs) is the caller's own array, not a copy: zero the dropped tokens "
            "in probs.copy(), or build a new array."))

    def expect_nucleus(probs, p):
        got = filtered(probs, p)
        _expect_nucleus(got, probs, p, top_p_filter.last_call)
        expect_array(got, reference_top_p(probs, p), top_p_filter.last_call, tensor=False)

    small = np.array([0.125, 0.5, 0.25, 0.125])   # exact in binary: the borders are exact too
    for p in [0.5, 0.75, 0.3, 0.9, 1.0]:            # where the order of ids 0 and 3 is no matter
        expect_nucleus(small, p)
    # Many ties at the border, and more than 16 tokens: there numpy's default sort reorders
    # equal probabilities, and only a stable one keeps them in the order of their ids. Tried
    # before any tie of the small case (top_p=0.8 keeps one of ids 0 and 3), which some
    # versions' unstable sorts reorder too (heapsort, numpy 2.2), and whose message would
    # only show the order the ids should have come in.
    ties = np.array([1, 1, 1, 3, 1, 2, 1, 1, 1, 1, 1, 2, 3, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1]) / 32
    for p in [0.5, 0.7]:
        expect_array(filtered(ties, p), reference_top_p(ties, p), top_p_filter.last_call +
                     f"  ({EQUAL_PROBABILITIES})", tensor=False)
    expect_nucleus(small, 0.8)
    rng = np.random.default_rng(4)
    for p in [0.9, 0.5, 0.99, 0.05]:
        logits = rng.standard_normal(20) * 2
        probs = np.exp(logits) / np.exp(logits).sum()
        got = filtered(probs, p)
        expect_array(got, reference_top_p(probs, p), top_p_filter.last_call, tensor=False,
                     atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Beam search
# ---------------------------------------------------------------------------------------------

def reference_beam_search(next_log_probs: NextScores, prompt: Iterable[int], beam_size: int,
                          max_new_tokens: int, end_id: int | None,
                          length: Callable[[list[int]], int] | None = None,
                          rank: Callable[[tuple[float, int, int]], Any] | None = None
                          ) -> tuple[list[int], float]:
    """tinyformer/decoding.py's beam search with no length penalty (alpha = 0), for any
    prompt. With `length`, sequences compete by log P / length(tokens) instead (their log P
    is returned as it is): the usual mistake of normalising by the length. `rank`: the sort
    key of the candidates (log P, beam, token), for the mistakes of ranking them otherwise
    than best first."""
    def better(tokens, log_prob, best):
        if best is None:
            return True
        if length is None:
            return log_prob > best[1]
        return log_prob / length(tokens) > best[1] / length(best[0])
    beams, best = [(list(prompt), 0.0)], None
    for _ in range(max_new_tokens):
        candidates = [(log_prob + float(lp), b, v) for b, (_, log_prob) in enumerate(beams)
                      for v, lp in enumerate(next_log_probs(list(beams[b][0])))]
        candidates.sort(key=rank or (lambda c: -c[0]))
        next_beams = []
        for log_prob, b, v in candidates:
            tokens = beams[b][0] + [v]
            if v == end_id:
                if better(tokens, log_prob, best):
                    best = (tokens, log_prob)
            else:
                next_beams.append((tokens, log_prob))
                if len(next_beams) == beam_size:
                    break
        beams = next_beams
        if not beams:
            break
    for tokens, log_prob in beams:
        if better(tokens, log_prob, best):
            best = (tokens, log_prob)
    return best


# Ascending, by log P alone (a stable sort) or by the whole tuple: the worst beams kept.
_WORST_FIRST = (lambda c: c[0], lambda c: c)


def _beam_mistakes(model, prompt, beam_size, max_new_tokens, end_id, ranks_worst_first):
    """(description, what beam search returns, whether it is the learner's) for the usual
    ways of normalising by length, and of ranking the candidates worst first. The last is a
    function: a search that keeps the worst beams can end like another mistake (returning the
    first sequence to finish, say), so `ranks_worst_first()` asks the learner's search a
    question only that mistake answers as it does."""
    prompt = list(prompt)
    search = (model, prompt, beam_size, max_new_tokens, end_id)
    lengths = [("", len), (" (of generated tokens)", lambda tokens: len(tokens) - len(prompt))]
    plain_sums = "Compare plain sums of log-probabilities here, as the docstring says."
    return ([(f"comparing sequences by log P divided by their length{what}. {plain_sums}",
              reference_beam_search(*search, length=length), lambda: True)
             for what, length in lengths]
            + [("ranking the candidates worst first (sorted by log P ascending), so that the "
                "worst beams are kept: sort them best first, by -log P (or with "
                "reverse=True)", reference_beam_search(*search, rank=rank), ranks_worst_first)
               for rank in _WORST_FIRST])


def repository_beam_search(next_log_probs: NextScores, bos_id: int, beam_size: int,
                           max_new_tokens: int, end_id: int | None) -> tuple[list[int], float]:
    """tinyformer.decoding.beam_search itself (alpha = 0), on a session made from
    next_log_probs: the interface every model's decoding session has."""
    from tinyformer.decoding import beam_search

    class Session:
        tokens = np.array([[bos_id]])
        room = None                                  # writes as long as it is asked to

        def next_logits(self):                       # log-probabilities are logits too
            return np.array([next_log_probs([int(i) for i in row]) for row in self.tokens])

        def append(self, tokens):
            self.tokens = np.concatenate([self.tokens, np.asarray(tokens)[:, None]], axis=1)

        def select(self, rows):
            self.tokens = self.tokens[rows]

    best = beam_search(Session(), beam_size, max_new_tokens, end_id, length_penalty=0.0)
    return [int(t) for t in best.tokens], best.log_prob


def brute_force_best(next_log_probs: NextScores, prompt: Iterable[int], max_new_tokens: int,
                     end_id: int | None, vocab_size: int) -> tuple[list[int], float] | None:
    """The likeliest of all sequences: ended by end_id within max_new_tokens, or cut off at
    max_new_tokens without it."""
    best = None
    for n in range(1, max_new_tokens + 1):
        for tail in itertools.product(range(vocab_size), repeat=n):
            if end_id in tail[:-1] or (n < max_new_tokens and tail[-1] != end_id):
                continue
            tokens, log_prob = list(prompt), 0.0
            for token in tail:
                log_prob += float(next_log_probs(tokens)[token])
                tokens = tokens + [token]
            if best is None or log_prob > best[1]:
                best = (tokens, log_prob)
    return best


BEAM_TABLE = [[0.0, 0.5, 0.4, 0.1],
              [0.0, 0.4, 0.3, 0.3],
              [0.0, 0.05, 0.05, 0.9],
              [0.0, 1 / 3, 1 / 3, 1 / 3]]


# 0 starts, 1 = "a", 2 = "b", 3 = end, 4 = "c". With 2 beams, [0, 3] ranks second at the first
# step and [0, 1, 3] ranks second at the next: a search that lets a finished sequence keep a
# beam's place keeps only [0, 1] and then [0, 1, 4], and never sees [0, 1, 3], the best.
EARLY_END_TABLE = [[0.0, 0.7, 0.1, 0.2, 0.0],
                   [0.0, 0.0, 0.05, 0.45, 0.5],
                   [0.0, 0.05, 0.05, 0.9, 0.0],
                   [0.0, 0.25, 0.25, 0.25, 0.25],
                   [0.0, 0.5, 0.0, 0.5, 0.0]]


# 0 starts, 1 = "a", 2 = "b", 3 = end, 4 = "c". After "a" and "b" (1/2 each), all four
# candidates of the second step tie at 1/4: the earlier beam's go first, so the two beams kept
# are [0, 1, 1] and [0, 1, 4], and [0, 1, 4, 3] finishes at 1/4. Ranking by token before beam
# keeps [0, 2, 1] in place of [0, 1, 4], and never finishes.
TIED_BEAMS_TABLE = [[0.0, 0.5, 0.5, 0.0, 0.0],
                    [0.0, 0.5, 0.0, 0.0, 0.5],
                    [0.0, 0.5, 0.0, 0.0, 0.5],
                    [0.0, 0.25, 0.25, 0.25, 0.25],
                    [0.0, 0.0, 0.0, 1.0, 0.0]]


# 0 starts, 1 = "a", 2 = "b", 3 = end. [0, 3] finishes at 0.3, and [0, 1, 3] at 0.7 * 0.4 =
# 0.28: less in all, more per token. The live beams end at 0.21.
SHORT_WINS_TABLE = [[0.0, 0.7, 0.0, 0.3],
                    [0.0, 0.3, 0.3, 0.4],
                    [0.0, 0.5, 0.5, 0.0],
                    [0.0, 1 / 3, 1 / 3, 1 / 3]]


def _expect_hypothesis(got, expected, call, note="", mistakes=()):
    """The learner's (tokens, log_prob) against the expected pair; wrong tokens that are what
    one of `mistakes` ((description, pair, confirmed)) returns are named, if `confirmed()`."""
    expect(isinstance(got, (tuple, list)) and len(got) == 2,
           f"{call} returned {describe(got)}; it should return a pair (tokens, log_prob).")
    tokens, log_prob = got
    expected_tokens, expected_log_prob = expected
    if isinstance(tokens, (float, np.floating)) and isinstance(log_prob, (list, tuple,
                                                                         np.ndarray)):
        raise CheckFailure(f"{call} returned ({float(tokens):.6g}, {describe(log_prob, 40)}): "
                           f"the log_prob first. Return the pair the other way round, (tokens, "
                           f"log_prob).")
    tokens = tokens if not isinstance(tokens, np.ndarray) else tokens.tolist()
    try:
        expect_equal(tokens, expected_tokens, call + note, what="returned tokens with")
    except CheckFailure as failure:
        named = next((description for description, (wrong, _), confirmed in mistakes
                      if wrong != expected_tokens and tokens == wrong and confirmed()), None)
        if named is None:
            raise
        raise CheckFailure(f"{failure}\n    That is exactly what you get {named}.") from None
    try:
        expect_array(log_prob, expected_log_prob, call + note,
                     what="returned the right tokens but, as their log_prob,")
    except CheckFailure as failure:
        n = len(tokens)
        if not (isinstance(log_prob, (int, float, np.number))
                and np.isclose(log_prob, expected_log_prob / n)):
            raise
        raise CheckFailure(f"{failure}\n    That is their log P divided by their length, {n}: "
                           f"return the plain sum.") from None


@exercise("beam_search", "Beam search", hints=[
    "Keep the beams as a list of (tokens, log_prob) pairs, best first. At the start there "
    "is one beam, the prompt, whose log-probability is that of certainty; aside from the "
    "beams, remember the best finished (tokens, log_prob), of which there is none yet.",
    "Each step every beam proposes every token: a candidate is (its beam's log-prob + the "
    "token's log-prob, the beam, the token). Sort them best first; Python's sort is stable, "
    "which gives the tie order.",
    "Walk the sorted candidates: one that ends (the end id) competes with the best finished "
    "sequence so far, and only a strictly larger log-prob replaces it; any other extends its "
    "beam into the next beams, until there are beam_size of them.",
    "When the steps run out, the unfinished beams compete with the best finished one on the "
    "same terms: plain log-probability, with no division by the length.",
], forbid=["tinyformer.decoding"])
def check_beam_search(learner: Learner) -> None:
    beam_search = learner.function("beam_search")

    table = table_model(BEAM_TABLE, "the file's table_log_probs", log=True)

    def ranks_worst_first():
        """Whether the learner's search keeps the worst beams on one beam of the file's model:
        the impossible token 0 every time (as a search that does not sort at all would too,
        but that one ends otherwise where several beams are kept)."""
        search = (table, [0], 1, 3, 3)
        try:
            got = on_copies(beam_search, *search)
        except CheckFailure:
            return False
        worst = reference_beam_search(*search, rank=_WORST_FIRST[0])
        return isinstance(got, (tuple, list)) and len(got) == 2 and \
            isinstance(got[0], (list, tuple, np.ndarray)) and list(got[0]) == worst[0]

    def expect_search(search, expected, note=""):
        """beam_search(*search) must return `expected`."""
        got = on_copies(beam_search, *search)      # models are used again: give it copies
        _expect_hypothesis(got, expected, beam_search.last_call, note,
                           _beam_mistakes(*search, ranks_worst_first))

    for beam_size, max_new in [(2, 3), (1, 3), (3, 4), (1, 1)]:
        search = (table, [0], beam_size, max_new, 3)
        expect_search(search, reference_beam_search(*search))
    # Probabilities of 1/2 and 1 make sums of log-probabilities tie exactly: the tie rules decide.
    ties = step_model([[0.0, 0.5, 0.5, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]],
                      "a model that gives 1/2 or 1 by step")
    tied_beams = table_model(TIED_BEAMS_TABLE, "a model whose two beams tie", log=True)
    for model, beam_size, max_new, end_id in [(ties, 2, 3, 3), (ties, 1, 1, 1),
                                              (tied_beams, 2, 3, 3)]:
        search = (model, [0], beam_size, max_new, end_id)
        expect_search(search, reference_beam_search(*search), "  (log-probabilities that tie: "
                      "the earlier beam, then the lower token, ranks first, and only a strictly "
                      "larger log P replaces the best finished sequence)")
    early_end = table_model(EARLY_END_TABLE, "a model whose end token ranks high early",
                            log=True)
    short_wins = table_model(SHORT_WINS_TABLE, "a model whose likeliest sequence is short",
                             log=True)
    for search, note in [((early_end, [0], 2, 3, 3), "a finished sequence leaves the beams "
                          "and takes none of their places: only live beams count toward "
                          "beam_size"),
                         ((short_wins, [0], 2, 2, 3), "finished sequences compete by plain "
                          "log P too, whatever their lengths")]:
        expect_search(search, reference_beam_search(*search), f"  ({note})")
    # Enough beams to keep every sequence: beam search becomes exhaustive search.
    model = random_model(3, seed=7, log_probs=True)
    expect_search((model, [0], 27, 3, 2), brute_force_best(model, [0], 3, 2, 3),
                  "  (27 beams keep every sequence, so the answer is the likeliest of all "
                  "sequences, found by trying each)")
    # Against tinyformer/decoding.py's beam search itself (length_penalty 0), on random models.
    for seed, beam_size, max_new in [(1, 2, 5), (2, 3, 6), (3, 1, 6), (4, 4, 4)]:
        model = random_model(5, seed=seed, log_probs=True)
        expect_search((model, [0], beam_size, max_new, 4),
                      repository_beam_search(model, 0, beam_size, max_new, 4),
                      "  (a random model, compared with tinyformer.decoding.beam_search with "
                      "length_penalty=0)")
    model = random_model(4, seed=11, log_probs=True)
    search = (model, [3, 1, 2], 2, 5, 0)
    expect_search(search, reference_beam_search(*search), "  (a random model and a longer "
                  "prompt)")


# ---------------------------------------------------------------------------------------------
# The key-value cache
# ---------------------------------------------------------------------------------------------

def full_causal_attention(x: np.ndarray, w_q: np.ndarray, w_k: np.ndarray,
                          w_v: np.ndarray) -> np.ndarray:
    """Rows of causal self-attention over x (T, d_model), by tinyformer's attention."""
    from tinyformer.attention import causal_mask, scaled_dot_product_attention
    q, k, v = (Tensor(x @ w, dtype=np.float64) for w in (w_q, w_k, w_v))
    return scaled_dot_product_attention(q, k, v, mask=causal_mask(len(x))).data


def _scale_mistakes(x, w_q, w_k, w_v, t):
    """(description, row t of causal attention) for the usual wrong scales of the scores."""
    q, keys, values = x[t] @ w_q, x[:t + 1] @ w_k, x[:t + 1] @ w_v
    d_head = len(q)

    def row(scale):
        scores = keys @ q * scale
        weights = np.exp(scores - scores.max())
        return weights / weights.sum() @ values
    return [(f"without dividing the scores by sqrt(d_head), sqrt({d_head})", row(1.0)),
            (f"dividing the scores by d_head ({d_head}) instead of its square root",
             row(1 / d_head)),
            (f"dividing the scores by the square root of the number of cached keys ({t + 1}) "
             f"instead of d_head ({d_head}), the length of each query and key",
             row(1 / np.sqrt(t + 1)))]


def _check_cached_attention(learner, x, w_q, w_k, w_v, label):
    make = learner.function("CachedAttention")
    # Copies: the expected keys, values and rows are worked out from these very arrays.
    attention = on_copies(make, w_q, w_k, w_v)
    expect(hasattr(attention, "keys") and hasattr(attention, "values"),
           f"{make.last_call} has no `keys` or no `values`: keep the names the file gave the "
           f"cache, the checker looks at them.")
    full = full_causal_attention(x, w_q, w_k, w_v)           # (T, d_head)
    step = Call(attention.step, "CachedAttention.step", learner.path)
    for t in range(len(x)):
        out = on_copies(step, x[t])
        where = f"{step.last_call} (call {t + 1}, {label})"
        expect_array(attention.keys, x[:t + 1] @ w_k, where, what="left in `keys`")
        expect_array(attention.values, x[:t + 1] @ w_v, where, what="left in `values`")
        _expect_numpy(out, full[t], f"{where[:-1]}; due: row {t} of full causal attention)",
                      mistakes=_scale_mistakes(x, w_q, w_k, w_v, t), atol=1e-8)


@exercise("kv_cache", "A key-value cache", hints=[
    "The new token's query, key and value are its row x times w_q, w_k and w_v: one vector "
    "each, of length d_head.",
    "Append the new key and value to the cache (one more row each, np.vstack) before "
    "attending: the new token attends to itself too.",
    "Then it is attention for a single query: its scores against every cached key, divided by "
    "sqrt(d_head), a softmax (subtract the largest score first), and the weighted sum of the "
    "cached values.",
], forbid=["tinyformer.attention", "tinyformer.decoding"])
def check_kv_cache(learner: Learner) -> None:
    eye = np.eye(2)
    _check_cached_attention(learner, np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), eye, eye,
                            eye, "w_q = w_k = w_v = identity")
    rng = np.random.default_rng(3)
    d_model, d_head, T = 5, 3, 7
    w_q, w_k, w_v = (rng.standard_normal((d_model, d_head)) for _ in range(3))
    _check_cached_attention(learner, rng.standard_normal((T, d_model)), w_q, w_k, w_v,
                            "random weights, d_model 5, d_head 3")
    # Scores in the thousands: np.exp of them overflows unless the largest is subtracted first.
    _check_cached_attention(learner, 40 * np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), eye,
                            eye, eye, "large scores: subtract the largest before np.exp")
    _check_each_key_computed_once(learner, rng.standard_normal((3, d_model)), w_q, w_k, w_v,
                                  *(rng.standard_normal((d_model, d_head)) for _ in range(2)))


def _check_each_key_computed_once(learner, x, w_q, w_k, w_v, new_w_k, new_w_v):
    """A cache computes each token's key and value once, when the token arrives: with other
    weights from the third call on, the first two rows stay as they were. A step that keeps
    the tokens and projects them all again passes every other check (the weights never change
    in a model), and saves nothing."""
    attention = on_copies(learner.function("CachedAttention"), w_q, w_k, w_v)
    step = Call(attention.step, "CachedAttention.step", learner.path)
    on_copies(step, x[0])
    on_copies(step, x[1])
    attention.w_k, attention.w_v = new_w_k, new_w_v
    on_copies(step, x[2])
    for name, kept in [("keys", x[:2] @ w_k), ("values", x[:2] @ w_v)]:
        rows = np.asarray(getattr(attention, name))[:2]
        expect(rows.shape == kept.shape and np.allclose(rows, kept, atol=1e-8),
               f"{step.last_call} (call 3, after the checker gave the cache other weights, "
               f"w_k and w_v) changed the {name} of the two earlier tokens: your step projects "
               f"the earlier tokens again. A cache computes each token's key and value once, "
               f"when the token arrives, and keeps them: that is the work it saves.")
