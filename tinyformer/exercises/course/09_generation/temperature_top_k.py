"""Temperature and top-k

Greedy decoding always writes the same thing. To sample, turn the logits into probabilities
with softmax and draw a token from them. Two knobs shape that distribution first.

Temperature divides the logits before the softmax:

    probs = softmax(logits / temperature)

temperature < 1 stretches the gaps between logits, so the likeliest tokens take even more of
the probability (sharper, safer text); temperature > 1 shrinks the gaps (flatter, more
surprising text). As temperature -> 0 all the mass goes to the largest logit, so temperature 0
is defined as greedy: probability 1 on the argmax (the lowest id among equal maxima, as
np.argmax), 0 elsewhere. tinyformer/sampling.py's `sample_next` does exactly this: with
temperature 0 it returns `logits.argmax(axis=-1)` without sampling at all.

Top-k keeps only the k likeliest tokens: every logit smaller than the k-th largest becomes
-inf (probability 0) before the softmax, so the rest share the mass. As in `sample_next`,
tokens EQUAL to the k-th largest logit all stay, so a tie at the border keeps more than k.
top_k=None, or top_k >= V, keeps every token. (Top-k does not care about the temperature: it
picks the same tokens either way.)

Worked example, logits [2, 1, 0, 1]:
    temperature 1:            softmax = [0.5344, 0.1966, 0.0723, 0.1966]
    temperature 0:            [1, 0, 0, 0]
    top_k=1:                  [1, 0, 0, 0]
    top_k=2:                  tokens 1 and 3 tie at the 2nd largest: both stay ->
                              softmax of [2, 1, -inf, 1] = [0.5761, 0.2119, 0, 0.2119]

Compute softmax stably: subtract the largest logit before exp (exp(-inf) is 0, as you want).

Shapes
    logits:  (V,) floats
    returns: (V,) float probabilities, summing to 1

Your task
    Write `next_token_probs`. `draw` (given) shows how a sampler then uses the probabilities.

Check it with:  tinyformer exercises check temperature_top_k
"""

import numpy as np


def next_token_probs(logits, temperature=1.0, top_k=None):
    """The distribution (V,) of the next token after temperature and top-k filtering."""
    logits = np.asarray(logits, dtype=np.float64)
    # TODO: temperature == 0: return a one-hot (V,) array with 1.0 at np.argmax(logits).
    # TODO: divide the logits by the temperature.
    # TODO: top_k (if given and < V): set logits below the k-th largest to -np.inf
    #       (np.sort(logits)[-top_k] is the k-th largest).
    # TODO: return the softmax: exp(logits - max) divided by its sum.
    raise NotImplementedError


def draw(probs, rng):
    """One token id drawn from `probs` (V,), by inverse-CDF sampling as sample_next does."""
    u = rng.random()                                   # uniform in [0, 1)
    # The first id whose cumulative probability reaches u; min() guards against rounding.
    return min(int((np.cumsum(probs) < u).sum()), len(probs) - 1)
