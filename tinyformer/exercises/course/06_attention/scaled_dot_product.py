"""Scaled dot-product attention

Attention lets every position of a sequence look at the other positions and pull in what it
needs. Each position t has three vectors:

    a query  q_t   what am I looking for?
    a key    k_s   what do I offer?        (one per position s)
    a value  v_s   what do I hand over if chosen?

The match between query t and key s is their dot product. Softmax over s turns the matches
of one query into weights that are positive and sum to 1, and the output of position t is the
weighted average of the values:

    scores  = q @ k^T / sqrt(d_k)        # (B, T, T)   scores[b, t, s] = q_t . k_s / sqrt(d_k)
    weights = softmax(scores, axis=-1)   # (B, T, T)   each row sums to 1
    out     = weights @ v                # (B, T, d_v)

Why divide by sqrt(d_k)? A dot product of two random d_k-long vectors grows like sqrt(d_k).
Large scores make softmax put almost all the weight on one key, and its gradient then nearly
vanishes. The division keeps the scores near unit size whatever d_k is.

A mask says which keys a query may use. Here, as in tinyformer/attention.py, a mask is a
boolean array that broadcasts to (B, T, T) and True means "may attend". A blocked score is
replaced by a very negative number, -1e9, BEFORE the softmax: exp of it is 0, so that key gets
weight 0 and the remaining weights still sum to 1. (tinyformer's own attention uses -inf, as
torch's, which no score can outdo, and sets apart the queries that may attend no key: their
softmax of nothing but -inf would be NaN.)

Shapes
    q: (B, T, d_k)   k: (B, T, d_k)   v: (B, T, d_v)   Tensors
    mask: None, or booleans broadcasting to (B, T, T) (a (T, T) array is fine)
    returns: (B, T, d_v) Tensor

Use Tensor operations only (@, *, .swapaxes(-2, -1), .softmax(axis=-1), .masked_fill), so
that gradients flow back to q, k and v: the checker compares those gradients too.
tinyformer/attention.py does exactly this in `attention_readable`, and again as one op,
`Attention`, with its backward written by hand (the one the models run).

Your task
    Write `scaled_dot_product`.

Check it with:  tinyformer exercises check scaled_dot_product
"""

import math  # you need math.sqrt

import numpy as np  # handy for building masks while you try things out


def scaled_dot_product(q, k, v, mask=None):
    """softmax(q k^T / sqrt(d_k)) v, with blocked keys (mask False) given weight 0."""
    # TODO: scores = q @ k^T, with k's last two axes swapped, divided by math.sqrt(d_k)
    #       (d_k is q.shape[-1]).
    # TODO: if a mask is given, set the scores where the mask is False to -1e9
    #       (`scores.masked_fill(~mask, -1e9)`).
    # TODO: softmax over the keys (the last axis), then multiply by v.
    raise NotImplementedError
