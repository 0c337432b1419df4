"""Top-p (nucleus) sampling

Top-k keeps a fixed number of tokens, but how many tokens are sensible varies from step to
step: after "the capital of France is" one token holds nearly all the probability, while
after "I like" hundreds are reasonable. Top-p (Holtzman et al. 2019, "nucleus sampling") keeps
instead the smallest set of likeliest tokens whose probability adds up to at least p, sets
every other token to 0, and renormalises the kept ones so they sum to 1 again.

The rule, precisely (tinyformer/sampling.py's `sample_next` does the same):
    1. Order the tokens likeliest first. Among equal probabilities the LOWER id comes first
       (np.argsort(-probs, kind="stable") gives this order).
    2. A token is kept when the probabilities of the tokens BEFORE it in that order add up to
       less than p. So the first token always stays, and the kept tokens are the shortest run
       from the top whose total reaches p (>= p: reaching p exactly is enough).
    3. Set the others to 0 and divide by the sum of the kept ones.
    top_p = 1 keeps every token (return the probabilities as they are).

Worked example, probs = [0.125, 0.5, 0.25, 0.125] (order: ids 1, 2, 0, 3):
    sums before each token in that order: 0, 0.5, 0.75, 0.875
    top_p=0.5   keeps id 1               -> [0, 1, 0, 0]
    top_p=0.75  keeps ids 1, 2           -> [0, 2/3, 1/3, 0]   (0.5 + 0.25 reaches 0.75)
    top_p=0.8   keeps ids 1, 2, 0        -> [1/7, 4/7, 2/7, 0] (ids 0 and 3 tie: 0 first)

In `sample_next` top-p comes last: temperature, then top-k, then softmax, then top-p.

Shapes
    probs:   (V,) probabilities summing to 1
    returns: (V,) probabilities summing to 1, zero outside the nucleus

Your task
    Write `top_p_filter`.

Check it with:  tinyformer exercises check top_p
"""

import numpy as np


def top_p_filter(probs, top_p):
    """probs (V,) restricted to the nucleus of probability top_p, and renormalised."""
    probs = np.asarray(probs, dtype=np.float64)
    # TODO: if top_p >= 1, return probs unchanged.
    # TODO: order = the ids likeliest first, ties to the lower id (a stable argsort of -probs).
    # TODO: before = for each position in that order, the sum of the probabilities before it
    #       (np.cumsum gives the sums INCLUDING each one; subtract the token's own).
    # TODO: keep the ids whose `before` is < top_p, zero the rest, divide by the new sum.
    raise NotImplementedError
