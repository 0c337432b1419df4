"""A key-value cache

Generating a text of T tokens calls the model T times, and each call sees the whole sequence
so far. In causal self-attention token t attends only tokens 0..t, so the key and value of a
token never change once it has been seen. Recomputing them all, and all the attention rows of
the earlier tokens, at every step is wasted work. A key-value cache keeps them instead:

    step(x_t):                           x_t (d_model,): the newest token's vector
        q   = x_t @ w_q                  # (d_head,)   only the new token's query,
        k_t = x_t @ w_k, v_t = x_t @ w_v # (d_head,)   key and value are computed
        keys   = keys   + row k_t        # (t+1, d_head)  the cache grows by one row
        values = values + row v_t        # (t+1, d_head)
        weights = softmax(keys @ q / sqrt(d_head))     # (t+1,)  one row of attention
        return weights @ values          # (d_head,)

No mask is needed: the cache holds exactly the tokens 0..t that token t may see. The output
must equal row t of full causal attention over x_0..x_t (given below as `causal_attention`).

The saving: step t does one projection and t+1 scores, O(t) work. Without the cache, step t
recomputes the projections of all t+1 tokens and the (t+1) x (t+1) scores, O(t^2) work, so a
whole text of T tokens costs O(T^2) with the cache instead of O(T^3). The price is memory: the
cache holds two (T, d_head) arrays per head and per layer. tinyformer/attention.py's `KVCache`
does this for every layer of a GPT (its `extend` stores each step's keys and values after
the `length` stored), and `GPT.generate` then feeds the model only the newest token, at its
own position: `GPT.forward` counts the tokens already in the cache (its `length`) so that the
positions go on from there rather than start again at 0.

Worked example, w_q = w_k = w_v = identity (2, 2), tokens x_0 = [1, 0], x_1 = [0, 1]:
    step(x_0) -> keys [[1, 0]], weights [1]          -> [1, 0]
    step(x_1) -> keys [[1, 0], [0, 1]], scores [0, 1] / sqrt(2), weights [0.3302, 0.6698]
              -> [0.3302, 0.6698]

Shapes
    w_q, w_k, w_v: (d_model, d_head);  keys, values: (t, d_head) after t steps

Your task
    Write `CachedAttention.step`: append to `self.keys` and `self.values` (keep those names,
    the checker looks at them), then return the new token's output.

Check it with:  tinyformer exercises check kv_cache
"""

import numpy as np


def causal_attention(x, w_q, w_k, w_v):
    """Full single-head causal self-attention over x (T, d_model) -> (T, d_head), given."""
    q, k, v = x @ w_q, x @ w_k, x @ w_v                          # each (T, d_head)
    scores = q @ k.T / np.sqrt(k.shape[1])                       # (T, T)
    T = len(x)
    scores = np.where(np.tril(np.ones((T, T), dtype=bool)), scores, -np.inf)   # causal
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return weights @ v                                           # (T, d_head)


class CachedAttention:
    """Single-head causal self-attention that reads one token per call to `step`."""

    def __init__(self, w_q, w_k, w_v):
        self.w_q, self.w_k, self.w_v = w_q, w_k, w_v             # each (d_model, d_head)
        d_head = w_k.shape[1]
        self.keys = np.zeros((0, d_head))                        # (t, d_head), t tokens seen
        self.values = np.zeros((0, d_head))                      # (t, d_head)

    def step(self, x):
        """The attention output (d_head,) of the new token x (d_model,), over all tokens so far."""
        # TODO: compute this token's query, key and value.
        # TODO: append the key and value as new rows of self.keys and self.values
        #       (np.vstack or np.concatenate with k[None, :]).
        # TODO: weights = softmax(self.keys @ q / sqrt(d_head)); return weights @ self.values.
        raise NotImplementedError
