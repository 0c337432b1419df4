"""Cross-attention: queries from the decoder, keys and values from the encoder

The encoder-decoder Transformer ("Attention Is All You Need") reads a source sentence with its
encoder and writes the target with its decoder. The decoder looks at the source through
cross-attention: the same multi-head attention as in chapter 6, but the queries come from the
decoder's own stream x and the keys and values from the encoder's output, the `memory`:

    q = x @ W_q          # (B, T_q, C)   one query per target position
    k = memory @ W_k     # (B, T_k, C)   one key per SOURCE position
    v = memory @ W_v     # (B, T_k, C)
    out = merge(attention(split(q), split(k), split(v), mask)) @ W_o   # (B, T_q, C)

The two lengths differ: T_q is the target's, T_k the source's, and the scores are
(B, n_head, T_q, T_k): row t says how much target position t takes from each source position.
The output has one row per QUERY, so its shape is x's. The mask is the source's padding mask,
(B, 1, 1, T_k): no target position may read the source's padding. Nothing causal here: the
whole source is known before the decoder starts.

Worked example (one head, C = 1, all weights 1): x = [[[1], [2]]] (T_q = 2), memory =
[[[0], [1], [5]]] (T_k = 3), and the mask hides source position 2. Query 1 scores keys 0 and 1
with 2 * 0 = 0 and 2 * 1 = 2: weights e^0 : e^2 = 0.12 : 0.88, so its output is
0.12 * 0 + 0.88 * 1 = 0.88. Without the mask the 5 would win almost all of it.

tinyformer/attention.py's `MultiHeadAttention.forward(x, context=memory, mask=...)` does this
(context is x itself for self-attention), and `DecoderLayer` in tinyformer/blocks.py calls it
with the encoder's output.

Shapes
    x: (B, T_q, C)  memory: (B, T_k, C)  Tensors;  w_q, w_k, w_v, w_o: (C, C) Tensors
    mask: None or booleans (B, 1, 1, T_k);  returns (B, T_q, C) Tensor

Your task
    Write `cross_attention`. `attention`, `split_heads` and `merge_heads` are given (your
    answers from chapter 6).

Check it with:  tinyformer exercises check cross_attention
"""

import math


def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v over the last two axes: q (..., T_q, d), k (..., T_k, d),
    v (..., T_k, d_v) -> (..., T_q, d_v). Given."""
    scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1])     # (..., T_q, T_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return scores.softmax(axis=-1) @ v


def split_heads(x, n_head):
    """(B, T, C) -> (B, n_head, T, d_head). Given."""
    B, T, C = x.shape
    return x.reshape(B, T, n_head, C // n_head).swapaxes(1, 2)


def merge_heads(x):
    """(B, n_head, T, d_head) -> (B, T, C). Given."""
    B, n_head, T, d_head = x.shape
    return x.swapaxes(1, 2).reshape(B, T, n_head * d_head)


def cross_attention(x, memory, w_q, w_k, w_v, w_o, n_head, mask=None):
    """Multi-head attention of the decoder's x (B, T_q, C) over the encoder's memory
    (B, T_k, C); `mask` hides the memory's padding. Returns (B, T_q, C)."""
    # TODO: project the queries from one input and the keys and values from the other (see
    #       the equations above), split each into heads, attend with the mask, merge the heads
    #       and project with w_o.
    raise NotImplementedError
