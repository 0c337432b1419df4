"""The causal mask

A language model is trained to predict token t+1 from tokens 0..t. All T predictions of a
sequence are made at once, in one forward pass, so something must stop position t from simply
reading token t+1 (the answer) through attention. That something is the causal mask: query t
may attend to keys 0..t and to nothing later.

With True meaning "may attend" (tinyformer's convention), the mask is the lower triangle:

    T = 4:      key  0      1      2      3
    query 0  [[ True, False, False, False],
    query 1   [ True,  True, False, False],
    query 2   [ True,  True,  True, False],
    query 3   [ True,  True,  True,  True]]

    mask[t, s] = (s <= t)

Row 0 may only look at itself, so its output is exactly v_0. The last row sees everything.

Careful: torch.nn.MultiheadAttention uses the opposite convention (True = blocked), so copying
a mask from there gives the upper triangle. Here True always means "may attend".

The test of a causal model is behavioural: change the token at position 3, and the outputs at
positions 0, 1 and 2 must not move at all. The checker tries exactly that.

Shapes
    causal_mask(T) -> (T, T) numpy array of dtype bool
    causal_attention(q, k, v): q, k (B, T, d_k), v (B, T, d_v) Tensors -> (B, T, d_v) Tensor
    A (T, T) mask broadcasts over the batch axis B.

`attention` below is given (it is the previous exercise's answer). tinyformer/attention.py
builds its mask with np.tril in `causal_mask(T)`, and GPT passes it to every layer.

Your task
    Write `causal_mask`, then `causal_attention`, which uses it with `attention`.

Check it with:  tinyformer exercises check causal_mask
"""

import math

import numpy as np


def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v; where `mask` (booleans, True = may attend) is False, the
    key gets weight 0. Given: you do not need to change it."""
    scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1])     # (B, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return scores.softmax(axis=-1) @ v                            # (B, T, d_v)


def causal_mask(T):
    """(T, T) booleans, True where query t may attend key s, that is where s <= t."""
    # TODO: the lower triangle, diagonal included, as dtype bool. np.tril of np.ones((T, T))
    #       is a start; make sure the result is boolean, not 0.0 / 1.0.
    raise NotImplementedError


def causal_attention(q, k, v):
    """Attention in which no position sees a later one."""
    # TODO: build the mask for this sequence length (q.shape[1]) and call `attention`.
    raise NotImplementedError
