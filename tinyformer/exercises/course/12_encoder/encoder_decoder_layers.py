"""The encoder layer and the decoder layer

"Attention Is All You Need" stacks two kinds of layer. Each sub-layer is wrapped as in chapter
7, here with the paper's post-LN placement: x = norm(x + sublayer(x)).

    encoder_layer(x, mask):                    # x (B, T_src, C), mask: the source padding
        x = norm1(x + self_attention(x, keys from x, mask))
        x = norm2(x + feed_forward(x))

    decoder_layer(y, memory, self_mask, memory_mask):     # y (B, T_tgt, C), memory (B, T_src, C)
        y = norm1(y + self_attention(y, keys from y, self_mask))       # causal & target padding
        y = norm2(y + cross_attention(y, keys from memory, memory_mask))   # source padding
        y = norm3(y + feed_forward(y))

Each layer of the encoder sees the whole source (only padding is hidden: there is nothing to
predict in it). The decoder's self-attention is causal, since at position t it predicts token
t + 1; its cross-attention sees every real source token, and comes second: the decoder first
gathers what it has written so far, then asks the source about it. `memory` is the encoder's
last output, the same for every decoder layer.

The weights come in a dict `w` of Tensors, named by sub-layer:

    "self_q", "self_k", "self_v", "self_o"      (C, C)  self-attention
    "cross_q", "cross_k", "cross_v", "cross_o"  (C, C)  cross-attention (decoder only)
    "ff_w1" (C, d_ff), "ff_b1" (d_ff,), "ff_w2" (d_ff, C), "ff_b2" (C,)     feed-forward
    "norm1_g", "norm1_b", "norm2_g", "norm2_b", ("norm3_g", "norm3_b")  (C,)  layer norms

A check in your head: if every attention and feed-forward weight is zero, each sub-layer adds
nothing (zero plus a zero bias), so both layers return the norms applied to x in turn. The
checker compares your layers with the formulas above, computed with tinyformer's own attention
op and layer norm; tinyformer/blocks.py's `EncoderLayer` and `DecoderLayer` are these layers
(there with `residual`, which also writes the pre-LN order).

Shapes
    x, y: (B, T, C)  memory: (B, T_src, C)  Tensors;  masks broadcast to (B, n_head, T, T_k)
    returns: (B, T, C) Tensor

Your task
    Write `encoder_layer` and `decoder_layer` from the given `multi_head_attention`,
    `feed_forward` and `norm`.

Check it with:  tinyformer exercises check encoder_decoder_layers
"""

import math

from tinyautograd import functional


def attention(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d)) v over the last two axes. Given."""
    scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    return scores.softmax(axis=-1) @ v


def multi_head_attention(x, context, w, name, n_head, mask=None):
    """Multi-head attention with queries from x and keys and values from `context` (x itself
    for self-attention), using the weights w[name + "_q"], ... w[name + "_o"]. Given: your
    cross_attention of the last exercise."""
    B, T, C = x.shape

    def split(t):
        return t.reshape(B, -1, n_head, C // n_head).swapaxes(1, 2)

    q, k, v = split(x @ w[name + "_q"]), split(context @ w[name + "_k"]), \
        split(context @ w[name + "_v"])
    heads = attention(q, k, v, mask)                               # (B, n_head, T, d_head)
    return heads.swapaxes(1, 2).reshape(B, T, C) @ w[name + "_o"]


def feed_forward(x, w):
    """relu(x W1 + b1) W2 + b2, the paper's feed-forward network. Given."""
    return (x @ w["ff_w1"] + w["ff_b1"]).relu() @ w["ff_w2"] + w["ff_b2"]


def norm(x, w, number):
    """Layer norm number 1, 2 or 3, with its gain w["normN_g"] and bias w["normN_b"]. Given."""
    return functional.layer_norm(x, w[f"norm{number}_g"], w[f"norm{number}_b"])


def encoder_layer(x, w, n_head, mask):
    """One post-LN encoder layer: self-attention under the padding mask, then feed-forward."""
    # TODO: two lines, one per sub-layer, each x = norm(x + sublayer). Which keys does the
    #       encoder's self-attention read, and which mask hides what?
    raise NotImplementedError


def decoder_layer(y, memory, w, n_head, self_mask, memory_mask):
    """One post-LN decoder layer: masked self-attention, cross-attention over `memory`, then
    feed-forward."""
    # TODO: three lines, in the order of the equations above, with norms 1, 2 and 3. Each
    #       attention gets its own weights ("self" or "cross"), its own keys and its own mask.
    raise NotImplementedError
