"""Beam search

Greedy decoding commits to the likeliest token at every step and never goes back, but a likely
first token can lead only to unlikely continuations. Beam search keeps the `beam_size` likeliest
prefixes ("beams") instead, and extends all of them at each step. The score of a sequence is
its log-probability, the sum of the log-probabilities of its generated tokens:

    log P(y_1 .. y_n | prompt) = sum_i log P(y_i | prompt, y_1 .. y_{i-1})

One step, for live beams b_0, b_1, ... (best first), each with its log P:
    1. expand: every beam b and every token v give a candidate b + [v] with
               log P(b + [v]) = log P(b) + next_log_probs(b)[v]
    2. rank:   all candidates by log P, best first; equal log P: the earlier beam first, then
               the lower token id (Python's `sorted` is stable, so building the list beam by
               beam, token by token and sorting on -log P gives this order)
    3. walk the ranked candidates: one ending in end_id is FINISHED: it replaces the best
       finished sequence so far if its log P is strictly larger; any other is a beam of the
       next step; stop the walk once you have beam_size beams.
After max_new_tokens steps (or when no beam lives on), the live beams compete with the best
finished sequence as they are, cut off; the best log P wins (the earlier one on a tie: the
finished one, then the beams in their order). You may also stop as soon as the best finished
log P is >= every live beam's, since log P can only fall as a beam grows; the answer is the same.

Length normalisation: none here; we compare plain sums. tinyformer/decoding.py does the same
steps (for GPT and the encoder-decoder alike) but divides each finished log P by the GNMT
length penalty ((5 + n) / 6) ** alpha, since plain sums favour short outputs; with alpha = 0
it returns exactly what this exercise asks for.

Worked example with the given model `table_log_probs` (0 starts, 1 = "a", 2 = "b", 3 = end):
    greedy:  0 -> a (0.5) -> a (0.4) -> a (0.4) ...      [0, 1, 1, 1], P = 0.08
    beam 2:  step 1 keeps a (0.5) and b (0.4); step 2 finishes b-end (0.4 * 0.9 = 0.36), which
             neither live beam (aa 0.2, ab 0.15) can beat:
             beam_search(table_log_probs, [0], 2, 3, 3) -> ([0, 2, 3], log(0.36) = -1.0217)

Your task
    Write `beam_search`, returning (tokens, log_prob): tokens is a list of ints, the prompt and
    then the generated ids (end_id last if it finished), and log_prob is a float.

Check it with:  tinyformer exercises check beam_search
"""

import numpy as np

# The given model: the next token's probabilities depend on the last token only.
PROBS = np.array([
    [0.0, 0.5, 0.4, 0.1],      # after 0 (the start): a 0.5, b 0.4, end 0.1
    [0.0, 0.4, 0.3, 0.3],      # after a
    [0.0, 0.05, 0.05, 0.9],    # after b: end, nearly always
    [0.0, 1 / 3, 1 / 3, 1 / 3],
])


def table_log_probs(ids):
    """log P(next token | ids), (V,): -inf for the impossible token 0."""
    with np.errstate(divide="ignore"):
        return np.log(PROBS[ids[-1]])


def beam_search(next_log_probs, prompt, beam_size, max_new_tokens, end_id):
    """The best sequence beam search finds: (prompt + generated ids as a list, its log P)."""
    # TODO: beams = [(list(prompt), 0.0)]; best_finished = None (or (tokens, log_prob)).
    # TODO: for each step: build the candidates (log_prob, beam index, token) from every beam,
    #       sort them best first, and walk them as the docstring says.
    # TODO: after the loop, let the live beams compete with the best finished; return the best.
    raise NotImplementedError
