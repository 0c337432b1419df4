"""Reference solution: a previous-token head."""

import numpy as np


def make_weights(vocab_size, context):
    V = vocab_size
    d_model = 2 * V + context
    TOKEN, POS, COPY = slice(0, V), slice(V, V + context), slice(V + context, d_model)
    scale = 20.0 * np.sqrt(context)     # 20 after the model divides by sqrt(d_head)
    W_emb = np.zeros((V, d_model))
    W_emb[:, TOKEN] = np.eye(V)
    W_pos = np.zeros((context, d_model))
    W_pos[:, POS] = np.eye(context)
    W_Q = np.zeros((d_model, context))
    W_Q[POS, :] = np.eye(context)                   # query of t: one-hot of t
    W_K = np.zeros((d_model, context))
    W_K[POS, :] = scale * np.eye(context, k=1)      # key of j: one-hot of j + 1
    W_V = np.zeros((d_model, V))
    W_V[TOKEN, :] = np.eye(V)
    W_O = np.zeros((V, d_model))
    W_O[:, COPY] = np.eye(V)
    W_U = np.zeros((d_model, V))
    W_U[COPY, :] = np.eye(V)
    return dict(W_emb=W_emb, W_pos=W_pos, W_Q=W_Q, W_K=W_K, W_V=W_V, W_O=W_O, W_U=W_U)
