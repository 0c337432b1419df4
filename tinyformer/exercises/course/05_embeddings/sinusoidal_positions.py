"""Sinusoidal positions

Attention compares every token with every other, and nothing in it knows which came first:
shuffle the tokens and each one's output is the same, just shuffled (try it on your attention
in the next exercise). Word order matters, so the position has to be written into the vectors
themselves. The original Transformer adds a fixed vector PE[pos] to the embedding of the token
at position pos:

    PE[pos, 2i]     = sin(pos / 10000^(2i / d_model))
    PE[pos, 2i + 1] = cos(pos / 10000^(2i / d_model))        for i = 0, 1, ..., d_model/2 - 1

Read it as d_model/2 clocks, each a (sin, cos) pair of features turning at its own speed: the
first pair turns by 1 radian per position, the last about 10000 times slower. Why sinusoids?
    - Each position gets its own code: fast clocks tell neighbours apart, slow ones tell far
      apart positions apart, like the second and hour hands of a watch.
    - Every value stays in [-1, 1], however long the sequence: no feature grows with pos.
    - Moving k positions turns every clock by an angle that depends only on k: PE[pos + k] is
      a fixed rotation of PE[pos]. A linear map (which attention has) can therefore pick out
      "the token 3 places back" wherever it is.

Example, d_model = 4 (two clocks, speeds 1 and 1/100), at pos = 1:
    PE[1] = [sin(1), cos(1), sin(0.01), cos(0.01)] = [0.8415, 0.5403, 0.0100, 1.0000]
and PE[0] = [0, 1, 0, 1] at position 0.

Shapes
    returns: (context, d_model) float64; row pos is PE[pos]. d_model is even here.

tinyformer computes this table once in `SinusoidalPositions` (tinyformer/layers.py) and adds
rows start .. start+T-1 of it to the (B, T, C) token embeddings.

Your task
    Write `sinusoidal_positions`. numpy only; broadcasting a column of positions (context, 1)
    against a row of frequencies (d_model/2,) gives every angle at once.

Check it with:  tinyformer exercises check sinusoidal_positions
"""

import numpy as np


def sinusoidal_positions(context, d_model):
    """The (context, d_model) table of sinusoidal position codes."""
    # TODO: compute the angle pos / 10000^(2i / d_model) for every position and every clock i,
    #       as one (context, d_model/2) array; then fill the even columns of a
    #       (context, d_model) table with the sines of the angles and the odd columns with
    #       their cosines.
    raise NotImplementedError
