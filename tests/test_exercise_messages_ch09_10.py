"""The checkers of chapters 9 (generation) and 10 (byte-pair encoding) explain realistic wrong
answers: each test writes a reference solution with one mistake and reads the message."""


import pytest
from solutions import edited_message, expect_changed_in_place

from tinyformer.exercises import find

# Some wrong answers divide by zero or overflow on the way; numpy's warnings about it are noise.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


CASES = [
    # (slug, file, old, new, what the message must say)
    ("greedy", "09_generation/greedy.py", "        if token == end_id:\n            break\n",
     "", ["greedy(next_logits=<the file's bigram_logits>", "end_id=3",
          "expected: [0, 1, 2, 3]", "got:      [0, 1, 2, 3, 0"]),
    # The end id tested before appending: the statement asks for it appended, then the stop.
    ("greedy", "09_generation/greedy.py",
     "        ids.append(token)\n        if token == end_id:\n            break\n",
     "        if token == end_id:\n            break\n        ids.append(token)\n",
     ["end_id=3) returned a wrong value", "expected: [0, 1, 2, 3]", "got:      [0, 1, 2]",
      "That is the sequence without its end id", "Test for it after appending the token"]),
    ("greedy", "09_generation/greedy.py", "    return ids", "    return ids[len(prompt):]",
     ["returned only the new tokens [1, 2, 3]", "the prompt followed by them"]),
    ("greedy", "09_generation/greedy.py",              # stops only after a token: one too many
     "    for _ in range(max_new_tokens):\n        token = int(np.argmax(next_logits(list(ids))))"
     "\n        ids.append(token)\n        if token == end_id:\n",
     "    while True:\n        token = int(np.argmax(next_logits(list(ids))))"
     "\n        ids.append(token)\n"
     "        if token == end_id or len(ids) >= len(prompt) + max_new_tokens:\n",
     ["prompt=[1], max_new_tokens=0, end_id=3) returned a wrong value", "got:      [1, 2]"]),
    ("greedy", "09_generation/greedy.py", "range(max_new_tokens)", "range(max_new_tokens + 1)",
     ["max_new_tokens=2", "expected: [0, 1, 2]", "got:      [0, 1, 2, 3]"]),
    ("greedy", "09_generation/greedy.py", "ids = [int(i) for i in prompt]", "ids = prompt",
     ["greedy(next_logits=<the file's bigram_logits>, prompt=[0], max_new_tokens=10",
      "changed the prompt it was given, in place, to [0, 1, 2, 3]: the caller still needs "
      "what it passed in. Start from a copy: ids = list(prompt)."]),
    ("greedy", "09_generation/greedy.py", "if token == end_id:", "if end_id and token == end_id:",
     ["prompt=[1], max_new_tokens=6, end_id=0) went on past the end id 0",
      "returned [1, 2, 3, 0, 1, 2, 3], expected [1, 2, 3, 0]"]),
    ("temperature_top_k", "09_generation/temperature_top_k.py",
     "logits = logits / temperature", "logits = logits",
     ["next_token_probs(logits=[2., 1., 0., 1.], temperature=0.5)", "at [0]"]),
    ("temperature_top_k", "09_generation/temperature_top_k.py",
     "logits = logits / temperature", "logits = logits * temperature",
     ["next_token_probs(logits=[2., 1., 0., 1.], temperature=0.5)", "at temperature 1 / 0.5: "
      "divide the logits by the temperature, not multiply."]),
    ("temperature_top_k", "09_generation/temperature_top_k.py",
     "probs = np.zeros_like(logits)\n        probs[np.argmax(logits)] = 1.0",
     "probs = (logits == logits.max()).astype(float)", ["next_token_probs(logits=[1. , 3. , "
     "0.5, 3. ], temperature=0)", "to the lowest id", "at [3]: expected 0, got 1"]),
    ("temperature_top_k", "09_generation/temperature_top_k.py", "logits < kth_largest",
     "logits <= kth_largest", ["top_k=1", "returned a wrong value", "nan"]),
    ("temperature_top_k", "09_generation/temperature_top_k.py",
     "kth_largest = np.sort(logits)[-top_k]\n        logits = np.where(logits < kth_largest",
     "drop = np.argsort(-logits, kind='stable')[top_k:]\n        logits = np.where("
     "np.isin(np.arange(len(logits)), drop)", ["top_k=2", "at [3]: expected 0.211942, got 0"]),
    ("temperature_top_k", "09_generation/temperature_top_k.py",
     "exp = np.exp(logits - logits.max())", "exp = np.exp(logits)",
     ["logits=[ 1000., 999., -1000.]", "subtract the largest"]),
    # top_k larger than the vocabulary keeps every token, as sample_next does.
    ("temperature_top_k", "09_generation/temperature_top_k.py",
     "top_k is not None and top_k < len(logits)", "top_k is not None",
     ["next_token_probs(logits=[2., 1., 0., 1.], temperature=1.0, top_k=5) raised an error",
      "IndexError"]),
    ("top_p", "09_generation/top_p.py", "before < top_p", "before <= top_p",
     ["top_p_filter(probs=[0.125, 0.5 , 0.25 , 0.125], top_p=0.5)", "keeps the ids [1, 2]",
      "the nucleus is the ids [1]"]),
    ("top_p", "09_generation/top_p.py", 'np.argsort(-probs, kind="stable")',
     'np.argsort(-probs, kind="heapsort")', ["top_p_filter(probs=array of shape (24,), float64, "
     "top_p=0.5)", "kind='stable'", "at [0]: expected 0.0625, got 0"]),
    # Sorted ascending and read backwards: every tie goes higher id first, the small case's
    # too, which is not where the learner is told how to sort.
    ("top_p", "09_generation/top_p.py", 'np.argsort(-probs, kind="stable")',
     "np.argsort(probs)[::-1]", ["top_p_filter(probs=array of shape (24,), float64, top_p=0.5)",
                                 "np.argsort(-probs, kind='stable')"]),
    ("top_p", "09_generation/top_p.py", "before = np.cumsum(sorted_probs) - sorted_probs",
     "before = np.cumsum(sorted_probs)", ["top_p=0.5) returned only nan: it kept no token",
                                          "(here 0.5 alone reaches top_p = 0.5)"]),
    ("top_p", "09_generation/top_p.py", "return filtered / filtered.sum()",
     "return filtered", ["top_p=0.5) keeps the right ids, [1], but their probabilities add "
                         "up to 0.5, not 1: divide the kept ones by their sum."]),
    # Right values, zeroed in the caller's array: not told its values are wrong.
    ("top_p", "09_generation/top_p.py", "    filtered = np.where(keep, probs, 0.0)\n",
     "    probs[~keep] = 0.0\n    filtered = probs\n",
     ["top_p_filter(probs=[0.125, 0.5 , 0.25 , 0.125], top_p=0.5) changed the probs it was "
      "given, in place, to [0. , 0.5, 0. , 0. ]", "np.asarray(probs) is the caller's own array, "
      "not a copy: zero the dropped tokens in probs.copy(), or build a new array."]),
    ("beam_search", "09_generation/beam_search.py", "if v == end_id:", "if False:",
     ["beam_search(next_log_probs=<the file's table_log_probs>", "beam_size=2",
      "returned tokens with a wrong value", "expected: [0, 2, 3]"]),
    ("beam_search", "09_generation/beam_search.py", "best = (tokens, log_prob)\n            else:",
     "best = (tokens, log_prob / len(tokens))\n            else:",
     ["returned the right tokens but, as their log_prob", "expected -1.02165, got -0.34",
      "That is their log P divided by their length, 3: return the plain sum."]),
    # Finished sequences compared by log P per token, as decoding.py's length penalty would:
    # no finished sequence the checker's models made beat a shorter one by it, so this passed.
    ("beam_search", "09_generation/beam_search.py",
     "if best is None or log_prob > best[1]:\n                    best",
     "if best is None or log_prob / len(tokens) > best[1] / len(best[0]):\n"
     "                    best",
     ["beam_search(next_log_probs=<a model whose likeliest sequence is short>, prompt=[0], "
      "beam_size=2, max_new_tokens=2, end_id=3)", "expected: [0, 3]", "got:      [0, 1, 3]",
      "That is exactly what you get comparing sequences by log P divided by their length. "
      "Compare plain sums of log-probabilities here"]),
    ("beam_search", "09_generation/beam_search.py", "    return best\n",
     "    return best[1], best[0]\n", ["end_id=3) returned (-1.02165, [0, 2, 3]): the log_prob "
                                     "first", "(tokens, log_prob)"]),
    ("beam_search", "09_generation/beam_search.py", "    return best\n",
     "    return best[0], str(best[1])\n", ["returned the right tokens but, as their log_prob, "
                                          "'-1.0216", "which is not an array of numbers"]),
    ("beam_search", "09_generation/beam_search.py", "len(next_beams) == beam_size",
     "len(next_beams) == beam_size + 1", ["beam_size=1", "returned tokens with a wrong value"]),
    ("beam_search", "09_generation/beam_search.py",
     "if best is None or log_prob > best[1]:\n                    best",
     "if best is None or log_prob >= best[1]:\n                    best",
     ["<a model that gives 1/2 or 1 by step>, prompt=[0], beam_size=2, max_new_tokens=3",
      "only a strictly larger log P replaces", "expected: [0, 1, 1, 3]", "got:      [0, 1, 2, 3]"]),
    ("beam_search", "09_generation/beam_search.py",
     "    for tokens, log_prob in beams:\n        if best is None or log_prob > best[1]:",
     "    for tokens, log_prob in beams:\n        if best is None or log_prob >= best[1]:",
     ["beam_size=1, max_new_tokens=1, end_id=1", "expected: [0, 1]", "got:      [0, 2]"]),
    # A finished sequence kept as if it held one of the beam_size places.
    ("beam_search", "09_generation/beam_search.py",
     "                next_beams.append((tokens, log_prob))\n"
     "                if len(next_beams) == beam_size:\n",
     "                next_beams.append((tokens, log_prob))\n"
     "            if len(next_beams) + (best is not None) >= beam_size:\n",
     ["<a model whose end token ranks high early>, prompt=[0], beam_size=2, max_new_tokens=3",
      "only live beams count toward beam_size", "expected: [0, 1, 3]", "got:      [0, 3]"]),
    ("beam_search", "09_generation/beam_search.py", "candidates.sort(key=lambda c: -c[0])",
     "candidates.sort(key=lambda c: (-c[0], -c[2]))",
     ["the earlier beam, then the lower token, ranks first", "got:      [0, 2, 2, 3]"]),
    # Ties ranked by token before beam (the candidates built token by token, beam by beam).
    ("beam_search", "09_generation/beam_search.py", "candidates.sort(key=lambda c: -c[0])",
     "candidates.sort(key=lambda c: (-c[0], c[2]))",
     ["beam_search(next_log_probs=<a model whose two beams tie>, prompt=[0], beam_size=2",
      "the earlier beam, then the lower token, ranks first", "expected: [0, 1, 4, 3]",
      "got:      [0, 1, 1, 1]"]),
    # Sorted ascending: the worst beams kept (sorted by log P alone, or as whole tuples).
    ("beam_search", "09_generation/beam_search.py", "candidates.sort(key=lambda c: -c[0])",
     "candidates.sort(key=lambda c: c[0])",
     ["beam_search(next_log_probs=<the file's table_log_probs>", "expected: [0, 2, 3]",
      "got:      [0, 3]", "ranking the candidates worst first (sorted by log P ascending)"]),
    ("beam_search", "09_generation/beam_search.py", "candidates.sort(key=lambda c: -c[0])",
     "candidates.sort()", ["got:      [0, 3]", "ranking the candidates worst first"]),
    ("kv_cache", "09_generation/kv_cache.py", "/ np.sqrt(len(q))", "",
     ["CachedAttention.step(x=[0., 1.]) (call 2, w_q = w_k = w_v = identity; due: row 1",
      "at [0]: expected 0.330", "That is exactly what you get without dividing the scores by "
      "sqrt(d_head), sqrt(2)."]),
    # The cache's length in place of d_head: the same while there are d_head keys.
    ("kv_cache", "09_generation/kv_cache.py", "/ np.sqrt(len(q))", "/ np.sqrt(len(self.keys))",
     ["CachedAttention.step(x=[1., 1.]) (call 3, w_q = w_k = w_v = identity; due: row 2",
      "dividing the scores by the square root of the number of cached keys (3) instead of "
      "d_head (2)"]),
    ("kv_cache", "09_generation/kv_cache.py", "/ np.sqrt(len(q))", "/ len(q)",
     ["call 2", "dividing the scores by d_head (2) instead of its square root"]),
    ("kv_cache", "09_generation/kv_cache.py",
     "self.values = np.vstack([self.values, v[None, :]])",
     "self.values = np.vstack([self.values, k[None, :]])",
     ["call 1, random weights", "left in `values` a wrong value"]),
    ("kv_cache", "09_generation/kv_cache.py", "np.vstack([self.keys, k[None, :]])\n"
     "        self.values = np.vstack([self.values, v[None, :]])",
     "k[None, :]\n        self.values = v[None, :]",
     ["call 2", "left in `keys` an array of shape (1, 2); expected shape (2, 2)"]),
    ("kv_cache", "09_generation/kv_cache.py", "np.exp(scores - scores.max())",
     "np.exp(scores)", ["large scores: subtract the largest before np.exp", "got nan"]),
    ("bpe_merge", "10_bpe/bpe_merge.py", "return dict(Counter(zip(ids, ids[1:])))",
     "return dict(Counter(zip(ids[::2], ids[1::2])))",
     ["count_pairs(ids=[97, 97, 97, 98])", "counts the pair (97, 97) once; it occurs 2 times"]),
    ("bpe_merge", "10_bpe/bpe_merge.py", "i += 2", "i += 1",
     ["merge(ids=[97, 97, 97, 98], pair=(97, 97), new_id=256)", "expected: [256, 97, 98]",
      "got:      [256, 256, 97, 98]"]),
    ("bpe_merge", "10_bpe/bpe_merge.py", "if i + 1 < len(ids) and ", "if ",
     ["merge(ids=", "raised an error", "IndexError"]),
    ("bpe_train", "10_bpe/bpe_train.py", "(-counts[pair], pair)", "(counts[pair], pair)",
     ["bpe_train(text='aaabdaaabac', n_merges=3) learned a wrong merge 0 (new id 256)",
      "expected (97, 97), got (97, 99); before any merge, (97, 97) occurs 4 times and (97, 99) "
      "once"]),
    ("bpe_train", "10_bpe/bpe_train.py", "key=lambda pair: (-counts[pair], pair))",
     "key=lambda pair: (-counts[pair], pair[::-1]))",
     ["wrong merge 1 (new id 257)", "expected (97, 98), got (256, 97); after the first merge, "
      "both occur 2 times, and ties go to the smaller pair"]),
    ("bpe_train", "10_bpe/bpe_train.py", "ids = merge(ids, best, new_id)",
     "ids = merge(ids, best, 256)", ["wrong merge 2 (new id 258)", "expected (256, 257)",
                                     "after the first 2 merges"]),
    ("bpe_train", "10_bpe/bpe_train.py", 'ids = list(text.encode("utf-8"))',
     "ids = [ord(c) for c in text]",
     ["wrong merge 0 (new id 256): expected (195, 169), got (98, 97)",
      "Those are the merges of the text's code points (ord(c)); the ids start from its UTF-8 "
      "bytes, text.encode(\"utf-8\"): 'é' is the 2 bytes 195 169, not 233."]),
    ("bpe_merge", "10_bpe/bpe_merge.py",                   # merging in place, into the caller's
     "    out = []\n    i = 0\n    while i < len(ids):\n"
     "        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):\n"
     "            out.append(new_id)\n            i += 2\n        else:\n"
     "            out.append(ids[i])\n            i += 1\n    return out",
     "    i = 0\n    while i + 1 < len(ids):\n        if (ids[i], ids[i + 1]) == tuple(pair):\n"
     "            ids[i:i + 2] = [new_id]\n        i += 1\n    return ids",
     ["merge(ids=[97, 97, 97, 98], pair=(97, 97), new_id=256) changed the ids it was given, "
      "in place, to [256, 97, 98]", "Build a new list instead."]),
    # The pairs counted once, before the loop: the first pair is chosen again and again.
    ("bpe_train", "10_bpe/bpe_train.py",
     "    for new_id in range(256, 256 + n_merges):\n        counts = count_pairs(ids)\n",
     "    counts = count_pairs(ids)\n    for new_id in range(256, 256 + n_merges):\n",
     ["bpe_train(text='aaabdaaabac', n_merges=3) learned a wrong merge 1 (new id 257)",
      "(97, 97) 0 times: it is merge 0 again. Count the pairs again after each merge"]),
    ("bpe_train", "10_bpe/bpe_train.py", "range(256, 256 + n_merges)",
     "range(257, 257 + n_merges)",
     ["wrong merge 2 (new id 258): expected (256, 257), got (257, 258)",
      "after 2 merges the new ids are 256 to 257, not 258. Merge k makes the new id 256 + k"]),
    ("bpe_train", "10_bpe/bpe_train.py", "range(256, 256 + n_merges)",
     "range(256, 257 + n_merges)", ["bpe_train(text='aaabdaaabac', n_merges=3) returned 4 "
                                    "merges; expected 3"]),
    ("bpe_train", "10_bpe/bpe_train.py", "        if not counts:\n            break\n", "",
     ["bpe_train(text='ab', n_merges=3) raised an error", "min() arg is an empty sequence"]),
    ("bpe_encode", "10_bpe/bpe_encode.py", "new_id = min(present)", "new_id = max(present)",
     ["bpe_encode(text='aab', merges=[(97, 97), (97, 98), (256, 257)])",
      "expected: [256, 98]", "got:      [97, 257]", "the text's bytes are [97, 97, 98]"]),
    ("bpe_encode", "10_bpe/bpe_encode.py",
     'return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")',
     'return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)',
     ["bpe_decode(ids=[256, 169], merges=[(97, 195)])", "expected: 'aé'", "got:      'a\ufffd"]),
    ("bpe_encode", "10_bpe/bpe_encode.py", 'errors="replace"', 'errors="ignore"',
     ["bpe_decode(ids=", "returned a wrong value"]),
]


@pytest.mark.parametrize("slug, file, old, new, says", CASES,
                         ids=[f"{c[1].split('/')[0]}-{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_wrong_answer_is_explained(tmp_path, slug, file, old, new, says):
    assert find(slug).file == file
    text = edited_message(tmp_path, slug, old, new)
    for part in says:
        assert part in text, f"{part!r} not in the message:\n{text}"


def test_temperature_top_k_that_writes_into_the_callers_logits_is_told_so(tmp_path):
    # At temperature 1 there is no division to make a copy, so top-k's -inf would land in the
    # caller's array; the right probabilities come out all the same.
    text = edited_message(tmp_path, "temperature_top_k",
                          "    logits = logits / temperature\n",
                          "    if temperature != 1:\n        logits = logits / temperature\n",
                          ("logits = np.where(logits < kth_largest, -np.inf, logits)",
                           "logits[logits < kth_largest] = -np.inf"))
    expect_changed_in_place(
        text, "next_token_probs(logits=[2., 1., 0., 1.], temperature=1.0, top_k=1)", "the logits",
        "np.asarray(logits) is the caller's own array, not a copy: set the dropped tokens to "
        "-inf in a new array (np.where(...), or logits.copy()).")
    assert "in place, to [ 2., -inf, -inf, -inf]:" in text, text


def test_top_p_keeping_another_id_of_equal_probability_is_told_how_to_sort():
    # Wherever a sort reorders ties first (the case made for ties may pass on some numpy),
    # the nucleus message names the stable sort: here id 3 is kept in place of id 0.
    import numpy as np

    from tinyformer.exercises.checking import CheckFailure
    from tinyformer.exercises.checks.ch09_generation import _expect_nucleus
    probs = np.array([0.125, 0.5, 0.25, 0.125])
    with pytest.raises(CheckFailure, match=r"kind='stable'") as failure:
        _expect_nucleus(np.array([0, 4, 2, 1]) / 7, probs, 0.8, "top_p_filter(...)")
    assert "keeps the ids [1, 2, 3] (nonzero); the nucleus is the ids [0, 1, 2]" in str(
        failure.value)
    # Another number of tokens kept is no matter of ties: not told to sort otherwise.
    with pytest.raises(CheckFailure) as failure:
        _expect_nucleus(np.array([0, 2, 1, 0]) / 3, probs, 0.8, "top_p_filter(...)")
    assert "kind='stable'" not in str(failure.value)


def test_09_generation_models_read_as_names():
    # A checker's models show as a name in messages, not as <function ... at 0x...>.
    from tinyformer.exercises.checks.ch09_generation import random_model
    assert "random model" in repr(random_model(4, seed=0))


def test_09_generation_checker_distributions_are_what_sample_next_draws_from():
    # sample_next returns draws, not probabilities; feed it chosen uniforms (one per row) at
    # the middle of each token's interval of the checker's cumulative distribution: it must
    # pick exactly that token, for every token the checker gives probability.
    import numpy as np

    from tinyformer.exercises.checks.ch09_generation import reference_probs, reference_top_p
    from tinyformer.sampling import sample_next

    class Uniforms:
        def __init__(self, u):
            self.u = u

        def random(self, shape):
            return self.u.reshape(shape)

    rng = np.random.default_rng(0)
    for temperature, top_k, top_p in [(1.0, None, None), (0.7, 5, None), (1.5, None, 0.8),
                                      (0.9, 6, 0.6), (1.0, 3, None)]:
        logits = rng.standard_normal(10) * 2
        probs = reference_probs(logits, temperature, top_k)
        if top_p is not None:
            probs = reference_top_p(probs, top_p)
        tokens = np.flatnonzero(probs)
        cdf = np.cumsum(probs)
        middles = cdf[tokens] - probs[tokens] / 2
        drawn = sample_next(np.tile(logits, (len(tokens), 1)), temperature, top_k, top_p,
                            rng=Uniforms(middles))
        assert drawn.tolist() == tokens.tolist()


def test_kv_cache_that_projects_every_token_again_is_refused(tmp_path):
    # It keeps the tokens and computes every key and value again at each step: right numbers,
    # and no cache.
    message = edited_message(
        tmp_path, "kv_cache",
        "        q, k, v = x @ self.w_q, x @ self.w_k, x @ self.w_v       # each (d_head,)\n"
        "        self.keys = np.vstack([self.keys, k[None, :]])\n"
        "        self.values = np.vstack([self.values, v[None, :]])\n",
        "        self.tokens = [*getattr(self, 'tokens', []), x]\n"
        "        q = x @ self.w_q\n"
        "        self.keys = np.array(self.tokens) @ self.w_k\n"
        "        self.values = np.array(self.tokens) @ self.w_v\n")
    assert message.startswith("CachedAttention.step(x=") and "(call 3, after the checker" in message
    assert "changed the keys of the two earlier tokens" in message
    assert "computes each token's key and value once" in message


@pytest.mark.parametrize("old, new, says", [
    # Exactly k tokens by their place in a sorted order: a tie at the border loses one.
    ("        kth_largest = np.sort(logits)[-top_k]\n"
     "        logits = np.where(logits < kth_largest, -np.inf, logits)\n",
     "        keep = np.argsort(logits)[-top_k:]\n"
     "        logits = np.where(np.isin(np.arange(len(logits)), keep), logits, -np.inf)\n",
     "keeps exactly 2 tokens, where 3 are due"),
    # The dropped tokens zeroed after the softmax, the rest not renormalised.
    ("    exp = np.exp(logits - logits.max())\n    return exp / exp.sum()",
     "    exp = np.exp(logits - logits.max())\n    full = np.asarray(logits_given)\n"
     "    p = np.exp(full - full.max()) / np.exp(full - full.max()).sum()\n"
     "    return np.where(np.isfinite(logits), p, 0.0)",
     "Your probabilities add up to"),
])
def test_top_k_slips_are_told_by_what_the_distribution_shows(tmp_path, old, new, says):
    message = edited_message(tmp_path, "temperature_top_k", old, new,
                             ("    logits = np.asarray(logits, dtype=np.float64)\n",
                              "    logits = np.asarray(logits, dtype=np.float64)\n"
                              "    logits_given = logits / (temperature or 1)\n"))
    assert message.startswith("next_token_probs(logits=[2., 1., 0., 1.]") and says in message


def test_bpe_encode_that_empties_the_merges_it_was_given_does_not_pass(tmp_path):
    # The checker gives every call the same list of merges: emptied by the first call, it
    # left the next ones expecting the raw bytes, which an encoder without merges returns.
    message = edited_message(tmp_path, "bpe_encode",
                             "        if not present:\n            return ids\n",
                             "        if not present:\n            merges.clear()\n"
                             "            return ids\n")
    expect_changed_in_place(
        message, "bpe_encode(text='aaab', merges=[(97, 97), (97, 98), (256, 257)])", "the merges")


def test_kv_cache_that_rewrites_the_weights_it_was_given_does_not_pass(tmp_path):
    # Keys projected by w_q, and w_q written into the caller's w_k: the expected keys were
    # worked out from that w_k after the cache was made, so the wrong keys matched them.
    message = edited_message(
        tmp_path, "kv_cache",
        "        self.w_q, self.w_k, self.w_v = w_q, w_k, w_v\n",
        "        w_k[...] = w_q\n        self.w_q, self.w_k, self.w_v = w_q, w_k, w_v\n",
        ("q, k, v = x @ self.w_q, x @ self.w_k, x @ self.w_v",
         "q, k, v = x @ self.w_q, x @ self.w_q, x @ self.w_v"))
    expect_changed_in_place(message, "CachedAttention(w_q=array of shape (5, 3)", "the w_k")
    # Shown by its shape in the call, as it is too big to read: not in full once changed.
    assert "changed the w_k it was given, in place: the caller" in message, message


def test_beam_search_that_returns_the_first_sequence_to_finish_is_not_told_it_ranks_worst_first(
        tmp_path):
    # It returns [0, 3] on the first search, as a search that keeps the worst beams does; on
    # one beam it does not keep the impossible token 0, so it is not that mistake.
    message = edited_message(tmp_path, "beam_search",
                             "                if best is None or log_prob > best[1]:\n"
                             "                    best = (tokens, log_prob)",
                             "                return tokens, log_prob",
                             ("                if len(next_beams) == beam_size:\n"
                              "                    break\n", ""))
    assert "got:      [0, 3]" in message and "worst first" not in message


def test_beam_search_that_rewrites_the_model_it_was_given_does_not_pass(tmp_path):
    # Right on a model's first search, after which it makes the model's end token certain:
    # each later search of the same model was expected to give what that rewritten model
    # gives, which it returned without looking at the model at all.
    message = edited_message(
        tmp_path, "beam_search",
        "def beam_search(next_log_probs, prompt, beam_size, max_new_tokens, end_id):\n",
        "def beam_search(next_log_probs, prompt, beam_size, max_new_tokens, end_id):\n"
        "    token = getattr(next_log_probs, 'certain', None)\n"
        "    if token is not None:\n"
        "        return [*prompt, *[token] * (1 if token == end_id else max_new_tokens)], 0.0\n"
        "    answer = search(next_log_probs, prompt, beam_size, max_new_tokens, end_id)\n"
        "    certain = [0.0 if i == end_id else float('-inf')\n"
        "               for i in range(len(next_log_probs(list(prompt))))]\n"
        "    next_log_probs.next_scores = lambda ids: certain\n"
        "    next_log_probs.certain = end_id\n"
        "    return answer\n\n\n"
        "def search(next_log_probs, prompt, beam_size, max_new_tokens, end_id):\n")
    expect_changed_in_place(
        message, "beam_search(next_log_probs=<the file's table_log_probs>", "the next_log_probs")


@pytest.mark.parametrize("slug, old, new, says", [
    ("temperature_top_k", "np.where(logits < kth_largest", "np.where(logits <= kth_largest",
     ["top_k=1) returned a wrong value", "Your answer is all nan: it dropped every token",
      "(<, not <=)"]),
    ("temperature_top_k", "np.sort(logits)[-top_k]", "np.sort(logits)[-top_k - 1]",
     ["top_k=1) returned a wrong value", "Your answer keeps 3 tokens, where top_k = 1 keeps 1"]),
    ("top_p", "keep[order] = before < top_p", "keep[order] = np.cumsum(sorted_probs) <= top_p",
     ["top_p=0.3) returned only nan: it kept no token",
      "(here 0.5 alone reaches top_p = 0.3)"]),
])
def test_a_filter_that_keeps_too_few_or_too_many_tokens_says_so(tmp_path, slug, old, new, says):
    message = edited_message(tmp_path, slug, old, new)
    for words in says:
        assert words in message
