"""Reference solution: an induction head."""

import numpy as np


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
