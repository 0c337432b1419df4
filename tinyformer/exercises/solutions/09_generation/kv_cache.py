"""Reference solution: a key-value cache."""

import numpy as np


class CachedAttention:
    def __init__(self, w_q, w_k, w_v):
        self.w_q, self.w_k, self.w_v = w_q, w_k, w_v
        d_head = w_k.shape[1]
        self.keys = np.zeros((0, d_head))
        self.values = np.zeros((0, d_head))

    def step(self, x):
        q, k, v = x @ self.w_q, x @ self.w_k, x @ self.w_v       # each (d_head,)
        self.keys = np.vstack([self.keys, k[None, :]])
        self.values = np.vstack([self.values, v[None, :]])
        scores = self.keys @ q / np.sqrt(len(q))                 # (t+1,)
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        return weights @ self.values
