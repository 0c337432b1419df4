"""Multi-head attention

One attention gives each query one set of weights over the keys: one way of looking at the
sequence. A model usually wants several at once (the previous word, the subject of the
sentence, the matching bracket...). Multi-head attention runs n_head attentions side by side,
each in its own d_head = d_model / n_head dimensional slice, and joins their outputs:

    q = x @ W_q,  k = x @ W_k,  v = x @ W_v       # (B, T, C) each, C = d_model
    split each into heads                          # (B, n_head, T, d_head)
    heads = attention(q, k, v, mask)               # (B, n_head, T, d_head), per head
    merge the heads back                           # (B, T, C)
    out = merged @ W_o                             # (B, T, C)

The weights are (in, out) matrices, used as x @ W (tinyautograd.nn.Linear's convention). Head
h owns columns h*d_head .. (h+1)*d_head - 1 of q, k and v. Splitting is two steps:

    (B, T, C) --reshape--> (B, T, n_head, d_head) --swap axes 1, 2--> (B, n_head, T, d_head)

Now the head axis sits beside the batch axis, so `attention`, which works on the last two
axes, runs every head of every sequence at once. Merging undoes it in reverse order: swap axes
1 and 2, then reshape to (B, T, C). Reshaping straight from (B, T, C) to (B, n_head, T, d_head)
has the right shape but mixes up positions and features: it is the classic mistake.

Worked example, B = 1, T = 2, C = 4, n_head = 2 (d_head = 2):
    x[0] = [[ 0,  1,  2,  3],            split -> head 0: [[0, 1], [4, 5]]
            [ 4,  5,  6,  7]]                     head 1: [[2, 3], [6, 7]]

All heads together cost about what one full-width attention does. tinyformer/attention.py's
`MultiHeadAttention` does the same with four nn.Linear layers (q, k, v, out) and its
`_split_heads`; the checker loads your weights into it and compares.

Your task
    Write `split_heads`, `merge_heads` and `multi_head_attention`. `attention` is given.

Check it with:  tinyformer exercises check multi_head_attention
"""

import math


def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v over the last two axes; `mask` (booleans, True = may
    attend) broadcasts to the scores' shape. Given: you do not need to change it."""
    scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1])     # (..., T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return scores.softmax(axis=-1) @ v                            # (..., T, d_head)


def split_heads(x, n_head):
    """(B, T, C) -> (B, n_head, T, d_head): head h gets features h*d_head .. (h+1)*d_head-1."""
    # TODO: read B, T, C from x.shape; d_head = C // n_head. Reshape to
    #       (B, T, n_head, d_head), then swap axes 1 and 2.
    raise NotImplementedError


def merge_heads(x):
    """(B, n_head, T, d_head) -> (B, T, C): the inverse of split_heads."""
    # TODO: swap axes 1 and 2 back, then reshape to (B, T, n_head * d_head).
    raise NotImplementedError


def multi_head_attention(x, w_q, w_k, w_v, w_o, n_head, mask=None):
    """Self-attention of x (B, T, C) with n_head heads; weights (C, C), used as x @ W."""
    # TODO: project x to q, k and v, split each into heads, call attention (with the mask),
    #       merge the heads and project the result with w_o.
    raise NotImplementedError
