"""Reference solution: the feed-forward network and GELU."""

import math


def gelu(x):
    inner = math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x))
    return 0.5 * x * (1 + inner.tanh())


def feed_forward(x, w1, b1, w2, b2):
    h = gelu(x @ w1 + b1)          # (B, T, d_ff)
    return h @ w2 + b2             # (B, T, C)
