"""Reference solution: scaled dot-product attention."""

import math


def scaled_dot_product(q, k, v, mask=None):
    scores = q @ k.swapaxes(-2, -1) / math.sqrt(q.shape[-1])     # (B, T, T)
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)                  # blocked keys: weight 0
    return scores.softmax(axis=-1) @ v                            # (B, T, d_v)
