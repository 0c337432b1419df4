"""Weights by hand: a previous-token head

Same model as in attend_to_first: one causal attention head, no layer norm, no MLP (real models
have both; they are left out so that hand-set weights do exactly what you designed). This time
every position t >= 1 must predict the token at position t - 1:

    ids          [3, 1, 4, 1, 5]
    predictions  [?, 3, 1, 4, 1]        (position 0 has no previous token and is not checked)

Trained Transformers really grow such heads: they are half of the induction head in the next
exercise. The model, with x the residual stream (one row per position):

    x      = W_emb[ids] + W_pos[:T]                       # (T, d_model)
    q, k, v = x @ W_Q,  x @ W_K,  x @ W_V                 # (T, d_head) (T, d_head) (T, d_value)
    A      = softmax(q @ k.T / sqrt(d_head), causal)      # (T, T): row t attends to 0..t
    x      = x + A @ v @ W_O                              # attention ADDS to the stream
    logits = x @ W_U                                      # (T, vocab_size); argmax = prediction

Lay the stream out in slots again, V = vocab_size, d_model = 2V + context:

    x[:, 0:V]                    TOKEN   one-hot of the token here
    x[:, V:V+context]            POS     one-hot of the position
    x[:, V+context:2V+context]   COPY    the token attention fetched

What is new is the pattern. The score of query t against key j is q_t . k_j. Let the query of
position t be the one-hot of t (read from POS), and the key of position j be the one-hot of
j + 1, times a scale s (a shifted copy of POS). Then q_t . k_j = s exactly when j = t - 1, and
0 otherwise: a matrix with s on the diagonal just below the main one. Divided by sqrt(d_head)
and through softmax, the weight on t - 1 is e^s' / (e^s' + t) with s' = s / sqrt(d_head): pick s
so that this is close to 1 for every t < context. The value then carries position t - 1's
TOKEN slot into COPY, and W_U reads COPY.

tinyformer/attention.py computes this softmax(q k^T / sqrt(d)) with its causal_mask; the
checker runs your weights through that code, on random sequences up to `context` long and on
the hardest one: the same token at every position but t - 1.

Your task
    Write `make_weights(vocab_size, context)`: a dict of numpy arrays with the names and shapes
    of `run_model`'s comment. Then try it out: `python previous_token.py`.

Check it with:  tinyformer exercises check previous_token
"""

import numpy as np


# ---- The model (given: the checker runs its own copy, so edits here change nothing) ----

def softmax(scores):
    """Softmax along the last axis. Subtracting the row's max first keeps exp from overflowing."""
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(x, W_Q, W_K, W_V, W_O):
    """One causal attention head: x (T, d_model) -> (what it adds (T, d_model), pattern (T, T))."""
    T, d_head = len(x), W_Q.shape[1]
    q, k, v = x @ W_Q, x @ W_K, x @ W_V               # (T, d_head), (T, d_head), (T, d_value)
    scores = q @ k.T / np.sqrt(d_head)                # (T, T): query t against key j
    later = np.triu(np.ones((T, T), dtype=bool), k=1)
    scores[later] = -np.inf                           # causal: position t never sees j > t
    pattern = softmax(scores)                         # (T, T), every row sums to 1
    return pattern @ v @ W_O, pattern


def run_model(weights, ids):
    """Logits (T, vocab_size) for token ids (T,), and the attention pattern (T, T).

    weights: W_emb (vocab_size, d_model)  W_pos (context, d_model)
             W_Q, W_K (d_model, d_head)  W_V (d_model, d_value)  W_O (d_value, d_model)
             W_U (d_model, vocab_size)
    """
    T = len(ids)
    x = weights["W_emb"][ids] + weights["W_pos"][:T]                # (T, d_model)
    added, pattern = attention(x, weights["W_Q"], weights["W_K"], weights["W_V"], weights["W_O"])
    x = x + added                                                   # the residual stream
    return x @ weights["W_U"], pattern                              # (T, vocab_size)


# ---- Your part ----

def make_weights(vocab_size, context):
    """The weights with which run_model predicts, at every position t >= 1, the token at t - 1."""
    # TODO: slots TOKEN, POS, COPY as in the docstring (d_model = 2 * vocab_size + context).
    # TODO: W_Q reads POS as it is (d_head = context); W_K reads POS shifted by one position,
    #       times a scale large enough for softmax to be nearly one-hot.
    # TODO: W_V, W_O carry TOKEN into COPY; W_U reads COPY.
    raise NotImplementedError


if __name__ == "__main__":
    ids = np.array([3, 1, 4, 1, 5])
    logits, pattern = run_model(make_weights(vocab_size=6, context=8), ids)
    print("ids:        ", ids)
    print("predictions:", logits.argmax(axis=-1), "(from position 1 on, should be 3 1 4 1)")
    print("attention:\n", pattern.round(2))
