"""Reference solution: an induction head."""

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
    """Logits (T, vocab_size) for token ids (T,), and the two attention patterns (T, T).

    weights: W_emb (vocab_size, d_model)  W_pos (context, d_model)  W_U (d_model, vocab_size)
             and for layer L = 1, 2:  W_QL, W_KL (d_model, d_headL)
                                      W_VL (d_model, d_valueL)  W_OL (d_valueL, d_model)
    """
    T = len(ids)
    x = weights["W_emb"][ids] + weights["W_pos"][:T]                # (T, d_model)
    patterns = []
    for layer in (1, 2):
        W_Q, W_K, W_V, W_O = (weights[f"{name}{layer}"] for name in ("W_Q", "W_K", "W_V", "W_O"))
        added, pattern = attention(x, W_Q, W_K, W_V, W_O)
        x = x + added                                               # the residual stream
        patterns.append(pattern)
    return x @ weights["W_U"], patterns                             # (T, vocab_size)


def make_weights(vocab_size, context):
    V = vocab_size
    d_model = 3 * V + context
    TOKEN, POS = slice(0, V), slice(V, V + context)
    PREV, OUT = slice(V + context, 2 * V + context), slice(2 * V + context, d_model)
    W_emb = np.zeros((V, d_model))
    W_emb[:, TOKEN] = np.eye(V)
    W_pos = np.zeros((context, d_model))
    W_pos[:, POS] = np.eye(context)
    # Layer 1: previous-token head, TOKEN of t - 1 into PREV of t.
    W_Q1 = np.zeros((d_model, context))
    W_Q1[POS, :] = np.eye(context)
    W_K1 = np.zeros((d_model, context))
    W_K1[POS, :] = 20.0 * np.sqrt(context) * np.eye(context, k=1)
    W_V1 = np.zeros((d_model, V))
    W_V1[TOKEN, :] = np.eye(V)
    W_O1 = np.zeros((V, d_model))
    W_O1[:, PREV] = np.eye(V)
    # Layer 2: my TOKEN against their PREV; fetch their TOKEN into OUT.
    W_Q2 = np.zeros((d_model, V))
    W_Q2[TOKEN, :] = np.eye(V)
    W_K2 = np.zeros((d_model, V))
    W_K2[PREV, :] = 20.0 * np.sqrt(V) * np.eye(V)
    W_V2 = np.zeros((d_model, V))
    W_V2[TOKEN, :] = np.eye(V)
    W_O2 = np.zeros((V, d_model))
    W_O2[:, OUT] = np.eye(V)
    W_U = np.zeros((d_model, V))
    W_U[OUT, :] = np.eye(V)
    return dict(W_emb=W_emb, W_pos=W_pos, W_U=W_U,
                W_Q1=W_Q1, W_K1=W_K1, W_V1=W_V1, W_O1=W_O1,
                W_Q2=W_Q2, W_K2=W_K2, W_V2=W_V2, W_O2=W_O2)
