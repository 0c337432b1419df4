"""Reference solution: attend to the first token."""

import numpy as np


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


def make_weights(vocab_size, context):
    V = vocab_size
    d_model = 2 * V + context
    TOKEN, POS, COPY = slice(0, V), slice(V, V + context), slice(V + context, d_model)
    W_emb = np.zeros((V, d_model))
    W_emb[:, TOKEN] = np.eye(V)
    W_pos = np.zeros((context, d_model))
    W_pos[:, POS] = np.eye(context)
    W_Q = np.zeros((d_model, 1))
    W_Q[POS, 0] = 1.0                   # every position asks the same question
    W_K = np.zeros((d_model, 1))
    W_K[V + 0, 0] = 20.0                # only position 0 answers it
    W_V = np.zeros((d_model, V))
    W_V[TOKEN, :] = np.eye(V)
    W_O = np.zeros((V, d_model))
    W_O[:, COPY] = np.eye(V)
    W_U = np.zeros((d_model, V))
    W_U[COPY, :] = np.eye(V)
    return dict(W_emb=W_emb, W_pos=W_pos, W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O, W_U=W_U)
