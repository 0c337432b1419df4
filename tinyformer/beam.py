"""Beam search for the encoder-decoder Transformer, with the GNMT length penalty.

Greedy decoding keeps one prefix and commits to the most likely token at every step; a likely
first token can lead to unlikely continuations, and greedy never goes back. Beam search keeps
the `beam_size` most likely prefixes ("beams") instead, and extends all of them at each step.

The score of a finished hypothesis Y (Wu et al. 2016, "Google's Neural Machine Translation
System", section 7) is its log-probability divided by a length penalty:

    score(Y) = log P(Y | X) / lp(Y),        lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha

|Y| counts the generated tokens: everything after bos, eos included. log P(Y | X) only falls as
Y grows (every token adds a log-probability <= 0), so an unpenalised search (alpha = 0) prefers
short outputs; alpha > 0 divides longer hypotheses by a larger lp and so evens this out.
lp(1) = 1 for every alpha.

One step of the search, for the beams of one source sentence:

    1. expand:  every beam b, every token v  ->  candidate b + [v],
                log P(b + [v]) = log P(b) + log_softmax(logits of b's last position)[v]
    2. rank:    the candidates by log P, best first (all have the same length, so this is also
                their order under the penalty); ties go to the earlier beam, then the lower
                token id, so that the search is deterministic and beam_size = 1 is greedy
    3. finish:  a candidate among the first beam_size that ends in eos is set aside, scored
                with the penalty
    4. prune:   the best beam_size candidates that do not end in eos are the next beams

Stopping: a live beam's log P can only fall, so the best score any of its continuations can
reach is log P(beam) / max lp(n) over the lengths n it may still reach (n <= max_len). The
search stops as soon as a hypothesis has finished and no live beam's bound beats the best
finished score: nothing found later could be returned. This returns the same best hypothesis
as waiting for beam_size hypotheses to finish (anything finishing later scores at most its
bound), and stops sooner. Otherwise it stops after max_len generated tokens, and the live beams,
cut off there, compete with the finished ones as they are (scored at length max_len): a source
whose beams never produce eos still gets an output, as in greedy decoding.
"""

from typing import NamedTuple

import numpy as np

from tinyautograd import Tensor, no_grad

__all__ = ["Hypothesis", "beam_search", "gnmt_length_penalty"]


class Hypothesis(NamedTuple):
    """One decoded sequence: `tokens` (bos first, eos last if it finished), its penalised
    `score`, and its unpenalised `log_prob` = log P(tokens[1:] | source)."""
    tokens: np.ndarray
    score: float
    log_prob: float


def gnmt_length_penalty(length, alpha):
    """lp(Y) = ((5 + |Y|) / 6)^alpha, where `length` = |Y| counts the tokens after bos."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(model, src, beam_size=4, max_len=32, bos_id=1, eos_id=2, length_penalty=0.6):
    """Translate each row of src (B, S) by beam search; returns B `Hypothesis`es, the best of
    each row under score = log P(Y | X) / lp(Y), lp(Y) = ((5 + |Y|) / 6)^alpha with
    alpha = `length_penalty` (see the module docstring for the search and when it stops).

    `model` needs `encode(src)` -> (memory (B, S, C), src_mask) and `decode(tgt, memory,
    src_mask)` -> logits (B, T, V), as `Transformer` has. The encoder runs once for the whole
    batch; the decoder reruns on the whole prefix of all beams of a row at each step (no
    key-value cache). At most `max_len` tokens are generated after bos. Call `model.eval()`
    first if the model has dropout.
    """
    if int(beam_size) != beam_size or beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be a whole number >= 1, got "
                         f"{beam_size}")
    if int(max_len) != max_len or max_len < 1:
        raise ValueError(f"beam_search: max_len must be a whole number >= 1, got {max_len}")
    with no_grad():
        memory, src_mask = model.encode(src)
        return [_search_one(model, _row(memory, b), _row(src_mask, b), int(beam_size),
                            int(max_len), bos_id, eos_id, length_penalty)
                for b in range(memory.shape[0])]


def _row(batch, b):
    """Row b of a Tensor or array, keeping the batch axis: (B, ...) -> (1, ...) numpy."""
    return np.asarray(batch.data if isinstance(batch, Tensor) else batch)[b:b + 1]


def _search_one(model, memory, src_mask, beam_size, max_len, bos_id, eos_id, alpha):
    """Beam search for one source: memory (1, S, C), src_mask (1, ...) numpy arrays."""
    # The live beams: tokens (n, t), bos first, and their log-probabilities (n,), best first.
    # It starts as the single prefix [bos]; n grows to beam_size after the first step.
    beams = np.full((1, 1), bos_id)
    beam_log_probs = np.zeros(1)
    # Finished hypotheses (ended by eos) are set aside; only the best one is returned, so only
    # the best is kept (the earliest found, on equal scores).
    best = None

    for step in range(1, max_len + 1):     # step = |Y| of the candidates made now
        # 1. Expand: one decoder call for all beams, the source repeated along the batch.
        n = len(beams)
        logits = model.decode(beams, Tensor(np.repeat(memory, n, axis=0), dtype=memory.dtype),
                              np.repeat(src_mask, n, axis=0))
        logits = np.asarray(logits.data if isinstance(logits, Tensor) else logits)
        # float64: log-probabilities add up over many steps
        token_log_probs = Tensor(logits[:, -1], dtype=np.float64).log_softmax().data   # (n, V)
        candidates = beam_log_probs[:, None] + token_log_probs           # (n, V)
        V = candidates.shape[1]

        # 2. Rank every (beam, token) pair, best first. A stable sort of the flattened
        # (n * V,) array breaks ties by beam, then token id: the same as argmax in greedy.
        order = np.argsort(-candidates.ravel(), kind="stable")
        keep_beams, keep_log_probs = [], []
        for rank, flat in enumerate(order):
            beam, token = divmod(int(flat), V)
            log_prob = float(candidates[beam, token])
            tokens = np.append(beams[beam], token)
            if token == eos_id:
                # 3. Finish: only an eos among the top beam_size candidates counts; a lower
                # one is beaten by beam_size candidates of the same length.
                if rank < beam_size:
                    hypothesis = Hypothesis(tokens, log_prob / gnmt_length_penalty(step, alpha),
                                            log_prob)
                    if best is None or hypothesis.score > best.score:
                        best = hypothesis
            else:
                # 4. Prune: the best beam_size non-eos candidates live on.
                keep_beams.append(tokens)
                keep_log_probs.append(log_prob)
            if len(keep_beams) == beam_size:
                break
        if not keep_beams:                 # a vocabulary of eos alone: nothing lives on
            return best
        beams, beam_log_probs = np.stack(keep_beams), np.array(keep_log_probs)

        # Stop when no live beam can beat the best finished hypothesis: the best any beam
        # can reach is its log P (which only falls) over the largest lp still reachable.
        if best is not None and step < max_len:
            largest_lp = max(gnmt_length_penalty(k, alpha) for k in range(step + 1, max_len + 1))
            if (beam_log_probs / largest_lp).max() <= best.score:
                return best
    # max_len reached: the live beams, cut off, compete as they are.
    for tokens, log_prob in zip(beams, beam_log_probs):
        hypothesis = Hypothesis(tokens, float(log_prob) / gnmt_length_penalty(max_len, alpha),
                                float(log_prob))
        if best is None or hypothesis.score > best.score:
            best = hypothesis
    return best
