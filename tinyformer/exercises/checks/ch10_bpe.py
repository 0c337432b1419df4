"""Checkers for chapter 10: byte-pair encoding (pairs and merges, training, encoding and
decoding), compared with tinyformer/tokenizers.py wherever its conventions are the same.

BPETokenizer cuts text into GPT-2's words before it learns or applies merges; these exercises
do not. On text made of letters only the whole text is one word, and there the two must agree
exactly; on other text the checker's own reference (the same loop, no cutting) is used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from tinyformer.tokenizers import BPETokenizer, merge as repository_merge

from ..checking import CheckFailure, Learner, a_kind, describe, expect_equal, on_copies
from ..catalogue import Question, exercise

# The chapter's "predict, then run" question (`tinyformer exercises predict 10`).
QUESTION = Question(code="""\
text = "hi é"
print(list(text.encode("utf-8")))
print(len(text), len(text.encode("utf-8")))
""", output="""\
[104, 105, 32, 195, 169]
4 5
""", why=(
    'é is one character but two bytes in UTF-8 (195, 169), so the text has 4 characters and 5 '
    'bytes. Byte-level BPE starts from the 256 byte values, so it can write any text, and its '
    'merges learn the common pieces of several bytes.'))


def _readable(ids):
    """How a list of byte ids reads, for messages: [97, 97, 98] -> 'aab'."""
    try:
        return bytes(ids).decode("utf-8")
    except (ValueError, TypeError):
        return None


def _times(n):
    return "once" if n == 1 else f"{n} times"


def _ids_text(ids):
    text = _readable(ids)
    return describe(ids, limit=40) + (f' ("{text}")' if text is not None else "")


# ---------------------------------------------------------------------------------------------
# Pairs and merges
# ---------------------------------------------------------------------------------------------

def _as_pair_counts(got, call):
    """The learner's pair counts as {(int, int): int}, or a CheckFailure saying what it is."""
    if got is None:
        raise CheckFailure(f"{call} returned None. Did you forget a `return`?")
    if not isinstance(got, Mapping):
        raise CheckFailure(f"{call} returned {describe(got)}, {a_kind(got)}; it should "
                           f"be a dict from pairs (a, b) to counts.")
    counts = {}
    for pair, count in got.items():
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise CheckFailure(f"{call} returned a dict with the key {pair!r}; each key should "
                               f"be a pair of ids, a tuple (a, b).")
        counts[(int(pair[0]), int(pair[1]))] = count
    return counts


def _expect_pair_counts(got, expected, call):
    counts = _as_pair_counts(got, call)
    for pair in sorted(set(counts) | set(expected)):
        if pair not in expected and counts[pair] == 0:
            continue                                    # a pair counted zero times is harmless
        if pair not in counts:
            raise CheckFailure(f"{call} misses the pair {pair}, which occurs "
                               f"{_times(expected[pair])}.")
        if pair not in expected:
            raise CheckFailure(f"{call} counts the pair {pair} {_times(counts[pair])}, but "
                               f"those two ids are never neighbours.")
        if counts[pair] != expected[pair]:
            raise CheckFailure(f"{call} counts the pair {pair} {_times(counts[pair])}; it occurs "
                               f"{_times(expected[pair])} (overlapping occurrences count: "
                               f"[7, 7, 7] holds (7, 7) twice).")


@exercise("bpe_merge", "Byte-pair merges", hints=[
    "zip(ids, ids[1:]) gives every pair of neighbours; collections.Counter counts them.",
    "merge: walk an index i over ids with a while loop, since a match jumps by 2 and anything "
    "else by 1.",
    "A match needs an element after position i at all (mind the last position). On a match "
    "the new id stands for both ids, so the walk steps past the pair: that is why merges "
    "never overlap.",
], forbid=["tinyformer.tokenizers"])
def check_bpe_merge(learner: Learner) -> None:
    count_pairs = learner.function("count_pairs")
    for ids in [[97, 97, 97, 98], [1, 2, 1, 2, 1], [5], [], [3, 3, 3, 3, 4, 3]]:
        got = count_pairs(list(ids))
        _expect_pair_counts(got, dict(Counter(zip(ids, ids[1:]))), count_pairs.last_call)

    merge = learner.function("merge")
    cases = [([97, 97, 97, 98], (97, 97), 256), ([97, 97, 97, 97], (97, 97), 256),
             ([1, 2, 1, 2, 1], (2, 1), 300), ([1, 2, 1, 2], (1, 2), 9), ([4, 5, 4], (5, 6), 7),
             ([], (1, 2), 3), ([8, 8], (8, 8), 300)]
    rng = np.random.default_rng(10)
    for _ in range(5):
        ids = rng.integers(0, 3, size=25).tolist()
        cases.append((ids, (ids[3], ids[4]), 256))
    for ids, pair, new_id in cases:
        got = on_copies(merge, ids, pair, new_id, advice="Build a new list instead.")
        expect_equal(got, repository_merge(ids, pair, new_id), merge.last_call)
    ids = rng.integers(0, 4, size=40).tolist()
    _expect_pair_counts(count_pairs(list(ids)), dict(Counter(zip(ids, ids[1:]))),
                        count_pairs.last_call)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def reference_train(text: str, n_merges: int) -> list[tuple[int, int]]:
    """BPE on the bytes of `text` (no cutting into words); ties to the smallest pair."""
    return _train(list(text.encode("utf-8")), n_merges)


def _train(ids: list[int], n_merges: int) -> list[tuple[int, int]]:
    """BPE starting from `ids`: the bytes, or what a learner may start from instead."""
    merges = []
    for new_id in range(256, 256 + n_merges):
        counts = Counter(zip(ids, ids[1:]))
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        ids = repository_merge(ids, best, new_id)
        merges.append(best)
    return merges


def _as_merges(got, call):
    if got is None:
        raise CheckFailure(f"{call} returned None. Did you forget a `return`?")
    if not isinstance(got, (list, tuple)):
        raise CheckFailure(f"{call} returned {describe(got)}; it should return a list of "
                           f"pairs (a, b).")
    merges = []
    for k, pair in enumerate(got):
        try:
            a, b = pair
            merges.append((int(a), int(b)))
        except (TypeError, ValueError):
            raise CheckFailure(f"{call} returned {describe(pair)} as merge {k}; each merge "
                               f"should be a pair of ids (a, b).") from None
    return merges


def _from_code_points(text, merges):
    """The next step when `merges` are what BPE learns from the text's code points (ord) in
    place of its UTF-8 bytes; empty otherwise."""
    wide = next((c for c in text if ord(c) > 127), None)
    if wide is None or merges != _train([ord(c) for c in text], len(merges)):
        return ""
    return (f"\n    Those are the merges of the text's code points (ord(c)); the ids start from "
            f"its UTF-8 bytes, text.encode(\"utf-8\"): {wide!r} is the "
            f"{len(wide.encode('utf-8'))} bytes {' '.join(map(str, wide.encode('utf-8')))}, "
            f"not {ord(wide)}.")


def _expect_merges(got, text, n_merges, expected, call):
    """The learner's merges against the expected ones; at the first difference, say how often
    each of the two pairs occurred at that point, which shows a wrong count or a wrong tie."""
    merges = _as_merges(got, call)
    for k, (want, have) in enumerate(zip(expected, merges)):
        if want == have:
            continue
        ids = list(text.encode("utf-8"))
        for j, pair in enumerate(expected[:k]):
            ids = repository_merge(ids, pair, 256 + j)
        counts = Counter(zip(ids, ids[1:]))
        why = (f"both occur {_times(counts[want])}, and ties go to the smaller pair"
               if counts[want] == counts[have] else
               f"{want} occurs {_times(counts[want])} and {have} {_times(counts[have])}")
        if have in merges[:k]:          # counted once, before the merges that use it up
            why += (f": it is merge {merges.index(have)} again. Count the pairs again after "
                    f"each merge, in the ids as the merges so far left them")
        elif max(have) >= 256 + k:      # new ids counted from 257 (or more)
            why += (f": after {k} merges the new ids are 256 to {255 + k}, not "
                    f"{max(have)}. Merge k makes the new id 256 + k")
        done = ("before any merge" if k == 0 else "after the first merge" if k == 1 else
                f"after the first {k} merges")
        raise CheckFailure(f"{call} learned a wrong merge {k} (new id {256 + k}): expected "
                           f"{want}, got {have}; {done}, {why}.\n"
                           f"    expected merges: {describe(expected, limit=40)}\n"
                           f"    got:             {describe(merges, limit=40)}"
                           + _from_code_points(text, merges[:k + 1]))
    if len(merges) != len(expected):
        raise CheckFailure(f"{call} returned {len(merges)} merges; expected {len(expected)} "
                           f"(one per merge asked for, fewer only when no pair is left).\n"
                           f"    expected merges: {describe(expected, limit=40)}\n"
                           f"    got:             {describe(merges, limit=40)}")


@exercise("bpe_train", "Training byte-pair encoding", hints=[
    "Keep `ids` and a `merges` list; loop `for new_id in range(256, 256 + n_merges)`.",
    "Each round: count the pairs of the current ids and stop when there are none; else choose "
    "the best pair, merge it everywhere into new_id, and record it.",
    "Choose by two keys: the highest count first, and among equal counts the smallest pair "
    "(tuples compare element by element). `min` with a key that returns (-count, pair) does "
    "both.",
], forbid=["tinyformer.tokenizers"])
def check_bpe_train(learner: Learner) -> None:
    bpe_train = learner.function("bpe_train")
    got = bpe_train("aaabdaaabac", 3)
    _expect_merges(got, "aaabdaaabac", 3, [(97, 97), (97, 98), (256, 257)],
                   bpe_train.last_call)
    text = "the cat sat on the mat; the cat ate the rat"
    _expect_merges(bpe_train(text, 8), text, 8, reference_train(text, 8), bpe_train.last_call)

    rng = np.random.default_rng(5)
    # Letters only: the whole text is one GPT-2 word, so BPETokenizer.train must agree.
    for length, n_merges in [(60, 6), (200, 12)]:
        text = "".join(rng.choice(list("abcd"), size=length, p=[0.4, 0.3, 0.2, 0.1]))
        expected = BPETokenizer.train(text, 256 + n_merges).merges
        _expect_merges(bpe_train(text, n_merges), text, n_merges, expected,
                       bpe_train.last_call)
    text = "".join(rng.choice(list("ab é,"), size=80))       # spaces, "é" (two bytes), commas
    _expect_merges(bpe_train(text, 10), text, 10, reference_train(text, 10),
                   bpe_train.last_call)
    _expect_merges(bpe_train("ab", 3), "ab", 3, [(97, 98)], bpe_train.last_call)


# ---------------------------------------------------------------------------------------------
# Encoding and decoding
# ---------------------------------------------------------------------------------------------

def reference_encode(text: str, merges: Sequence[tuple[int, int]]) -> list[int]:
    """BPETokenizer's encoding of one word, for any text (no cutting into words)."""
    ids = list(text.encode("utf-8"))
    rank = {pair: 256 + k for k, pair in enumerate(merges)}
    while len(ids) > 1:
        new_id = min((rank[pair] for pair in zip(ids, ids[1:]) if pair in rank), default=None)
        if new_id is None:
            break
        ids = repository_merge(ids, merges[new_id - 256], new_id)
    return ids


def _expect_encoding(bpe_encode, text, merges, expected):
    got = on_copies(bpe_encode, text, merges)
    if isinstance(got, np.ndarray):
        got = got.tolist()
    if got != expected and isinstance(got, list):
        raise CheckFailure(f"{bpe_encode.last_call} returned a wrong value.\n"
                           f"    expected: {describe(expected, limit=40)}\n"
                           f"    got:      {describe(got, limit=40)}\n"
                           f"    (the text's bytes are {_ids_text(list(text.encode('utf-8')))}"
                           f"; merges[k] makes id 256 + k)")
    expect_equal(got, expected, bpe_encode.last_call)


@exercise("bpe_encode", "Encoding and decoding with learned merges", hints=[
    "encode: a merge's new id is 256 plus its position in merges, so a lower new id means "
    "learned earlier. A dict from pair to new id finds them fast.",
    "encode, each round: among the neighbouring pairs of the current ids, find those that are "
    "merges; stop when there are none, else apply the earliest learned one everywhere with "
    "your merge.",
    "decode: the bytes of every id. Ids below 256 are single bytes, and each merge's bytes "
    "are its two parts' bytes joined, built in the order the merges were learned.",
    "Join all the bytes first and decode them once: a character of several bytes may be split "
    "across tokens, and only the joined bytes are valid UTF-8 (errors='replace' covers ids "
    "that are not).",
], forbid=["tinyformer.tokenizers"])
def check_bpe_encode(learner: Learner) -> None:
    bpe_encode = learner.function("bpe_encode")
    bpe_decode = learner.function("bpe_decode")
    merges = [(97, 97), (97, 98), (256, 257)]             # learned from "aaabdaaabac"
    for text in ["aaab", "aab", "abaa", "aaabdaaabac", "", "xyz"]:
        _expect_encoding(bpe_encode, text, merges, reference_encode(text, merges))
    for ids, text in [([258], "aaab"), ([257, 256], "abaa"), ([258, 100, 258, 97, 99],
                                                              "aaabdaaabac"), ([], "")]:
        expect_equal(on_copies(bpe_decode, ids, merges), text, bpe_decode.last_call)
    # "é" is the bytes 195 169; the merge (97, 195) cuts it across two tokens.
    _expect_encoding(bpe_encode, "aé", [(97, 195)], [256, 169])
    expect_equal(bpe_decode([256, 169], [(97, 195)]), "aé", bpe_decode.last_call,
                 what="(the bytes 97 195 + 169: \"a\" and the two bytes of \"é\") returned")

    rng = np.random.default_rng(8)
    # Letters only: one GPT-2 word, so BPETokenizer itself must give the same ids.
    training = "".join(rng.choice(list("abc"), size=300, p=[0.5, 0.3, 0.2]))
    tokenizer = BPETokenizer.train(training, 256 + 15)
    for _ in range(4):
        text = "".join(rng.choice(list("abc"), size=int(rng.integers(1, 30))))
        _expect_encoding(bpe_encode, text, tokenizer.merges, tokenizer.encode(text))

    # Any text: spaces, accents, emoji (four bytes each) and merges learned across them.
    alphabet = list("ab é中🙂,")
    training = "".join(rng.choice(alphabet, size=200))
    merges = reference_train(training, 20)
    for _ in range(6):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 25))))
        expected = reference_encode(text, merges)
        _expect_encoding(bpe_encode, text, merges, expected)
        expect_equal(bpe_decode(expected, merges), text, bpe_decode.last_call,
                     what="(decoding the ids of the text) returned")
    # Ids chosen freely, as a model samples them, may cut a character in two.
    tokenizer = BPETokenizer(merges)
    for _ in range(3):
        ids = rng.integers(0, 256 + len(merges), size=12).tolist()
        expect_equal(bpe_decode(ids, merges), tokenizer.decode(ids), bpe_decode.last_call)
