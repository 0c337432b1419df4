"""Beam search (tinyformer.decoding.beam_search) on the encoder-decoder: beam 1 is greedy, a
wider beam finds what greedy misses, the GNMT length penalty with scores worked out by hand,
and argument checks. tests/test_decoding.py runs it on a GPT, and tests/test_transformer.py on
the copy model it trains (beam 3 decodes held-out sequences), which is trained once for both."""

import math
from itertools import product

import numpy as np
import pytest

from tinyautograd import Tensor, manual_seed
from tinyformer.decoding import (EncoderDecoderSession, beam_search, generate,
                                 gnmt_length_penalty)
from tinyformer.transformer import Transformer

PAD, BOS, EOS = 0, 1, 2


def search(model, src, beam_size=4, max_len=32, bos_id=BOS, eos_id=EOS, length_penalty=0.6):
    """Beam search on each row of src, one session a row, as `tinyformer generate --beam`
    runs it: a list of Hypothesis."""
    return [beam_search(model.start_decoding(src[i:i + 1], bos_id), beam_size, max_len, eos_id,
                        length_penalty) for i in range(len(src))]


def meaningful(tokens, eos_id=EOS):
    """The tokens up to and including the first eos (all of them if there is none)."""
    tokens = list(np.asarray(tokens))
    return tokens[:tokens.index(eos_id) + 1] if eos_id in tokens else tokens


# --------------------------------------------------------------------------------------------
# A hand-built "model": the next-token distribution depends only on the last token.

A, B, C = 3, 4, 5
VOCAB = 6


class BigramStub:
    """encode/decode with fixed probabilities: `table[last token]` = {next token: probability}.
    Tokens left out get logit -1e9, so log_softmax gives the listed log-probabilities (to
    rounding) and the left-out tokens never matter."""

    context = 32                                # the longest target it reads
    config = {"tgt_vocab_size": VOCAB}          # what a session reads of a Transformer's

    def __init__(self, table):
        self.logits = np.full((VOCAB, VOCAB), -1e9)
        for last, row in table.items():
            assert math.isclose(sum(row.values()), 1.0)
            for token, p in row.items():
                self.logits[last, token] = math.log(p)

    def encode(self, src):
        src = np.asarray(src)
        return Tensor(np.zeros((len(src), src.shape[1], 1))), np.ones(src.shape, dtype=bool)

    def decode(self, tgt, memory, src_mask, cache=None, logits_to_keep=0):
        assert len(memory.data) == len(src_mask) == len(tgt)    # beams batched with the source
        logits = self.logits[np.asarray(tgt)]                   # (n, T, V)
        return Tensor(logits[:, -logits_to_keep:], dtype=np.float64)    # 0 keeps all

    def start_decoding(self, src, bos_id):
        return EncoderDecoderSession(self, src, bos_id, use_cache=False)   # whole prefixes


# Greedy takes A (0.6) but every continuation of A is unlikely; B (0.4) then eos (0.9) wins.
#   greedy: BOS A C EOS   P = 0.6 * 0.34 * 1.0 = 0.204
#   beam 2: BOS B EOS     P = 0.4 * 0.9        = 0.36
GARDEN_PATH = BigramStub({
    BOS: {A: 0.6, B: 0.4},
    A: {C: 0.34, B: 0.33, EOS: 0.33},
    B: {EOS: 0.9, C: 0.1},
    C: {EOS: 1.0},
})


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_a_beam_of_two_finds_the_sequence_greedy_misses(alpha):
    src = np.ones((1, 3), dtype=int)
    greedy, = search(GARDEN_PATH, src, beam_size=1, max_len=10, length_penalty=alpha)
    beam, = search(GARDEN_PATH, src, beam_size=2, max_len=10, length_penalty=alpha)
    assert list(greedy.tokens) == [BOS, A, C, EOS]
    assert list(beam.tokens) == [BOS, B, EOS]
    assert greedy.log_prob == pytest.approx(math.log(0.6 * 0.34), rel=1e-12)
    assert beam.log_prob == pytest.approx(math.log(0.4 * 0.9), rel=1e-12)
    assert beam.score == pytest.approx(math.log(0.36) / ((5 + 2) / 6) ** alpha, rel=1e-12)
    assert beam.log_prob > greedy.log_prob


# Three ways to finish; alpha decides which wins.
#   BOS EOS        P = 0.4           |Y| = 1
#   BOS A EOS      P = 0.6 * 0.5     |Y| = 2
#   BOS A B EOS    P = 0.6 * 0.5     |Y| = 3
# A's two continuations tie (0.5 each): eos (id 2) ranks before B (id 4), deterministically.
SHORT_OR_LONG = BigramStub({
    BOS: {EOS: 0.4, A: 0.6},
    A: {EOS: 0.5, B: 0.5},
    B: {EOS: 1.0},
})


# Greedy ends at once; a longer ending, a little less likely, scores better under the penalty.
#   BOS EOS          P = 0.5                  score = log 0.5 / lp(1)     = -0.693
#   BOS A B EOS      P = 0.45 * 0.99 * 0.99   score = log P / lp(3)       = -0.689
EARLY_END = BigramStub({
    BOS: {EOS: 0.5, A: 0.45, B: 0.05},
    A: {B: 0.99, EOS: 0.01},
    B: {EOS: 0.99, A: 0.01},
})


def test_a_beam_of_one_with_a_length_penalty_may_pass_over_greedys_early_end():
    # A beam of one ranks as greedy does, but an end it meets is set aside while the beam
    # goes on with the next token, as with any width: with a penalty, a longer ending may
    # score better, and wins (transformers' num_beams=1 is greedy decoding itself). Without
    # a penalty nothing longer can beat an ending: greedy's text.
    src = np.ones((1, 3), dtype=int)
    greedy = generate(EARLY_END.start_decoding(src, BOS), 10, temperature=0, eos_id=EOS)
    assert list(greedy[0]) == [BOS, EOS]
    without, = search(EARLY_END, src, beam_size=1, max_len=10, length_penalty=0.0)
    assert list(without.tokens) == [BOS, EOS]
    penalised, = search(EARLY_END, src, beam_size=1, max_len=10, length_penalty=0.6)
    assert list(penalised.tokens) == [BOS, A, B, EOS]
    assert penalised.score == pytest.approx(math.log(0.45 * 0.99 * 0.99) / (8 / 6) ** 0.6,
                                            rel=1e-9)
    assert penalised.score > math.log(0.5)


def test_length_penalty_formula():
    assert gnmt_length_penalty(1, 0.6) == 1.0                    # lp(1) = 1 for every alpha
    assert gnmt_length_penalty(3, 2.0) == pytest.approx((8 / 6) ** 2)
    assert gnmt_length_penalty(7, 0.0) == 1.0


def test_a_float32_length_penalty_scores_as_its_value_in_float64():
    # A numpy float32 alpha made every score float32, the hypotheses ranked to 7
    # digits; the score is log P / lp in float64, as with a Python float.
    alpha = np.float32(0.6)
    assert type(gnmt_length_penalty(3, alpha)) is float
    src = np.ones((1, 2), dtype=int)
    best, = search(EARLY_END, src, beam_size=2, max_len=10, length_penalty=alpha)
    assert type(best.score) is float
    assert best.score == best.log_prob / ((5 + len(best.tokens) - 1) / 6) ** float(alpha)


def test_without_length_penalty_the_shortest_wins():
    best, = search(SHORT_OR_LONG, np.ones((1, 2), dtype=int), beam_size=2,
                        length_penalty=0.0)
    # log 0.4 = -0.92 beats log 0.3 = -1.20 for both longer ones.
    assert list(best.tokens) == [BOS, EOS]
    assert best.score == pytest.approx(math.log(0.4), rel=1e-12)


def test_a_large_length_penalty_lets_the_longest_win():
    best, = search(SHORT_OR_LONG, np.ones((1, 2), dtype=int), beam_size=2,
                        length_penalty=2.0)
    # Scores: log 0.4 / 1 = -0.92,  log 0.3 / (7/6)^2 = -0.88,  log 0.3 / (8/6)^2 = -0.68.
    assert list(best.tokens) == [BOS, A, B, EOS]
    assert best.score == pytest.approx(math.log(0.3) / (8 / 6) ** 2, rel=1e-12)
    assert best.log_prob == pytest.approx(math.log(0.3), rel=1e-12)


def test_a_middle_length_penalty_picks_the_middle_one():
    # alpha = 1: -0.92,  log 0.3 / (7/6) = -1.03,  log 0.3 / (8/6) = -0.90: the longest, just.
    # alpha = 0.3: -0.92, -1.13, -1.10: the shortest. The winner moves with alpha.
    src = np.ones((1, 2), dtype=int)
    assert list(search(SHORT_OR_LONG, src, beam_size=2, length_penalty=1.0)[0].tokens) \
        == [BOS, A, B, EOS]
    assert list(search(SHORT_OR_LONG, src, beam_size=2, length_penalty=0.3)[0].tokens) \
        == [BOS, EOS]


def test_max_len_cuts_the_live_beams_off_and_they_compete():
    # A is always likelier than eos: the one beam never finishes, and max_len cuts it off.
    stub = BigramStub({BOS: {A: 0.9, EOS: 0.1}, A: {A: 0.9, EOS: 0.1}})
    best, = search(stub, np.ones((1, 2), dtype=int), beam_size=1, max_len=3,
                        length_penalty=0.0)
    assert list(best.tokens) == [BOS, A, A, A]                   # 0.729 > eos's 0.1 at once
    assert best.log_prob == pytest.approx(3 * math.log(0.9), rel=1e-12)


@pytest.mark.parametrize("max_len", [2, 5])
@pytest.mark.parametrize("eos_first", [0.9, 0.5])
def test_the_search_stops_at_the_step_where_a_finished_hypothesis_beats_every_live_bound(
        max_len, eos_first):
    # BOS EOS (log 0.9) beats the live BOS A (log 0.1, which can only fall) at step 1: the
    # model is not run again, however close max_len is. At 0.5 each, BOS A can at best tie
    # BOS EOS, and a tie keeps the hypothesis found first: no need to go on either.
    class Counted(BigramStub):
        steps = 0

        def decode(self, *args, **kwargs):
            self.steps += 1
            return super().decode(*args, **kwargs)

    stub = Counted({BOS: {EOS: eos_first, A: 1 - eos_first}, A: {A: 0.5, EOS: 0.5}})
    best, = search(stub, np.ones((1, 2), dtype=int), beam_size=2, max_len=max_len,
                   length_penalty=0.0)
    assert list(best.tokens) == [BOS, EOS] and stub.steps == 1


def test_the_early_stop_waits_for_a_beam_that_a_longer_length_penalty_can_still_lift():
    # After step 1, BOS EOS has finished with log 0.6 = -0.51; the live beam BOS A has log 0.4
    # = -0.92, and only a long continuation's lp lifts it: BOS A^10, cut off at max_len,
    # scores (log 0.4 + 9 log 0.95) / lp(10) = -0.22. Its bound must use the largest lp
    # still reachable, lp(max_len) = 6.25, not the next step's lp(2) = 1.36 (-0.67, a stop).
    stub = BigramStub({BOS: {EOS: 0.6, A: 0.4}, A: {A: 0.95, EOS: 0.05}})
    best, = search(stub, np.ones((1, 2), dtype=int), beam_size=2, max_len=10,
                   length_penalty=2.0)
    assert list(best.tokens) == [BOS] + [A] * 10
    assert best.score == pytest.approx((math.log(0.4) + 9 * math.log(0.95))
                                       / gnmt_length_penalty(10, 2.0), rel=1e-9)


def test_with_a_negative_length_penalty_the_early_stop_bound_uses_the_nearest_length():
    # alpha < 0 favours short sequences: lp falls with length, so the largest lp a live beam
    # can still reach is the next step's. BOS EOS finishes at once with log 0.37 = -0.99; BOS
    # A EOS scores log(0.63 * 0.9) / lp(2) = -0.66, better. After step 1, the live BOS A (log
    # 0.63 = -0.46) is bounded by -0.46 / lp(2) = -0.54: go on. Bounding it by lp(max_len) =
    # lp(10) = 0.4 instead (-1.16) would stop there and keep the worse BOS EOS.
    stub = BigramStub({BOS: {EOS: 0.37, A: 0.63}, A: {EOS: 0.9, A: 0.1}})
    best, = search(stub, np.ones((1, 2), dtype=int), beam_size=2, max_len=10,
                   length_penalty=-1.0)
    assert list(best.tokens) == [BOS, A, EOS]


def test_with_a_negative_length_penalty_the_bound_is_the_next_length_not_the_one_after():
    # alpha = -3: lp(1) = 1, lp(2) = (6/7)^3, lp(3) = (6/8)^3. BOS EOS finishes at once with
    # log 0.3 = -1.20; the live BOS A (log 0.5) is bounded by log 0.5 / lp(2) = -1.10: go on,
    # to BOS A EOS, log(0.5 * 0.99) / lp(2) = -1.12, the best. Bounded by the length after
    # the next, lp(3) (-1.64), it stopped and kept BOS EOS. (BOS B's bound, -2.56, is out.)
    stub = BigramStub({BOS: {EOS: 0.3, A: 0.5, B: 0.2}, A: {EOS: 0.99, A: 0.01},
                       B: {EOS: 1.0}})
    best, = search(stub, np.ones((1, 2), dtype=int), beam_size=3, max_len=10,
                   length_penalty=-3.0)
    assert list(best.tokens) == [BOS, A, EOS]
    assert best.score == pytest.approx(math.log(0.5 * 0.99) / gnmt_length_penalty(2, -3.0),
                                       rel=1e-6)


def test_two_end_tokens_tied_at_one_step_go_to_the_lower_token_id():
    # eos_id names EOS and B, and both follow BOS with 0.5: two finished hypotheses with equal
    # scores at the same step. Ties go to the lower token id, as the docstring says.
    stub = BigramStub({BOS: {EOS: 0.5, B: 0.5}})
    best, = search(stub, np.ones((1, 2), dtype=int), beam_size=2, max_len=3,
                   eos_id=[EOS, B], length_penalty=0.0)
    assert EOS < B and list(best.tokens) == [BOS, EOS]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [-1.0, 0.0, 0.6, 2.0])
def test_a_beam_wide_enough_finds_the_best_of_all_sequences(seed, alpha):
    # With room for every prefix, beam search is exhaustive; so its early stop (no live beam
    # can beat the best finished one) must never stop before the best-scoring sequence.
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(VOCAB), size=VOCAB)
    stub = BigramStub({last: dict(enumerate(row)) for last, row in enumerate(probs)})
    max_len = 4

    def score(tokens):
        log_prob = sum(math.log(probs[a, b]) for a, b in zip(tokens, tokens[1:]))
        return log_prob / gnmt_length_penalty(len(tokens) - 1, alpha)

    others = [t for t in range(VOCAB) if t != EOS]
    every = [[BOS, *body, EOS] for n in range(max_len) for body in product(others, repeat=n)]
    every += [[BOS, *body] for body in product(others, repeat=max_len)]     # cut off
    best = max(every, key=score)
    found, = search(stub, np.ones((1, 2), dtype=int), beam_size=VOCAB ** max_len,
                         max_len=max_len, length_penalty=alpha)
    assert list(found.tokens) == best
    assert found.score == pytest.approx(score(best), rel=1e-9)


def test_the_early_stop_bound_costs_the_same_at_every_step_however_long_max_len(monkeypatch):
    # An eos finishes at the first step, and a beam lives on as likely (A, A, ...): each step
    # bounds what it can still score by the largest penalty still reachable, which the cut
    # beam reaches at max_len. That once took the penalty of every length up to max_len at
    # every step, max_len ** 2 / 2 in all: a GPT asked for thousands of tokens spent seconds,
    # then minutes, on it alone.
    import tinyformer.decoding as decoding
    stub = BigramStub({BOS: {EOS: 0.5, A: 0.5}, A: {A: 1.0}})
    stub.context = max_len = 1000
    evaluated = []
    lp = decoding.gnmt_length_penalty
    monkeypatch.setattr(decoding, "gnmt_length_penalty",
                        lambda length, alpha: (evaluated.append(length), lp(length, alpha))[1])
    best, = search(stub, np.ones((1, 2), dtype=int), beam_size=2, max_len=max_len)
    assert list(best.tokens) == [BOS] + [A] * max_len           # cut off, scored the best
    assert best.score == pytest.approx(math.log(0.5) / lp(max_len, 0.6), rel=1e-12)
    assert len(evaluated) <= 4 * max_len, f"{len(evaluated)} penalties for {max_len} steps"


@pytest.mark.parametrize("kwargs, message", [
    (dict(beam_size=0), "beam_size must be a whole number >= 1, got 0"),
    (dict(beam_size=1.5), "beam_size must be a whole number >= 1, got 1.5"),
    (dict(max_len=0), "max_len must be a whole number >= 1, got 0"),
    # NaN once came back as the score; text and None failed in Python's arithmetic
    (dict(length_penalty=float("nan")), "length_penalty must be a finite number, got nan"),
    (dict(length_penalty=float("inf")), "length_penalty must be a finite number, got inf"),
    (dict(length_penalty="0.6"), "length_penalty must be a finite number, got '0.6'"),
    (dict(length_penalty=10 ** 400), "length_penalty must be a finite number, got 1000"),
    (dict(length_penalty=None), "length_penalty must be a finite number, got None"),
    # finite, but its penalty of max_len tokens is not: OverflowError, ZeroDivisionError
    (dict(length_penalty=1000.0), r"length_penalty 1000.0 makes the penalty of 32 tokens, "
                                  r"\(\(5 \+ 32\) / 6\)\^1000.0, overflow; give one nearer 0"),
    (dict(length_penalty=-1000, max_len=30), "length_penalty -1000 makes the penalty of 30 "
                                             "tokens, .* underflow to 0; give one nearer 0"),
])
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        search(GARDEN_PATH, np.ones((1, 2), dtype=int), **kwargs)


def test_a_session_of_several_sequences_is_refused_saying_to_search_each_alone():
    # The advice once named start_decoding(prompt[i:i + 1]) alone, which an encoder-decoder
    # (this one) refuses for the bos_id it lacks: it names each model's call.
    session = GARDEN_PATH.start_decoding(np.ones((2, 2), dtype=int), BOS)
    with pytest.raises(ValueError, match=r"got 2: search each in a session of its own, "
                                         r"model.start_decoding\(prompt\[i:i \+ 1\]\) for a "
                                         r"GPT, model.start_decoding\(src\[i:i \+ 1\], "
                                         r"bos_id\) for a Transformer$"):
        beam_search(session)


def test_a_beam_of_one_breaks_ties_by_the_lower_token_id_in_a_large_vocabulary():
    # Tied logits, as greedy decoding breaks ties (argmax: the lower id). numpy's default sort
    # keeps equal values in order on short arrays only: a vocabulary of 1000 tells.
    class Tied:
        tokens, room = np.zeros((1, 1), dtype=np.int64), None
        logits = np.where(np.arange(1000) % 7 == 3, 0.0, -1.0)[None]     # 3, 10, 17, ... tie

        def next_logits(self):
            return np.repeat(self.logits, len(self.tokens), axis=0)

        def append(self, tokens):
            self.tokens = np.concatenate([self.tokens, np.asarray(tokens)[:, None]], axis=1)

        def select(self, rows):
            self.tokens = self.tokens[rows]

    best = beam_search(Tied(), beam_size=1, max_len=3, length_penalty=0.0)
    assert list(best.tokens) == [0, 3, 3, 3]
    np.testing.assert_array_equal(generate(Tied(), 3, temperature=0), [best.tokens])


# --------------------------------------------------------------------------------------------
# The real Transformer


@pytest.mark.parametrize("seed", range(6))
def test_a_beam_of_one_is_greedy_decoding(seed):
    manual_seed(seed)
    model = Transformer(7, 7, context=12, n_layer=1, n_head=2, d_model=16, tie_weights=False,
                        pad_id=PAD)
    # An untrained model barely looks at its input; sharper logits and a likelier eos give a
    # mix of outputs over the seeds: some end in eos early, some run to max_len.
    model.head.weight.data *= 4
    model.head.bias.data[EOS] += 2
    rng = np.random.default_rng(seed)
    src = rng.integers(1, 7, (4, 5))
    src[0, 3:] = PAD                                             # a padded source too
    greedy = model.greedy_decode(src, max_len=8, bos_id=BOS, eos_id=EOS)
    # alpha = 0: greedy maximises no length penalty, so beam 1 is greedy only without one.
    hypotheses = search(model, src, beam_size=1, max_len=8, length_penalty=0.0)
    for row, hypothesis in zip(greedy, hypotheses):
        # greedy pads with pad_id after eos (and while other rows go on): compare up to eos.
        assert list(hypothesis.tokens) == meaningful(row)
